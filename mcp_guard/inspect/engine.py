"""Typed access to RE2 (``google-re2``): the only regex engine the detectors use.

RE2 matches in time linear in the input for any pattern (no backtracking), which is what lets a
policy author's pattern, or a hostile server's output, never turn into a ReDoS. The package has
no type information, so the few calls used here are described by protocols.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import re2

Buffer = bytes | bytearray | memoryview


class Match(Protocol):
    def start(self, group: int = 0) -> int: ...
    def end(self, group: int = 0) -> int: ...
    def span(self, group: int = 0) -> tuple[int, int]: ...


class Regex(Protocol):
    @property
    def groups(self) -> int: ...
    def search(self, text: Buffer, pos: int | None = None, endpos: int | None = None) -> Match | None: ...
    def match(self, text: Buffer, pos: int | None = None, endpos: int | None = None) -> Match | None: ...
    def fullmatch(self, text: Buffer | str, pos: int | None = None, endpos: int | None = None) -> Match | None: ...
    def finditer(self, text: Buffer, pos: int | None = None, endpos: int | None = None) -> Iterator[Match]: ...


class PatternSet(Protocol):
    def Match(self, text: Buffer) -> list[int] | None: ...


class RegexError(ValueError):
    """A pattern RE2 does not accept, with RE2's reason."""


def _options(*, never_capture: bool = False) -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print parse errors on stderr
    opts.never_capture = never_capture
    return opts


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def compile_regex(regex: str, *, never_capture: bool = False) -> Regex:
    try:
        compiled: Regex = re2.compile(regex, _options(never_capture=never_capture))
    except re2.error as exc:
        raise RegexError(_reason(exc)) from None
    return compiled


def compile_set(regexes: list[str], anchor: str) -> PatternSet:
    """An RE2::Set: which of ``regexes`` match, in one pass. ``anchor``: ``start`` or ``both``."""
    opts = _options()
    patterns = re2.Set.MatchSet(opts) if anchor == "start" else re2.Set.FullMatchSet(opts)
    try:
        for regex in regexes:
            patterns.Add(regex)
        patterns.Compile()
    except re2.error as exc:
        raise RegexError(_reason(exc)) from None
    compiled: PatternSet = patterns
    return compiled
