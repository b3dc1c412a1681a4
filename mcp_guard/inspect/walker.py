"""Find the strings of an MCP result that reach the model, scan them, and build a redacted copy.

Shapes handled (by key, so the same walk serves ``tools/call`` in both protocol eras, task results
fetched later, ``resources/read`` and ``prompts/get``):

* ``content[i]``: ``text`` of text blocks; ``resource.text`` of embedded resources; ``uri``,
  ``name``, ``title`` and ``description`` of resource links. Base64 ``data``/``blob`` is skipped.
* ``structuredContent``: every string value, at any depth.
* ``contents[i].text`` (``resources/read``).
* ``description`` and ``messages[i].content`` (``prompts/get``; a content block or a list of them).

Nothing here does I/O; the result is never modified (the redacted copy shares what it does not
change).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mcp_guard.inspect.findings import Finding, redact
from mcp_guard.inspect.scanner import Scanner

Key = str | int
Path = tuple[Key, ...]

_LINK_FIELDS = ("uri", "name", "title", "description")
# The last element of the path of an object's key (the key itself, scanned like the strings:
# structuredContent and schemas carry text in keys too). No list index is negative.
KEY = -1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def format_path(path: Path) -> str:
    """``("structuredContent", "rows", 3, "e-mail")`` -> ``structuredContent.rows[3]["e-mail"]``."""
    out: list[str] = []
    for key in path:
        if key == KEY:
            out.append("{key}")
        elif isinstance(key, int):
            out.append(f"[{key}]")
        elif _IDENT.match(key):
            out.append(f".{key}" if out else key)
        else:
            out.append(f"[{json.dumps(key, ensure_ascii=False)}]")
    return "".join(out)


def _block_slots(block: object, path: Path, out: list[tuple[Path, str]]) -> None:
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if isinstance(text, str):
            out.append(((*path, "text"), text))
    elif kind == "resource":
        resource = block.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("text"), str):
            out.append(((*path, "resource", "text"), resource["text"]))
    elif kind == "resource_link":
        for key in _LINK_FIELDS:
            value = block.get(key)
            if isinstance(value, str):
                out.append(((*path, key), value))


def _strings(value: object, path: Path, out: list[tuple[Path, str]]) -> None:
    # Iterative: structuredContent may be deep, and the walk must not hit the recursion limit.
    stack: list[tuple[object, Path]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            out.append((where, item))
        elif isinstance(item, dict):
            for k, v in reversed(list(item.items())):
                stack.append((v, (*where, str(k))))
                stack.append((str(k), (*where, str(k), KEY)))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))


def text_slots(result: object) -> list[tuple[Path, str]]:
    """The (path, string) pairs of ``result`` that are scanned, in document order."""
    out: list[tuple[Path, str]] = []
    if not isinstance(result, dict):
        return out
    content = result.get("content")
    if isinstance(content, list):
        for i, block in enumerate(content):
            _block_slots(block, ("content", i), out)
    if "structuredContent" in result:
        _strings(result["structuredContent"], ("structuredContent",), out)
    contents = result.get("contents")
    if isinstance(contents, list):
        for i, item in enumerate(contents):
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append((("contents", i, "text"), item["text"]))
    messages = result.get("messages")
    if isinstance(messages, list):
        if isinstance(result.get("description"), str):
            out.append((("description",), result["description"]))
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            body = message.get("content")
            if isinstance(body, list):
                for j, block in enumerate(body):
                    _block_slots(block, ("messages", i, "content", j), out)
            else:
                _block_slots(body, ("messages", i, "content"), out)
    return out


@dataclass(frozen=True, slots=True)
class Inspection:
    """What the scanner found in one result. ``findings`` carry their ``path``; values stay out."""

    findings: tuple[Finding, ...]
    truncated: bool = False  # the scan stopped at MAX_FINDINGS: there are more than these
    _slots: Mapping[str, tuple[Path, str]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.findings)

    def redacted(self, result: object, findings: Iterable[Finding] | None = None) -> object:
        """A copy of ``result`` with ``findings`` (default: all) replaced by their labels."""
        by_path: dict[str, list[Finding]] = {}
        for f in self.findings if findings is None else findings:
            by_path.setdefault(f.path, []).append(f)
        copies: dict[int, object] = {}
        root = result
        keys: list[tuple[Path, str]] = []
        for where, items in by_path.items():
            path, text = self._slots[where]
            if path and path[-1] == KEY:
                keys.append((path[:-1], redact(text, items)))
            else:
                root = _replace(root, path, redact(text, items), copies)
        # Keys last (the strings' paths name them as they were), the deepest first.
        for path, name in sorted(keys, key=lambda item: -len(item[0])):
            root = _rename(root, path, name, copies)
        return root


NOTHING = Inspection(())


def inspect_result(result: object, scanner: Scanner) -> Inspection:
    """Scan every string of ``result`` that reaches the model (see the module docstring)."""
    return _inspect_slots(text_slots(result), scanner)


def _inspect_slots(slots: list[tuple[Path, str]], scanner: Scanner) -> Inspection:
    if not slots:
        return NOTHING
    found, truncated = scanner.scan_texts([text for _, text in slots])
    if not truncated and not any(found):
        return NOTHING
    findings: list[Finding] = []
    named: dict[str, tuple[Path, str]] = {}
    # A key with a finding is shown redacted in every path through it: paths go to stderr, the audit
    # log and a blocked result's _meta.
    shown = {
        path[:-1]: redact(text, items)
        for (path, text), items in zip(slots, found, strict=True)
        if items and path and path[-1] == KEY
    }
    for (path, text), items in zip(slots, found, strict=True):
        if items:
            where = format_path(_shown(path, shown) if shown else path)
            named[where] = (path, text)
            findings.extend(f.at(where) for f in items)
    return Inspection(tuple(findings), truncated, named)


def inspect_value(value: object, scanner: Scanner, path: Path = ()) -> Inspection:
    """Scan every string in ``value`` at any depth: a tool definition from ``tools/list`` (name,
    description, schemas, annotations), a server's ``instructions``, a prompt or resource listing.
    Paths start at ``path`` (``("tools", 3)`` gives ``tools[3].description``)."""
    slots: list[tuple[Path, str]] = []
    _strings(value, path, slots)
    return _inspect_slots(slots, scanner)


def _shown(path: Path, keys: Mapping[Path, str]) -> Path:
    return tuple(keys.get(path[: i + 1], key) if isinstance(key, str) else key for i, key in enumerate(path))


def _rename(node: object, path: Sequence[Key], name: str, copies: dict[int, object]) -> object:
    """``node`` with the key at ``path`` (its object's path, then the key) renamed to ``name``."""
    if len(path) > 1:
        key, rest = path[0], path[1:]
        copy = _copy(node, copies)
        if isinstance(copy, dict):
            copy[str(key)] = _rename(copy[str(key)], rest, name, copies)
        elif isinstance(copy, list) and isinstance(key, int):
            copy[key] = _rename(copy[key], rest, name, copies)
        return copy
    old = copies.get(id(node), node)
    if not isinstance(old, dict):  # pragma: no cover - paths come from the same result
        raise TypeError("no object for a key")
    renamed = {(name if k == path[0] else k): v for k, v in old.items()}
    copies[id(node)] = renamed
    copies[id(renamed)] = renamed
    return renamed


def _copy(node: object, copies: dict[int, object]) -> object:
    copy = copies.get(id(node))
    if copy is None:
        if isinstance(node, dict):
            copy = dict(node)
        elif isinstance(node, list):
            copy = list(node)
        else:  # pragma: no cover - paths come from text_slots over the same result
            raise TypeError("no container")
        copies[id(node)] = copy
        copies[id(copy)] = copy
    return copy


def _replace(node: object, path: Sequence[Key], value: str, copies: dict[int, object]) -> object:
    """``node`` with the string at ``path`` set to ``value``; containers on the way are copied once."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    copy = _copy(node, copies)
    if isinstance(copy, dict):
        copy[str(key)] = _replace(copy[str(key)], rest, value, copies)
    elif isinstance(copy, list) and isinstance(key, int):
        copy[key] = _replace(copy[key], rest, value, copies)
    return copy
