"""The approval store, opened on first use: most sessions never need one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LazyApprovalStore:
    """Forwards to an :class:`~mcp_guard.approval.store.ApprovalStore` created the first time it is used."""

    def __init__(self, path: Path | None = None, warn: Callable[[str], None] | None = None) -> None:
        self._path = path
        self._warn = warn
        self._store: Any = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._path is not None:
            return self._path
        # From paths, not the store's module: the guard asks at every start, and the store (sqlite3, its
        # seals) is imported only when an approval is first looked up.
        from mcp_guard import paths

        return paths.approval_store_path()

    def _get(self) -> Any:
        with self._lock:
            if self._store is None:
                from mcp_guard.approval.store import ApprovalStore

                self._store = ApprovalStore(self._path, warn=self._warn)
            return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)
