"""Read a policy file into plain data, remembering where every value came from.

Error messages must name the line and column of the offending field, which
``json.loads`` cannot tell us, so JSON is read by a small position-tracking parser
and YAML through PyYAML's node graph (which carries marks). Both refuse duplicate
keys: in a policy a repeated key silently drops one of the two rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class SourceDocument:
    """Parsed data plus the position of every key and value, by path."""

    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def position_of(self, path: PathKey) -> Position | None:
        # Fall back to the nearest enclosing value that has a position.
        for cut in range(len(path), -1, -1):
            pos = self.positions.get(path[:cut])
            if pos is not None:
                return pos
        return None


class SourceError(Exception):
    """A file that is not well-formed JSON or YAML."""

    def __init__(self, message: str, position: Position | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_STRING_CHUNK = re.compile(r'[^"\\\x00-\x1f]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class _JsonReader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.positions: dict[PathKey, Position] = {}
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def where(self, offset: int) -> Position:
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return Position(lo + 1, offset - self._line_starts[lo] + 1)

    def fail(self, message: str, offset: int | None = None) -> SourceError:
        return SourceError(message, self.where(self.pos if offset is None else offset))

    def skip_ws(self) -> None:
        m = _WS.match(self.text, self.pos)
        self.pos = m.end() if m else self.pos

    def document(self) -> Any:
        self.skip_ws()
        value = self.value(())
        self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the end of the JSON document")
        return value

    def value(self, path: PathKey, depth: int = 0) -> Any:
        if depth > 200:
            raise self.fail("nested too deeply")
        self.positions.setdefault(path, self.where(self.pos))
        ch = self.text[self.pos : self.pos + 1]
        if ch == "{":
            return self.obj(path, depth)
        if ch == "[":
            return self.array(path, depth)
        if ch == '"':
            return self.string()
        for literal, result in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(literal, self.pos):
                self.pos += len(literal)
                return result
        m = _NUMBER.match(self.text, self.pos)
        if m and m.end() > self.pos:
            self.pos = m.end()
            token = m.group()
            return float(token) if any(c in token for c in ".eE") else int(token)
        if not ch:
            raise self.fail("unexpected end of file: a value was expected")
        raise self.fail(f"unexpected character {ch!r}: a JSON value was expected")

    def obj(self, path: PathKey, depth: int) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            self.skip_ws()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a key in double quotes (is there a trailing comma?)")
            key_at = self.pos
            key = self.string()
            if key in result:
                raise self.fail(f"duplicate key {key!r}: each key may appear once", key_at)
            key_path = (*path, key)
            self.positions[key_path] = self.where(key_at)
            self.skip_ws()
            if not self.text.startswith(":", self.pos):
                raise self.fail(f"expected ':' after the key {key!r}")
            self.pos += 1
            self.skip_ws()
            # The key's position is more useful in messages than its value's.
            saved = self.positions[key_path]
            result[key] = self.value(key_path, depth + 1)
            self.positions[key_path] = saved
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return result
            raise self.fail("expected ',' or '}' in an object")

    def array(self, path: PathKey, depth: int) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        self.skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            self.skip_ws()
            result.append(self.value((*path, len(result)), depth + 1))
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return result
            raise self.fail("expected ',' or ']' in an array")

    def string(self) -> str:
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        while True:
            m = _STRING_CHUNK.match(self.text, self.pos)
            if m:
                parts.append(m.group())
                self.pos = m.end()
            ch = self.text[self.pos : self.pos + 1]
            if ch == '"':
                self.pos += 1
                return "".join(parts)
            if ch == "\\":
                esc = self.text[self.pos + 1 : self.pos + 2]
                if esc in _ESCAPES:
                    parts.append(_ESCAPES[esc])
                    self.pos += 2
                elif esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.text[self.pos + 2 : self.pos + 6]):
                    parts.append(chr(int(self.text[self.pos + 2 : self.pos + 6], 16)))
                    self.pos += 6
                else:
                    raise self.fail("invalid escape in a string")
            elif not ch:
                raise self.fail("unterminated string", start)
            else:
                raise self.fail("control character in a string (escape it)")


def parse_json(text: str) -> SourceDocument:
    reader = _JsonReader(text)
    data = reader.document()
    # Re-join surrogate pairs written as two \u escapes.
    data = _fix_surrogates(data)
    return SourceDocument(data, reader.positions)


def _fix_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16") if _has_surrogate(value) else value
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    return value


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def parse_yaml(text: str) -> SourceDocument:
    import yaml  # Only YAML policies pay for the import.

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = Position(mark.line + 1, mark.column + 1) if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SourceError(f"not valid YAML: {problem}", pos) from None
    positions: dict[PathKey, Position] = {}
    constructor = yaml.constructor.SafeConstructor()

    def convert(node: Any, path: PathKey) -> Any:
        positions.setdefault(path, Position(node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise SourceError(
                        f"keys must be strings, got {key!r}",
                        Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                    )
                if key in out:
                    raise SourceError(
                        f"duplicate key {key!r}: each key may appear once",
                        Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                    )
                key_path = (*path, key)
                positions[key_path] = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = convert(value_node, key_path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    if root is None:
        return SourceDocument(None, positions)
    return SourceDocument(convert(root, ()), positions)


def read_document(path: Path) -> SourceDocument:
    """Read ``path`` as YAML when it ends in .yaml/.yml, else as JSON."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not valid UTF-8 (byte {exc.start})", None) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text)
    return parse_json(text)
