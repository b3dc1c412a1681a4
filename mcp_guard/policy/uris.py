"""The readings of a resource URI that a policy's globs are matched against.

A server may read ``file:///tmp/../etc/passwd`` or ``file:///%65tc/passwd`` as ``/etc/passwd``
(a file server that percent-decodes and resolves its path), or as written. A rule for
``file:///etc/*`` must catch both, so for a ``file:`` URI every reading is produced: as written,
and with its path percent-decoded (repeatedly, as :mod:`mcp_guard.policy.within` does) and
``.``/``..``/repeated slashes resolved. Other schemes are matched as written: their meaning is
the server's, and the guard does not guess it.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

_FILE = re.compile(r"(?i)file:(?://(?:localhost)?)?(/.*)", re.DOTALL)
_ROUNDS = 3


def readings(uri: str) -> list[str]:
    """``uri`` as written, then each distinct normalised ``file:///…`` form; [] for one that cannot be read
    (a NUL, or percent-encoding that still decodes after several rounds)."""
    out = [uri]
    m = _FILE.fullmatch(uri)
    if m is None:
        return out
    path = m.group(1)
    for _ in range(_ROUNDS + 1):
        if "\0" in path:
            return []
        cleaned = posixpath.normpath(path.split("?", 1)[0].split("#", 1)[0])
        cleaned = "/" + cleaned.lstrip("/")  # a leading // is / to the servers that read these
        form = f"file://{cleaned}"
        if form not in out:
            out.append(form)
        decoded = unquote(path)
        if decoded == path:
            return out
        path = decoded
    return []
