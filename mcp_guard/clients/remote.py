"""Remote (HTTP) server entries, and the stdio bridge that puts them behind the guard.

The guard relays stdio. A remote server (Streamable HTTP or SSE, an entry with a ``url``)
is guarded through ``mcp-remote`` (npm), a well-kept stdio-to-HTTP bridge that also does
the OAuth browser flow: ``wrap --remote`` turns the entry into a stdio entry that runs
``mcp-guard [GUARD OPTIONS] -- npx -y mcp-remote URL [--header "Name: value"]...``.

How a client's entry maps onto mcp-remote's command line (its flags as of 0.15):

* ``url`` is mcp-remote's first argument. mcp-remote refuses plain ``http://`` except to
  ``localhost`` and ``127.0.0.1``; the client did not, so ``--allow-http`` is added for
  any other host, keeping what the entry did.
* each of ``headers`` becomes ``--header "Name: value"``. mcp-remote only reads names made
  of ``A-Z a-z 0-9 _ -`` and single-line values (it drops any other with a warning), so an
  entry with another header is not wrapped. Values are carried over verbatim: a ``${VAR}``
  the client expands in ``headers`` it expands in ``args`` too (Claude Code ``${VAR}``,
  Cursor ``${env:VAR}``, VS Code ``${input:ID}``), and one left as it is mcp-remote expands
  from its own environment (the entry's ``env``, passed on by the guard).
* ``"type": "sse"`` becomes ``--transport sse-only`` (mcp-remote otherwise tries
  Streamable HTTP first and falls back to SSE only on a 404); any other type keeps
  mcp-remote's default, Streamable HTTP with that fallback, which is what the clients do.
* keys for the client's own OAuth set-up (``oauth``, ``auth``, ``headersHelper``) have no
  faithful mcp-remote equivalent here, so such an entry is not wrapped and says why.

Where the original is kept
    In the guard's own options: ``--remote-entry TEXT``, the entry's exact text, which the
    guard ignores when it runs. Unlike a stdio entry, a remote one cannot be rebuilt from the
    command it runs (its key order, ``type`` spelling, header layout and comments are gone),
    and a guard option is the one place that travels with the entry, survives a client
    rewriting its file, and adds no key a client might reject. ``unwrap`` puts that text back
    only when the entry still runs exactly what wrap derived from it and its other keys are
    unchanged (:func:`still_matches`); otherwise the entry was edited since, and unwrap keeps
    those edits, giving back the mcp-remote stdio entry it runs now.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp_guard.jsonpos import JArray, JNode, JObject, JScalar

BRIDGE = ("npx", "-y", "mcp-remote")
"""How a wrapped remote entry starts mcp-remote: npx, as the clients' own examples do (``-y``: never prompt)."""

BRIDGE_PACKAGE = "mcp-remote"
RECORD_OPTION = "--remote-entry"
"""The guard option that carries a remote entry's original text (see the module docstring)."""

REMOTE_TYPES = frozenset({"sse", "http", "streamable-http", "streamablehttp", "ws", "websocket"})
CLIENT_AUTH_KEYS = ("oauth", "auth", "headersHelper")
"""Claude Code's ``oauth`` and ``headersHelper``, Cursor's ``auth``: the client's own sign-in set-up."""

# mcp-remote's parseHeaderLine: /^([A-Za-z0-9_-]+):\s*(.*)$/
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")  # the hosts mcp-remote allows plain http to


class NotBridgeable(ValueError):
    """A remote entry mcp-remote cannot stand in for; ``str()`` says why."""


@dataclass(frozen=True)
class Remote:
    """What a remote entry asks for, in mcp-remote's terms."""

    url: str
    headers: tuple[tuple[str, str], ...]
    transport: str | None
    allow_http: bool

    def bridge_args(self) -> list[str]:
        """mcp-remote's arguments (after the package name)."""
        args = [self.url]
        for name, value in self.headers:
            args += ["--header", f"{name}: {value}"]
        if self.transport is not None:
            args += ["--transport", self.transport]
        if self.allow_http:
            args.append("--allow-http")
        return args

    def command(self) -> list[str]:
        """The server command a wrapped entry runs behind the guard."""
        return [*BRIDGE, *self.bridge_args()]


def plain(node: JNode) -> Any:
    """The Python value of a parsed node, as ``json.loads`` would give it (the last duplicate key wins)."""
    if isinstance(node, JObject):
        return {m.key: plain(m.value) for m in node.members}
    if isinstance(node, JArray):
        return [plain(item) for item in node.items]
    assert isinstance(node, JScalar)  # noqa: S101  (the parser makes only these three)
    return node.value


def _string(node: JNode | None) -> str | None:
    if isinstance(node, JScalar) and isinstance(node.value, str):
        return node.value
    return None


def remote_kind(entry: JObject) -> str | None:
    """Why ``entry`` is a remote server (its ``url`` or its ``type``), or None for a stdio one."""
    if entry.get("url") is not None:
        return "remote server with a 'url'"
    member = entry.get("type")
    kind = _string(member.value) if member is not None else None
    if kind is not None and kind.lower() in REMOTE_TYPES:
        return f"remote server of type {kind!r}"
    return None


def remote_of(entry: JObject) -> Remote:
    """The mcp-remote equivalent of a remote entry; raises :class:`NotBridgeable` saying why there is none."""
    keys = [m.key for m in entry.members]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise NotBridgeable(f"key {duplicated[0]!r} appears twice")
    url_member = entry.get("url")
    url = _string(url_member.value) if url_member is not None else None
    if url is None:
        raise NotBridgeable("no 'url' string" if url_member is None else "'url' is not a string")
    for key in ("command", "args"):
        if entry.get(key) is not None:
            raise NotBridgeable(f"it has both 'url' and {key!r}")
    for key in CLIENT_AUTH_KEYS:
        if entry.get(key) is not None:
            raise NotBridgeable(f"its {key!r} is the client's own sign-in set-up, which mcp-remote cannot take over")
    type_member = entry.get("type")
    kind = None
    if type_member is not None:
        kind = _string(type_member.value)
        if kind is None:
            raise NotBridgeable("'type' is not a string")
        if kind.lower() in ("ws", "websocket"):
            raise NotBridgeable("mcp-remote does not connect over WebSocket")
        if kind.lower() not in REMOTE_TYPES:
            raise NotBridgeable(f"'type' {kind!r} is not a remote transport")
    return Remote(
        url=url,
        headers=_headers(entry),
        transport="sse-only" if kind is not None and kind.lower() == "sse" else None,
        allow_http=_needs_allow_http(url),
    )


def _headers(entry: JObject) -> tuple[tuple[str, str], ...]:
    member = entry.get("headers")
    if member is None:
        return ()
    if not isinstance(member.value, JObject):
        raise NotBridgeable("'headers' is not an object")
    seen: set[str] = set()
    headers: list[tuple[str, str]] = []
    for header in member.value.members:
        name = header.key
        value = _string(header.value)
        if not _HEADER_NAME.fullmatch(name):
            raise NotBridgeable(f"mcp-remote only passes header names made of A-Z a-z 0-9 _ -, not {name!r}")
        if name.lower() in seen:
            raise NotBridgeable(f"header {name!r} appears twice")
        if value is None:
            raise NotBridgeable(f"header {name!r} is not a string")
        if "\r" in value or "\n" in value:
            raise NotBridgeable(f"header {name!r} spans lines, which mcp-remote drops")
        seen.add(name.lower())
        headers.append((name, value))
    return tuple(headers)


def _needs_allow_http(url: str) -> bool:
    """Whether mcp-remote needs ``--allow-http`` to connect where the client connected."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise NotBridgeable(f"'url' {url!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        return False
    if scheme == "http":
        return host not in _LOOPBACK_HOSTS
    if "${" in url:  # e.g. "${BASE_URL}/mcp": the client fills it in; mcp-remote checks the result
        return False
    raise NotBridgeable(f"'url' {url!r} is not an http(s) URL")


_CREDENTIAL = re.compile(r"auth|token|key|secret|password|cookie|session", re.IGNORECASE)


def literal_credentials(remote: Remote) -> list[str]:
    """Headers that look like credentials and are written out (no ``${...}``): they end up on a command line."""
    return [name for name, value in remote.headers if _CREDENTIAL.search(name) and "${" not in value]


def split_record(options: Sequence[str]) -> tuple[list[str], str | None]:
    """The guard options without ``--remote-entry TEXT`` (either spelling), and that TEXT (the last one)."""
    rest: list[str] = []
    record = None
    i = 0
    while i < len(options):
        word = options[i]
        if word == RECORD_OPTION and i + 1 < len(options):
            record = options[i + 1]
            i += 2
            continue
        if word.startswith(RECORD_OPTION + "="):
            record = word[len(RECORD_OPTION) + 1 :]
        else:
            rest.append(word)
        i += 1
    return rest, record


def still_matches(original: JObject, wrapped: JObject, server: Sequence[str]) -> str | None:
    """None if ``wrapped`` is still what wrapping ``original`` made of it; else what changed since.

    The server command must end with ``mcp-remote`` (any version spec, any launcher before it)
    and exactly the arguments ``original`` maps to; every key other than ``command``, ``args``,
    ``type`` (wrapped) and ``url``, ``headers``, ``type`` (original) must have the same value.
    """
    try:
        remote = remote_of(original)
    except NotBridgeable as exc:
        return f"the kept original entry is not one wrap --remote makes ({exc})"
    words = list(server)
    at = next((i for i, w in enumerate(words) if w == BRIDGE_PACKAGE or w.startswith(BRIDGE_PACKAGE + "@")), None)
    if at is None or words[at + 1 :] != remote.bridge_args():
        return "its mcp-remote arguments changed after wrapping"
    mine = {m.key: plain(m.value) for m in wrapped.members if m.key not in ("command", "args", "type")}
    theirs = {m.key: plain(m.value) for m in original.members if m.key not in ("url", "headers", "type")}
    if mine != theirs:
        return "its other keys changed after wrapping"
    return None
