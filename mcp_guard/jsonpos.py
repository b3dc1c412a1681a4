"""One JSON reader that remembers where every value is in the text.

``json.loads`` gives values but no positions. The policy loader needs the line and column
of each field for its messages, and the client-config editor needs the exact span of
each value to splice text in place, so both read JSON with :func:`parse`, which returns a
tree of nodes holding each value and its ``text[start:end]`` span.

``jsonc=True`` also accepts what VS Code and Cursor allow in their files: ``//`` and
``/* */`` comments and trailing commas. Duplicate keys are all kept, in order
(:meth:`JObject.get` returns the last, as JavaScript's ``JSON.parse`` does); a caller that
must refuse them checks ``members``. Strings are decoded as ``json.loads`` decodes them, so
an escaped surrogate pair becomes one character and a lone surrogate stays one code point.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 200
"""Arrays and objects nested deeper than this are refused rather than risking Python's recursion limit."""


class JsonSyntaxError(ValueError):
    """Text that is not JSON (or JSONC); ``offset``, ``line`` and ``column`` (both from 1) say where."""

    def __init__(self, message: str, text: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.line, self.column = line_column(text, offset)


@dataclass(slots=True)
class JNode:
    """A JSON value and where its text is: ``text[start:end]``."""

    start: int
    end: int


@dataclass(slots=True)
class JScalar(JNode):
    value: Any


@dataclass(slots=True)
class JArray(JNode):
    items: list[JNode] = field(default_factory=list)
    commas: list[int] = field(default_factory=list)


@dataclass(slots=True)
class JMember:
    key: str
    key_start: int
    key_end: int
    value: JNode


@dataclass(slots=True)
class JObject(JNode):
    members: list[JMember] = field(default_factory=list)

    def get(self, key: str) -> JMember | None:
        """The member named ``key`` (the last one, as JavaScript's JSON.parse keeps it)."""
        found = None
        for member in self.members:
            if member.key == key:
                found = member
        return found


def line_column(text: str, offset: int) -> tuple[int, int]:
    """The line and column (both counted from 1, the column in characters) of ``text[offset]``."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


class LineIndex:
    """Line and column of many offsets into one text, each found by bisection."""

    def __init__(self, text: str) -> None:
        self._starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def __call__(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


_WHITESPACE = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_STRING_CHUNK = re.compile(r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = (("true", True), ("false", False), ("null", None))


class _Reader:
    def __init__(self, text: str, jsonc: bool) -> None:
        self.text = text
        self.jsonc = jsonc
        self.pos = 1 if text.startswith("\ufeff") else 0

    def fail(self, message: str, offset: int | None = None) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.text, self.pos if offset is None else offset)

    def skip(self) -> None:
        text = self.text
        while True:
            self.pos = _WHITESPACE.match(text, self.pos).end()  # type: ignore[union-attr]  # always matches
            if not self.jsonc:
                return
            if text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment")
                self.pos = end + 2
            else:
                return

    def document(self) -> JNode:
        self.skip()
        node = self.value(0)
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the end of the JSON document")
        return node

    def value(self, depth: int) -> JNode:
        text = self.text
        ch = text[self.pos : self.pos + 1]
        if ch in ("{", "["):
            if depth >= MAX_DEPTH:
                raise self.fail("nested too deeply")
            return self.object(depth) if ch == "{" else self.array(depth)
        if ch == '"':
            return self.string()
        start = self.pos
        for word, literal in _LITERALS:
            if text.startswith(word, start):
                self.pos += len(word)
                return JScalar(start, self.pos, literal)
        m = _NUMBER.match(text, start)
        if m:
            self.pos = m.end()
            token = m.group()
            number = float(token) if any(c in token for c in ".eE") else int(token)
            return JScalar(start, self.pos, number)
        if not ch:
            raise self.fail("unexpected end of file: a value was expected")
        raise self.fail(f"unexpected character {ch!r}: a JSON value was expected")

    def string(self) -> JScalar:
        start = self.pos
        m = _STRING.match(self.text, start)
        if m is None:
            raise self._string_error(start)
        self.pos = m.end()
        token = m.group()
        return JScalar(start, self.pos, json.loads(token) if "\\" in token else token[1:-1])

    def _string_error(self, start: int) -> JsonSyntaxError:
        at = _STRING_CHUNK.match(self.text, start + 1).end()  # type: ignore[union-attr]  # always matches
        ch = self.text[at : at + 1]
        if ch == "\\":
            return self.fail("invalid escape in a string", at)
        if not ch:
            return self.fail("unterminated string", start)
        return self.fail("control character in a string (escape it)", at)

    def object(self, depth: int) -> JObject:
        node = JObject(self.pos, self.pos)
        text = self.text
        self.pos += 1
        self.skip()
        after_comma = False
        while True:
            if text.startswith("}", self.pos) and (self.jsonc or not after_comma):
                self.pos += 1
                node.end = self.pos
                return node
            if not text.startswith('"', self.pos):
                if after_comma and not self.jsonc:
                    raise self.fail("expected a key in double quotes (is there a trailing comma?)")
                raise self.fail("expected a key in double quotes or '}'")
            key = self.string()
            self.skip()
            if not text.startswith(":", self.pos):
                raise self.fail(f"expected ':' after the key {key.value!r}")
            self.pos += 1
            self.skip()
            value = self.value(depth + 1)
            node.members.append(JMember(str(key.value), key.start, key.end, value))
            self.skip()
            if text.startswith(",", self.pos):
                self.pos += 1
                self.skip()
                after_comma = True
            elif text.startswith("}", self.pos):
                after_comma = False
            else:
                raise self.fail("expected ',' or '}' in an object")

    def array(self, depth: int) -> JArray:
        node = JArray(self.pos, self.pos)
        text = self.text
        self.pos += 1
        self.skip()
        after_comma = False
        while True:
            if text.startswith("]", self.pos) and (self.jsonc or not after_comma):
                self.pos += 1
                node.end = self.pos
                return node
            node.items.append(self.value(depth + 1))
            self.skip()
            if text.startswith(",", self.pos):
                node.commas.append(self.pos)
                self.pos += 1
                self.skip()
                after_comma = True
            elif text.startswith("]", self.pos):
                after_comma = False
            else:
                raise self.fail("expected ',' or ']' in an array")


def parse(text: str, *, jsonc: bool = False) -> JNode:
    """Read one JSON document (JSONC with ``jsonc=True``), keeping every value's span; a leading BOM is skipped.

    Raises :class:`JsonSyntaxError` for text that is not one.
    """
    return _Reader(text, jsonc).document()
