"""Opening a counter store from a ``--state`` URL.

    memory:                       this process only (MemoryLimiter)
    sqlite:///abs/path/counters.db  a file shared by the guards on this machine
    sqlite:counters.db            a path relative to the user state directory
    redis://[user:password@]host:6379/0[?prefix=mcp-guard:]   a Redis server
    rediss://...                  the same over TLS
    unix:///path/redis.sock[?db=0&prefix=...]                  Redis over a Unix socket

A relative SQLite path resolves against the per-user state directory
(``platformdirs.user_state_dir("mcp-guard")``, e.g. ``~/.local/state/mcp-guard`` on
Linux), not the working directory: MCP clients start guards from whatever
directory they like, and two guards meaning the same file must find the same file.
``~`` is expanded. Pass ``base_dir`` to resolve against something else.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from mcp_guard.limits.base import Limiter
from mcp_guard.limits.memory import MemoryLimiter

ACCEPTED = (
    "memory:, sqlite:///absolute/path/counters.db, sqlite:relative/counters.db (under the user state directory), "
    "redis://[user:password@]host:6379/0[?prefix=mcp-guard:], rediss://... (TLS), unix:///path/redis.sock"
)
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def state_dir() -> Path:
    from mcp_guard import paths

    return paths.state_dir()


def sqlite_path(url: str, base_dir: Path | None = None) -> Path:
    """The file a ``sqlite:`` URL names (see the module docstring for relative paths)."""
    rest = url[len("sqlite:") :]
    if "?" in rest or "#" in rest:
        raise ValueError(f"{url!r}: a SQLite store takes no parameters")
    if rest.startswith("//"):
        # sqlite://<authority>/<path>: only an empty authority (a local file) makes sense.
        authority, _, tail = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ValueError(f"{url!r}: a SQLite store is a local file; use sqlite:///path/counters.db")
        rest = "/" + tail.lstrip("/")
    if not rest or rest.endswith("/"):
        raise ValueError(f"{url!r} names no file; accepted: {ACCEPTED}")
    path = Path(rest).expanduser()
    if path.is_absolute():
        return path
    return (base_dir if base_dir is not None else state_dir()) / path


def _redis_parts(url: str) -> tuple[str, str]:
    """The URL for redis-py (without our ``prefix`` parameter) and the key prefix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    prefix = prefixes[-1] if prefixes else "mcp-guard:"
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    # Built by hand: urlunsplit would drop the "//" of unix:///path with its empty host.
    client_url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    return client_url, prefix


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def open_store(url: str, base_dir: Path | None = None) -> Limiter:
    """The limiter a ``--state`` URL names; :class:`ValueError` if the URL is not one we accept.

    Nothing is connected or opened here: a store that cannot be reached yet makes
    calls raise :class:`~mcp_guard.limits.base.StoreUnavailable` until it can.
    """
    scheme = _scheme(url.strip())
    url = url.strip()
    if scheme == "memory":
        if url.lower() not in ("memory:", "memory://"):
            raise ValueError(f"{url!r}: the memory store takes no path; write memory:")
        return MemoryLimiter()
    if scheme == "sqlite":
        from mcp_guard.limits.sqlite import SqliteLimiter

        return SqliteLimiter(sqlite_path(url, base_dir))
    if scheme in _REDIS_SCHEMES:
        if scheme != "unix" and not url.lower().startswith(f"{scheme}://"):
            raise ValueError(f"{url!r}: write {scheme}://host:6379/0")
        from mcp_guard.limits.redis import RedisLimiter

        client_url, prefix = _redis_parts(url)
        try:
            return RedisLimiter(client_url, prefix=prefix)
        except ImportError as exc:
            raise ValueError(f"{scheme}:// stores need the redis package: {exc}") from exc
        except ValueError as exc:  # redis-py's own URL parsing
            raise ValueError(f"{describe_store(url)}: {exc}") from exc
    raise ValueError(f"unknown counter store {url!r}; accepted: {ACCEPTED}")


def describe_store(url: str, base_dir: Path | None = None) -> str:
    """The store a URL names, for messages: canonical, with any password hidden.

    ``memory:``; ``sqlite:///absolute/path.db`` (relative paths resolved); the Redis
    URL as given, its password replaced by ``***``.
    """
    url = url.strip()
    scheme = _scheme(url)
    if scheme == "memory":
        return "memory:"
    if scheme == "sqlite":
        try:
            return f"sqlite://{sqlite_path(url, base_dir)}"
        except ValueError:
            return url
    if scheme in _REDIS_SCHEMES:
        from mcp_guard.limits.redis import redacted

        return redacted(url)
    return url
