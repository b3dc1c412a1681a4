"""The guard builds its policy models without pydantic's plugin hooks, for its start-up time.

When pydantic builds a model's validator, it first looks for plugins: it imports
``importlib.metadata`` and reads the entry points of every installed distribution (and
imports any plugin it finds). At a guard's start that was about a fifth of the time spent
validating the policy, for hooks that only observe validation and that nobody sets up for
the guard's own policy models. :func:`without_pydantic_plugins` stands in for pydantic's
plugin loader (answering "no plugins", as ``PYDANTIC_DISABLE_PLUGINS=__all__`` would, but
without importing it) while the models are built, then puts everything back, so any model
built later in the same process (the MCP SDK's, in tests) finds its plugins as usual.
Validation is the same: a validator built without plugins is pydantic's plain
``SchemaValidator``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_LOADER = "pydantic.plugin._loader"


def _no_plugins() -> Iterable[object]:
    return ()


@contextmanager
def without_pydantic_plugins() -> Iterator[None]:
    """Inside: pydantic validators are built without looking for plugins (single-threaded start-up only)."""
    if _LOADER in sys.modules:  # already imported (plugins already read): nothing to save
        yield
        return
    stand_in = types.ModuleType(_LOADER)
    stand_in.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[_LOADER] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_LOADER) is stand_in:
            del sys.modules[_LOADER]
