"""Scan text for what the enabled detectors look for: one trigger pass, then checks where it hit.

``compile_scanner(detectors, patterns)`` builds (and caches) a :class:`Scanner` for one set of
detector names and user patterns; ``scanner.scan(text)`` returns the findings in ``text``. All
matching is RE2, so the cost is linear in the input whatever it holds:

1. One search of the combined trigger (see :mod:`mcp_guard.inspect.catalog`) over the UTF-8 bytes.
   Ordinary output has no or few hits, so for it this pass is the whole cost.
2. At each hit, an ``RE2::Set`` says which families' triggers match there, and those families'
   full patterns and checks run on that spot (anchored) or on the window around it.
3. A family with many hits in one text (more than :data:`DENSE` plus ~500 per MB: a list of
   10 000 addresses) stops being searched hit by hit: its patterns run once over the whole text
   instead, so no input can make the per-hit work grow faster than the text.
4. User patterns are one more RE2 alternation, searched once.
5. A scan stops at :data:`MAX_FINDINGS` and says so (``scan_texts``).

Several strings (the texts of one result) are scanned as one, joined with NUL bytes, which no
pattern matches: one encode and one search per result, not per string.

Offsets in findings are in characters of the scanned ``str``.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mcp_guard.inspect import catalog
from mcp_guard.inspect.catalog import Family
from mcp_guard.inspect.engine import Buffer, Match, PatternSet, Regex, RegexError, compile_regex, compile_set
from mcp_guard.inspect.findings import Finding

# Hits of one family in one text before it is searched as a whole instead: a whole pass costs
# about as much as ~500 hits handled one by one per MB, so the limit grows with the text.
DENSE = 64
_DENSE_PER_BYTE = 1 / 2048
MAX_FINDINGS = 10_000  # per scan: past this a scan stops (and says so), so hostile output cannot run it long
_SET_SPAN = 320  # bytes given to the Set after a hit: longer than any built-in trigger match
_USER_KIND = "pattern"
_CONTINUATION = bytes(range(0x80, 0xC0))
_CHUNK = 1 << 20

# Printable ASCII written as \u00XX in raw JSON could spell any trigger; no encoder does that
# except for < > & ' (Go, HTML-safe encoders), which no trigger needs.
_ESCAPED_ASCII = r"\\u00(?:0[9aAdD]|2[0-5]|2[8-9a-fA-F]|3[0-9abdfABDF]|[4-7][0-9a-fA-F])"

Raw = tuple[int, int, str, str]  # byte start, byte end, detector, kind


class _Full(Exception):
    """MAX_FINDINGS reached."""


class _Found(set[Raw]):
    def add(self, item: Raw) -> None:
        super().add(item)
        if len(self) >= MAX_FINDINGS:
            raise _Full


class DetectorError(ValueError):
    """An unknown detector name or a user pattern RE2 cannot use."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    family: Family
    patterns: tuple[tuple[catalog.Pattern, Regex], ...]


class Scanner:
    """The compiled detectors for one set of names and user patterns. Immutable, thread-safe."""

    def __init__(self, detectors: frozenset[str], patterns: tuple[tuple[str, str], ...]) -> None:
        self.detectors = detectors
        self.patterns = patterns
        families = catalog.families_for(detectors)
        self._families = tuple(_Compiled(f, tuple((p, compile_regex(p.regex)) for p in f.patterns)) for f in families)
        self._all = tuple(range(len(families)))
        self._set: PatternSet | None = compile_set([f.trigger for f in families], "start") if families else None
        self._triggers: dict[tuple[int, ...], Regex | None] = {}
        self._first = self._trigger(self._all)  # every family: what a scan searches first
        self._at_start = tuple(
            (i, compile_regex(f.at_start, never_capture=True)) for i, f in enumerate(families) if f.at_start
        )
        raw = [f.raw_trigger or f.trigger for f in families]
        if any(f.detector not in ("invisible_text", "terminal_escapes") for f in families):
            raw.append(_ESCAPED_ASCII)
        self._raw = _alternation(raw)
        self._user: Regex | None = None
        self._user_set: PatternSet | None = None
        self._user_raw_safe = True
        if patterns:
            regexes = [regex for _, regex in patterns]
            self._user = _alternation(regexes)
            self._user_set = compile_set(regexes, "both")
            # A user pattern runs on decoded strings; on a raw frame it can only stand in for
            # them when nothing in it depends on what surrounds a string.
            self._user_raw_safe = not any(_context_dependent(r) for r in regexes)

    # --- public ---------------------------------------------------------------------------------

    def scan(self, text: str) -> list[Finding]:
        """The findings in ``text``, ordered by position (at most :data:`MAX_FINDINGS`)."""
        return self.scan_many([text])[0]

    def scan_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """``[scan(t) for t in texts]``, in one pass: the texts are joined with NUL, which no pattern crosses."""
        return self.scan_texts(texts)[0]

    def scan_texts(self, texts: Sequence[str]) -> tuple[list[list[Finding]], bool]:
        """Like :meth:`scan_many`, and whether the scan stopped at :data:`MAX_FINDINGS` (then there are more)."""
        if len(texts) == 1:
            text = texts[0]
            if not text:
                return [[]], False
            data = text.encode("utf-8", "surrogatepass")
            raw, full = self._scan_bytes(data)
            return [_to_findings(raw, data, text.isascii(), 0, 0) if raw else []], full
        if not texts:
            return [], False
        buf = bytearray()
        starts: list[int] = []
        for text in texts:
            starts.append(len(buf))
            buf += text.encode("utf-8", "surrogatepass")
            buf += b"\x00"
        data = bytes(buf)
        del buf
        out: list[list[Finding]] = [[] for _ in texts]
        raw, full = self._scan_bytes(data)
        if not raw:
            return out, full
        by_text: dict[int, list[Raw]] = {}
        for item in raw:
            i = bisect.bisect_right(starts, item[0]) - 1
            text_end = (starts[i + 1] if i + 1 < len(starts) else len(data)) - 1
            # A pattern whose class takes NUL (an OSC sequence runs to its terminator or on) may run
            # on into the next string: in its own string it ends at that string's end.
            end = min(item[1], text_end)
            if item[0] < end:
                by_text.setdefault(i, []).append(item if end == item[1] else (item[0], end, item[2], item[3]))
        for i, items in by_text.items():
            text = texts[i]
            out[i] = _to_findings(items, data, text.isascii(), starts[i], 0)
        return out, full

    def frame_may_match(self, frame: Buffer) -> bool:
        """False only when no string in this raw JSON frame can hold a finding.

        The triggers are written to match in raw JSON too (escaped forms included, and any
        printable ASCII written as ``\\u00XX`` counts as a hit), so a False answer lets the
        caller forward the frame without parsing it. True means: parse and scan it.
        """
        if self._raw is not None and self._raw.search(frame) is not None:
            return True
        if self._user is None:
            return False
        if not self._user_raw_safe or b"\\" in frame:
            return True
        return self._user.search(frame) is not None

    # --- the scan ------------------------------------------------------------------------------

    def _trigger(self, active: tuple[int, ...]) -> Regex | None:
        """The alternation of these families' triggers (compiled once per set of families)."""
        if active not in self._triggers:
            self._triggers[active] = _alternation([self._families[i].family.trigger for i in active])
        return self._triggers[active]

    def _scan_bytes(self, data: bytes) -> tuple[list[Raw], bool]:
        if (
            self._user is None
            and (self._first is None or self._first.search(data) is None)
            and not any(regex.match(data) for _, regex in self._at_start)
        ):
            return [], False  # the common case, kept short: nothing anywhere triggers
        found = _Found()
        try:
            if self._families:
                self._scan_families(data, found)
            if self._user is not None:
                self._scan_user(data, found)
        except _Full:
            return _resolve(found), True
        return _resolve(found), False

    def _scan_families(self, data: bytes, found: set[Raw]) -> None:
        n = len(data)
        dense_limit = DENSE + int(n * _DENSE_PER_BYTE)
        active = self._all
        trigger = self._trigger(active)
        hits = [0] * len(self._families)
        covered = [-1] * len(self._families)
        windows: dict[int, list[tuple[int, int]]] = {}
        dense: list[int] = []
        for i, regex in self._at_start:
            if regex.match(data) is not None:
                fam = self._families[i]
                hits[i] += 1
                if fam.family.anchored:
                    covered[i] = _anchored(fam, data, 0, found)
                else:
                    windows.setdefault(i, []).append((0, min(n, fam.family.ahead)))
        pos = 0
        while trigger is not None and pos <= n:
            m = trigger.search(data, pos)
            if m is None:
                break
            start = m.start()
            nxt = start + 1
            went_dense = False
            for i in self._at(active, data, start, m.end()):
                fam = self._families[i]
                hits[i] += 1
                if hits[i] > dense_limit:
                    dense.append(i)
                    went_dense = True
                elif not fam.family.anchored:
                    back, ahead = fam.family.back, fam.family.ahead
                    windows.setdefault(i, []).append((max(0, start - back), min(n, start + ahead)))
                elif covered[i] <= start:
                    end = _anchored(fam, data, start, found)
                    if end > start:
                        covered[i] = end
                        if fam.family.detector == "invisible_text":
                            nxt = max(nxt, end)  # a run of hidden characters holds no other trigger
            if went_dense:
                active = tuple(i for i in active if i not in dense)
                trigger = self._trigger(active)
            pos = nxt
        for i, spans in windows.items():
            if i not in dense:
                for lo, hi in _merge(spans):
                    _windowed(self._families[i], data, lo, hi, found)
        for i in dense:
            _windowed(self._families[i], data, 0, n, found)

    def _at(self, active: tuple[int, ...], data: bytes, start: int, end: int) -> Iterable[int]:
        """The active families whose trigger matches at ``start`` (the alternation names only the first)."""
        if len(active) == 1 or self._set is None:
            return active
        matched = self._set.Match(data[start : max(end, start + _SET_SPAN)])
        if not matched:
            return ()
        return sorted(i for i in matched if i in active)

    def _scan_user(self, data: bytes, found: set[Raw]) -> None:
        if self._user is None or self._user_set is None:
            return
        pos = 0
        n = len(data)
        while pos <= n:
            m = self._user.search(data, pos)
            if m is None:
                return
            start, end = m.span()
            nul = data.find(b"\x00", start, end)
            if nul >= 0:
                # A policy's pattern may take NUL ("key=[^ ]+"): the texts of a result are joined with it,
                # so a match must not run from one string into the next (the finding would be dropped,
                # or hide one in the next string). Search this string alone, then go on after it.
                m = self._user.search(data, start, nul)
                if m is None:
                    pos = nul + 1
                    continue
                start, end = m.span()
            pos = end if end > start else start + 1
            if start == end:
                continue
            which = self._user_set.Match(data[start:end])
            if which:
                found.add((start, end, self.patterns[min(which)][0], _USER_KIND))


def _anchored(fam: _Compiled, data: bytes, start: int, found: set[Raw]) -> int:
    """Try the family's patterns at ``start``; the furthest end of what matched (kept or not), else -1."""
    limit = min(len(data), start + fam.family.ahead)
    furthest = -1
    for pattern, regex in fam.patterns:
        m = regex.match(data, start, limit)
        if m is None:
            continue
        furthest = max(furthest, m.end())
        hit = _checked(pattern, m, data)
        if hit is not None:
            found.add((hit[0], hit[1], fam.family.detector, hit[2]))
            furthest = max(furthest, hit[1])
        if fam.family.exclusive:
            break
    return furthest


def _windowed(fam: _Compiled, data: bytes, lo: int, hi: int, found: set[Raw]) -> None:
    for pattern, regex in fam.patterns:
        for m in regex.finditer(data, lo, hi):
            hit = _checked(pattern, m, data)
            if hit is not None:
                found.add((hit[0], hit[1], fam.family.detector, hit[2]))


def _checked(pattern: catalog.Pattern, m: Match, data: bytes) -> catalog.Hit | None:
    start, end = m.span(pattern.group)
    if start < 0 or start == end:
        return None
    if pattern.check is None:
        return start, end, pattern.kind
    return pattern.check(data, start, end, pattern.kind)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged = [spans[0]]
    for lo, hi in spans[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _order(item: Raw) -> tuple[int, int, int, str]:
    return item[0], -item[1], catalog.PRIORITY.get(item[2], 99), item[3]


def _resolve(found: set[Raw]) -> list[Raw]:
    """Sorted findings; where two of one detector overlap, the earlier (then the longer) stays."""
    ordered = sorted(found, key=_order)
    last_end: dict[str, int] = {}
    out: list[Raw] = []
    for item in ordered:
        if item[0] < last_end.get(item[2], -1):
            continue
        last_end[item[2]] = item[1]
        out.append(item)
    return out


def _alternation(regexes: Sequence[str]) -> Regex | None:
    if not regexes:
        return None
    return compile_regex("|".join(f"(?:{r})" for r in regexes), never_capture=True)


def _context_dependent(regex: str) -> bool:
    return any(token in regex for token in ("^", "$", "\\b", "\\B", "\\A", "\\z"))


def _to_findings(raw: list[Raw], data: bytes, ascii_text: bool, base: int, char_base: int) -> list[Finding]:
    """Findings with character offsets, for a text that starts at byte ``base`` of ``data``."""
    if ascii_text:
        return [Finding(det, kind, s - base + char_base, e - base + char_base) for s, e, det, kind in raw]
    offsets = sorted({o for s, e, _, _ in raw for o in (s, e)})
    chars: dict[int, int] = {}
    prev_byte, prev_char = base, char_base
    for off in offsets:
        prev_char += _char_count(data, prev_byte, off)
        prev_byte = off
        chars[off] = prev_char
    return [Finding(det, kind, chars[s], chars[e]) for s, e, det, kind in raw]


def _char_count(data: bytes, lo: int, hi: int) -> int:
    """Characters in ``data[lo:hi]`` (UTF-8): bytes that are not continuation bytes, in bounded chunks."""
    total = 0
    while lo < hi:
        top = min(hi, lo + _CHUNK)
        total += len(data[lo:top].translate(None, _CONTINUATION))
        lo = top
    return total


@functools.lru_cache(maxsize=256)
def _cached(detectors: frozenset[str], patterns: tuple[tuple[str, str], ...]) -> Scanner:
    return Scanner(detectors, patterns)


def compile_scanner(detectors: Iterable[str], patterns: Iterable[tuple[str, str]] = ()) -> Scanner:
    """The scanner for these detector names; ``patterns`` are (name, RE2 regex) pairs of user detectors.

    A name in ``detectors`` that is neither built in nor one of ``patterns`` raises
    :class:`DetectorError`; so does a pattern RE2 rejects or one that matches the empty string.
    User patterns not named in ``detectors`` are left out. Cached: equal arguments give the same
    scanner, compiled once.
    """
    wanted = frozenset(detectors)
    user = {name: regex for name, regex in patterns if name in wanted}
    unknown = wanted - set(catalog.DETECTORS) - set(user)
    if unknown:
        raise DetectorError(f"unknown detector {sorted(unknown)[0]!r} (built in: {', '.join(catalog.DETECTORS)})")
    for name, regex in user.items():
        problem = pattern_problem(regex)
        if problem is not None:
            raise DetectorError(f"pattern {name!r}: {problem}")
    return _cached(wanted & frozenset(catalog.DETECTORS) | frozenset(user), tuple(sorted(user.items())))


def pattern_problem(regex: str) -> str | None:
    """Why ``regex`` cannot be a user detector, or None. For the policy loader's messages."""
    try:
        compiled = compile_regex(regex)
    except RegexError as exc:
        return f"not valid RE2 syntax ({exc}); RE2 has no backreferences or lookaround"
    if compiled.fullmatch("") is not None:
        return "matches the empty string"
    return None
