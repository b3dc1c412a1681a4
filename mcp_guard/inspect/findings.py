"""A finding: what a detector found where, never the value itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """``text[start:end]`` is a ``kind`` of thing that ``detector`` looks for.

    Offsets are in characters of the Python string that was scanned. ``path`` says which string
    of a result it was (``content[0].text``, ``structuredContent.rows[3].email``); it is empty
    for a finding on a bare string.
    """

    detector: str
    kind: str
    start: int
    end: int
    path: str = ""

    def at(self, path: str) -> Finding:
        return Finding(self.detector, self.kind, self.start, self.end, path)

    def label(self) -> str:
        return f"[redacted: {self.detector}/{self.kind}]"


def redact(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with each finding replaced by ``[redacted: <detector>/<kind>]``.

    Overlapping findings (two detectors on the same characters) become one replacement that
    covers both and carries the label of the one that starts first.
    """
    merged: list[tuple[int, int, str]] = []
    for start, end, label in sorted((f.start, f.end, f.label()) for f in findings):
        if merged and start < merged[-1][1]:  # overlaps the previous one: widen it
            first_start, first_end, first_label = merged[-1]
            merged[-1] = (first_start, max(first_end, end), first_label)
        else:
            merged.append((start, end, label))
    if not merged:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end, label in merged:
        pieces.append(text[cursor:start])
        pieces.append(label)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
