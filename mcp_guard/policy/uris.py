"""The readings of a resource URI that a policy's globs are matched against.

A server may read ``file:///tmp/../etc/passwd`` or ``file:///%65tc/passwd`` as ``/etc/passwd``
(a file server that percent-decodes and resolves its path), or as written. A rule for
``file:///etc/*`` must catch both, so for a ``file:`` URI every reading is produced: as written,
and with its path percent-decoded (repeatedly, as :mod:`mcp_guard.policy.within` does) and
``.``/``..``/repeated slashes resolved. Every URI is also read the way a WHATWG URL parser reads it
(the TypeScript SDK's ``McpServer`` looks resources up by ``new URL(uri)``, Python SDK 1.x servers
by pydantic's URL, the same parser): tabs and newlines removed, spaces trimmed, backslashes as
slashes, dot segments (``%2e%2e`` too) resolved, scheme and host lower-cased, so
``file:///srv\\..\\etc/passwd`` or ``HTTPS://Example.com/x`` cannot step around a rule either.
Beyond that, other schemes are matched as written: their meaning is the server's.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

from pydantic_core import Url

_FILE = re.compile(r"(?i)file:(?://(?:localhost)?)?(/.*)", re.DOTALL)
_ROUNDS = 3


def readings(uri: str) -> list[str]:
    """``uri`` as written, as a URL parser reads it, then each distinct normalised ``file:///…`` form; [] for
    one that cannot be read (a NUL, or percent-encoding that still decodes after several rounds)."""
    out = [uri]
    for form in (uri, whatwg(uri)):
        if form is None:
            continue
        if form not in out:
            out.append(form)
        if not _file_readings(form, out):
            return []
    return out


def whatwg(uri: str) -> str | None:
    """``uri`` as a WHATWG URL parser serialises it, None when it cannot parse it."""
    try:
        return str(Url(uri))
    except ValueError:  # pydantic_core's ValidationError is one
        return None


def _file_readings(uri: str, out: list[str]) -> bool:
    """Append the normalised ``file:///…`` forms of ``uri`` (none for another scheme); False: unreadable."""
    m = _FILE.fullmatch(uri)
    if m is None:
        return True
    path = m.group(1)
    for _ in range(_ROUNDS + 1):
        if "\0" in path:
            return False
        cleaned = posixpath.normpath(path.split("?", 1)[0].split("#", 1)[0])
        cleaned = "/" + cleaned.lstrip("/")  # a leading // is / to the servers that read these
        form = f"file://{cleaned}"
        if form not in out:
            out.append(form)
        decoded = unquote(path)
        if decoded == path:
            return True
        path = decoded
    return False
