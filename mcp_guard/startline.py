"""The one line the guard writes on stderr when it starts.

Clients keep a server's stderr in their MCP log, and that line is how a person reading the log
knows the guard is in front of the server, which policy (by path and hash) and mode it enforces,
where shared counters live, and what it started. The server command is shown with secrets masked:
the log is read by people and support tools that must not learn a token from it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from mcp_guard import __version__

MASK = "***"
# Option and variable names whose values are credentials (--api-key, --token=, GITHUB_TOKEN=...).
_SECRET_NAME = re.compile(r"token|secret|passw|api[-_]?key|auth|credential|cookie|bearer", re.IGNORECASE)
_HEADER_OPTIONS = ("--header", "-H")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


def _masked_url(word: str) -> str:
    try:
        parts = urlsplit(word)
    except ValueError:
        return word
    if not parts.scheme or not parts.netloc:
        return word
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        query = "&".join(f"{key}={MASK}" for key, _ in parse_qsl(query, keep_blank_values=True)) or MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _masked_header(value: str) -> str:
    name, sep, _ = value.partition(":")
    return f"{name}: {MASK}" if sep else MASK


def _masked_words(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    secret_next = header_next = False
    for word in argv:
        if secret_next:
            out.append(MASK)
        elif header_next:
            out.append(_masked_header(word))
        elif word.startswith("-") and "=" in word:
            option, _, value = word.partition("=")
            if option in _HEADER_OPTIONS:
                out.append(f"{option}={_masked_header(value)}")
            elif _SECRET_NAME.search(option):
                out.append(f"{option}={MASK}")
            else:
                out.append(f"{option}={_masked_url(value)}")
        elif (assignment := _ASSIGNMENT.match(word)) and _SECRET_NAME.search(assignment.group(1)):
            out.append(f"{assignment.group(1)}={MASK}")
        else:
            out.append(_masked_url(word))
        flag = word.startswith("-") and "=" not in word
        header_next = flag and word in _HEADER_OPTIONS
        secret_next = flag and not header_next and bool(_SECRET_NAME.search(word))
    return out


def shown_command(argv: Sequence[str]) -> str:
    """``argv`` as a shell would read it, with credentials in it replaced by ``***``."""
    return shlex.join(_masked_words(argv))


def start_line(
    *,
    policy_path: str | None,
    policy_sha256: str | None,
    policy_source: str,
    mode: str,
    mode_source: str,
    counters: str,
    command: Sequence[str],
) -> str:
    """``started VERSION; policy PATH (sha256 SHORT, from SOURCE); mode M; counters STORE; server: CMD``."""
    if policy_path is None:
        policy = "policy none (allow-all)"
    else:
        digest = (policy_sha256 or "")[:12]
        policy = f"policy {policy_path} (sha256 {digest}, from {policy_source})"
    shown_mode = f"{mode} ({mode_source})" if mode == "monitor" else mode
    return f"started {__version__}; {policy}; mode {shown_mode}; counters {counters}; server: {shown_command(command)}"
