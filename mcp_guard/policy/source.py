"""Read a policy file into plain data, remembering where every value came from.

Error messages must name the line and column of the offending field, which
``json.loads`` cannot tell us, so JSON is read by :mod:`mcp_guard.jsonpos` (the reader
the client-config editor uses too) and YAML through PyYAML's node graph (which carries
marks). Both refuse duplicate keys: in a policy a repeated key silently drops one of the
two rules. A lone surrogate (``"\\ud800"``) is refused too: it is not a character, so
no tool name or argument could ever match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_guard.jsonpos import JArray, JNode, JObject, JScalar, JsonSyntaxError, LineIndex, parse

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


def parse_json(text: str) -> SourceDocument:
    """Read strict JSON (no comments, no trailing commas, no duplicate keys) with every value's position."""
    where = LineIndex(text)
    positions: dict[PathKey, Position] = {}

    def at(offset: int) -> Position:
        return Position(*where(offset))

    def check_unicode(value: str, offset: int) -> None:
        if not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value):
            raise SourceError("a lone surrogate (\\ud800-\\udfff) in a string is not a character", at(offset))

    def convert(node: JNode, path: PathKey) -> Any:
        positions.setdefault(path, at(node.start))
        if isinstance(node, JObject):
            out: dict[str, Any] = {}
            for member in node.members:
                if member.key in out:
                    raise SourceError(f"duplicate key {member.key!r}: each key may appear once", at(member.key_start))
                check_unicode(member.key, member.key_start)
                key_path = (*path, member.key)
                # The key's position is more useful in messages than its value's.
                positions[key_path] = at(member.key_start)
                out[member.key] = convert(member.value, key_path)
            return out
        if isinstance(node, JArray):
            return [convert(item, (*path, index)) for index, item in enumerate(node.items)]
        assert isinstance(node, JScalar)  # noqa: S101  (the reader makes no other kind)
        if isinstance(node.value, str):
            check_unicode(node.value, node.start)
        return node.value

    try:
        root = parse(text)
    except JsonSyntaxError as exc:
        raise SourceError(exc.message, Position(exc.line, exc.column)) from None
    return SourceDocument(convert(root, ()), positions)


def parse_yaml(text: str) -> SourceDocument:
    import yaml  # Only YAML policies pay for the import.

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = Position(mark.line + 1, mark.column + 1) if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        if "\t" in line[: len(line) - len(line.lstrip())] or "'\\t'" in problem:
            # PyYAML's own words ("found character '\t' that cannot start any token") hide the fix.
            where = f" at line {pos.line}" if pos else ""
            problem = f"a tab character; YAML indents with spaces only: replace the tab{where} with spaces"
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
