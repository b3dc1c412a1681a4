"""Tool-name globs: ``*`` (any run of characters) and ``?`` (one character), nothing else.

Square brackets and escapes are deliberately not supported: tool names are plain
identifiers, and a smaller syntax leaves no doubt about what a key matches.
"""

from __future__ import annotations

import re
from functools import lru_cache


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def literal_length(pattern: str) -> int:
    """How specific a glob is: its count of literal characters."""
    return sum(1 for ch in pattern if ch not in "*?")


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, name: str) -> bool:
    return compile_glob(pattern).fullmatch(name) is not None


def globs_overlap(a: str, b: str) -> bool:
    """Whether some name matches both globs."""
    memo: dict[tuple[int, int], bool] = {}

    def walk(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(a) and j == len(b):
            result = True
        elif i < len(a) and a[i] == "*":
            result = walk(i + 1, j) or (j < len(b) and walk(i, j + 1))
        elif j < len(b) and b[j] == "*":
            result = walk(i, j + 1) or (i < len(a) and walk(i + 1, j))
        elif i < len(a) and j < len(b) and (a[i] == b[j] or a[i] == "?" or b[j] == "?"):
            result = walk(i + 1, j + 1)
        else:
            result = False
        memo[key] = result
        return result

    return walk(0, 0)
