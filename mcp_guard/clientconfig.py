"""Rewrite MCP client config files so stdio servers start through mcp-guard, and back.

Pure logic, no argparse: :mod:`mcp_guard.commands.wrap` is the command line on top.

How the edit is made
    The file is never re-serialised. A small JSON parser that also accepts the JSONC
    that VS Code and Cursor allow (comments, trailing commas) records where every value
    sits in the text, and wrapping is a handful of splices: the ``command`` value is
    replaced and the guard's own arguments are inserted in front of the first ``args``
    item. Everything else (key order, indentation, line endings, comments, escapes,
    non-ASCII text, the trailing newline) is left byte for byte as it was.

Where the original is kept
    In the entry's own ``args``, after ``--``: a wrapped entry reads
    ``mcp-guard [--policy FILE] -- ORIGINAL_COMMAND ORIGINAL_ARGS...``, which is exactly
    what the guard needs to start the server anyway. No extra key is added to the entry:
    client schemas differ on unknown keys (Claude Desktop validates entries and skips
    those it does not accept), clients rewrite their own files (Claude Code rewrites
    ``~/.claude.json`` all the time), and a second copy could go stale when someone edits
    the args of a wrapped entry. ``env``, ``cwd``, ``type`` and every other key are never
    touched: the client still applies them, and the guard passes its environment and
    working directory on to the server.

    Unwrapping takes the original command's JSON text verbatim from after ``--`` and
    removes exactly the text that wrapping inserted, so wrap-then-unwrap gives back the
    identical bytes. The one fact ``args`` cannot carry is whether the entry had an
    ``args`` key at all: when it had none, wrapping adds one in a recognisable layout
    (its own line, one item per line, in a multi-line entry; ``, "args": [...]`` right
    after the command in a one-line entry), and unwrap removes an ``args`` member that
    still has exactly that text. The only case this cannot tell apart is a one-line entry
    written as ``{"command": "x", "args": []}``, which comes back as ``{"command": "x"}``
    — the same server to every client.
"""

from __future__ import annotations

import difflib
import json
import ntpath
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CLIENTS: dict[str, str] = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
}

GUARD_NAME = "mcp-guard"
GUARD_MODULE = "mcp_guard"
REMOTE_TYPES = frozenset({"sse", "http", "streamable-http", "streamablehttp", "ws", "websocket"})


class ConfigError(Exception):
    """A config file that cannot be read or changed; ``str()`` says where and why."""


# --------------------------------------------------------------------------- parsing


@dataclass
class JNode:
    """A JSON value and where its text is: ``text[start:end]``."""

    start: int
    end: int


@dataclass
class JScalar(JNode):
    value: Any


@dataclass
class JArray(JNode):
    items: list[JNode] = field(default_factory=list)
    commas: list[int] = field(default_factory=list)


@dataclass
class JMember:
    key: str
    key_start: int
    key_end: int
    value: JNode


@dataclass
class JObject(JNode):
    members: list[JMember] = field(default_factory=list)

    def get(self, key: str) -> JMember | None:
        """The member named ``key`` (the last one, as JavaScript's JSON.parse keeps it)."""
        found = None
        for member in self.members:
            if member.key == key:
                found = member
        return found


_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.pos = 1 if text.startswith("\ufeff") else 0

    def fail(self, message: str, pos: int | None = None) -> ConfigError:
        at = self.pos if pos is None else pos
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return ConfigError(f"{self.file}:{line}:{column}: {message}")

    def skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r\n":
                self.pos += 1
            elif text.startswith("//", self.pos):
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
        node = self.value()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the JSON document")
        return node

    def value(self) -> JNode:
        text = self.text
        if self.pos >= len(text):
            raise self.fail("unexpected end of file")
        ch = text[self.pos]
        if ch == "{":
            return self.object()
        if ch == "[":
            return self.array()
        if ch == '"':
            return self.string()
        m = _NUMBER.match(text, self.pos)
        if m:
            self.pos = m.end()
            return JScalar(m.start(), m.end(), json.loads(m.group()))
        for word, literal in _LITERALS.items():
            if text.startswith(word, self.pos):
                start = self.pos
                self.pos += len(word)
                return JScalar(start, self.pos, literal)
        raise self.fail(f"unexpected character {ch!r}")

    def string(self) -> JScalar:
        m = _STRING.match(self.text, self.pos)
        if m is None:
            raise self.fail("invalid string")
        self.pos = m.end()
        return JScalar(m.start(), m.end(), json.loads(m.group()))

    def object(self) -> JObject:
        node = JObject(self.pos, self.pos)
        self.pos += 1
        while True:
            self.skip()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                node.end = self.pos
                return node
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a key in double quotes or '}'")
            key = self.string()
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':'")
            self.pos += 1
            self.skip()
            value = self.value()
            node.members.append(JMember(str(key.value), key.start, key.end, value))
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("}", self.pos):
                raise self.fail("expected ',' or '}'")

    def array(self) -> JArray:
        node = JArray(self.pos, self.pos)
        self.pos += 1
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                node.end = self.pos
                return node
            node.items.append(self.value())
            self.skip()
            if self.text.startswith(",", self.pos):
                node.commas.append(self.pos)
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                raise self.fail("expected ',' or ']'")


def parse(text: str, file: str = "<config>") -> JNode:
    """Parse JSON (with JSONC comments and trailing commas) keeping every value's position."""
    try:
        return _Parser(text, file).document()
    except RecursionError:
        raise ConfigError(f"{file}: nested too deeply to edit") from None


# --------------------------------------------------------------------------- the guard's command


@dataclass(frozen=True)
class GuardLaunch:
    """How a wrapped entry starts the guard: ``command`` and the args before the server's command."""

    command: str
    prefix: tuple[str, ...]

    @property
    def options(self) -> tuple[str, ...]:
        """The guard's own options (``--policy FILE``), without the interpreter part and ``--``."""
        start = 2 if self.prefix[:2] == ("-m", GUARD_MODULE) else 0
        return self.prefix[start:-1]


def find_guard_command() -> list[str]:
    """An absolute command that starts mcp-guard, so a client with a minimal PATH finds it.

    The console script next to this interpreter (a venv's ``bin/``, or ``Scripts\\`` on
    Windows), else ``mcp-guard`` on PATH, else ``python -m mcp_guard`` with this interpreter.
    """
    name = f"{GUARD_NAME}.exe" if sys.platform == "win32" else GUARD_NAME
    if sys.executable:
        here = Path(sys.executable).parent
        for candidate in (here / name, here / "Scripts" / name):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return [os.path.abspath(candidate)]
    found = shutil.which(GUARD_NAME)
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", GUARD_MODULE]


def guard_launch(
    policy: str | None, guard_command: Sequence[str] | None = None, policy_sha256: str | None = None
) -> GuardLaunch:
    """The launch to write; ``policy`` should already be absolute."""
    command = list(guard_command) if guard_command is not None else find_guard_command()
    options = ["--policy", policy] if policy is not None else []
    if policy_sha256 is not None:
        options += ["--policy-sha256", policy_sha256]
    return GuardLaunch(command[0], (*command[1:], *options, "--"))


_GUARD_OPTIONS_WITH_VALUE = frozenset(
    {
        "--policy",
        "--policy-sha256",
        "--name",
        "--state",
        "--audit-log",
        "--approval",
        "--approval-command",
        "--approval-timeout",
        "--pins",
    }
)


def _guard_start(command: str, args: Sequence[str]) -> int | None:
    """Where the guard's own argv starts in ``args`` if the entry runs the guard, else None."""
    base = ntpath.basename(command).lower()  # ntpath splits on both / and \
    for suffix in (".exe", ".cmd", ".bat"):
        base = base.removesuffix(suffix)
    if base == GUARD_NAME:
        return 0
    if list(args[:2]) == ["-m", GUARD_MODULE]:
        return 2
    return None


def split_guard_args(command: str, args: Sequence[str]) -> tuple[list[str], int] | None:
    """For an entry that runs the guard: its options and the index of the server's command in args.

    Follows the guard's own command line: options up to ``--``, or up to the first word
    that is not an option. Returns None for an entry that does not run the guard; raises
    ``ValueError`` for one that runs it without a server command.
    """
    start = _guard_start(command, args)
    if start is None:
        return None
    i = start
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-"):
            break
        i += 2 if word in _GUARD_OPTIONS_WITH_VALUE else 1
    if i >= len(args):
        raise ValueError("it runs mcp-guard but no server command follows")
    options = [a for a in args[start:i] if a != "--"]
    return options, i


# --------------------------------------------------------------------------- entries


@dataclass
class EntryResult:
    """What happened to one server entry."""

    container: str
    name: str
    action: str  # wrapped, rewrapped, already-wrapped, unwrapped, not-wrapped, skipped
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.container}.{self.name}"


@dataclass
class Outcome:
    """The result of wrapping or unwrapping one file's text."""

    old_text: str
    new_text: str
    entries: list[EntryResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


@dataclass(frozen=True)
class _Entry:
    container: str
    name: str
    node: JNode


class _Skip(Exception):
    pass


_Edit = tuple[int, int, str]


def _apply(text: str, edits: list[_Edit]) -> str:
    for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _same_path(a: str, b: Path) -> bool:
    def norm(p: str) -> str:
        return os.path.normcase(os.path.normpath(p))

    return bool({norm(a), norm(os.path.realpath(a))} & {norm(str(b)), norm(os.path.realpath(b))})


def _entries(root: JNode, project_dir: Path | None, notes: list[str] | None = None) -> Iterator[_Entry]:
    """Server entries in the places clients keep them, in file order per place.

    ``mcpServers`` (Claude Desktop, Claude Code, Cursor), ``servers`` (VS Code) and,
    in Claude Code's ``~/.claude.json``, ``projects.<project dir>.mcpServers`` for the
    project directory given. Other projects' servers are left alone and mentioned in ``notes``.
    """
    if not isinstance(root, JObject):
        raise ConfigError("not a JSON object")
    for key in ("mcpServers", "servers"):
        member = root.get(key)
        if member is not None and isinstance(member.value, JObject):
            for m in member.value.members:
                yield _Entry(key, m.key, m.value)
    projects = root.get("projects")
    if projects is None or not isinstance(projects.value, JObject):
        return
    others = 0
    for project in projects.value.members:
        if not isinstance(project.value, JObject):
            continue
        servers = project.value.get("mcpServers")
        if servers is None or not isinstance(servers.value, JObject) or not servers.value.members:
            continue
        if project_dir is not None and _same_path(project.key, project_dir):
            label = f"projects[{json.dumps(project.key, ensure_ascii=False)}].mcpServers"
            for m in servers.value.members:
                yield _Entry(label, m.key, m.value)
        else:
            others += 1
    if others and notes is not None:
        notes.append(
            f"{others} other project(s) under 'projects' have their own mcpServers and were left alone; "
            "run this from each project's directory (or pass --project DIR) to include them"
        )


def _parse_root(text: str, file: str) -> JObject:
    root = parse(text, file)
    if not isinstance(root, JObject):
        raise ConfigError(f"{file}: expected a JSON object at the top, as MCP client configs are")
    return root


def _object(node: JNode) -> JObject:
    assert isinstance(node, JObject)  # noqa: S101  (callers only plan edits for objects)
    return node


def _string(node: JNode | None) -> str | None:
    if isinstance(node, JScalar) and isinstance(node.value, str):
        return node.value
    return None


def _remote_reason(entry: JObject) -> str | None:
    if entry.get("url") is not None:
        return "remote server with a 'url'; mcp-guard wraps stdio servers only"
    member = entry.get("type")
    kind = _string(member.value) if member is not None else None
    if kind is not None and kind.lower() in REMOTE_TYPES:
        return f"remote server of type {kind!r}; mcp-guard wraps stdio servers only"
    return None


@dataclass
class _Launch:
    """An entry's command and args as found in the text."""

    command: JMember
    args: JMember | None
    items: list[JScalar]
    values: list[str]


def _launch_of(entry: JObject) -> _Launch:
    command = entry.get("command")
    if command is None:
        raise _Skip("no 'command'")
    if _string(command.value) is None:
        raise _Skip("'command' is not a string")
    args = entry.get("args")
    items: list[JScalar] = []
    if args is not None:
        if not isinstance(args.value, JArray):
            raise _Skip("'args' is not a list")
        for item in args.value.items:
            if not (isinstance(item, JScalar) and isinstance(item.value, str)):
                raise _Skip("'args' has an item that is not a string")
            items.append(item)
    return _Launch(command, args, items, [str(i.value) for i in items])


def _line_indent(text: str, pos: int) -> str | None:
    """The whitespace before ``pos`` on its line, if only whitespace precedes it there."""
    line_start = text.rfind("\n", 0, pos) + 1
    before = text[line_start:pos]
    return before if before.strip(" \t") == "" and line_start > 0 else None


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _inserted_args(text: str, entry: JObject, command: JMember, items: Sequence[str]) -> str:
    """The text wrapping inserts after the command's value when the entry has no ``args``.

    A pure function of text wrapping does not change, so unwrap can recompute it and
    recognise an ``args`` member that wrapping added.
    """
    kv = text[command.key_end : command.value.start]
    if kv.strip() != ":":
        kv = ": "
    member_indent = _line_indent(text, command.key_start)
    if member_indent is None or "\n" not in text[entry.start : command.key_start]:
        return ', "args"' + kv + "[" + ", ".join(items) + "]"
    nl = _newline(text)
    close_indent = _line_indent(text, entry.end - 1)
    if close_indent is not None and member_indent.startswith(close_indent) and member_indent != close_indent:
        unit = member_indent[len(close_indent) :]
    else:
        unit = "\t" if "\t" in member_indent else "  "
    inner = nl + member_indent + unit
    return "," + nl + member_indent + '"args"' + kv + "[" + inner + ("," + inner).join(items) + nl + member_indent + "]"


def _array_sep(text: str, arr: JArray) -> str:
    """What follows a comma between this array's items (e.g. ``" "`` or newline + indent)."""
    nl = _newline(text)
    if len(arr.items) >= 2:
        sep = text[arr.commas[0] + 1 : arr.items[1].start]
        anchor = arr.items[1].start
    else:
        sep = text[arr.start + 1 : arr.items[0].start]
        anchor = arr.items[0].start
    if sep.strip() == "":
        return sep if ("\n" in sep or len(arr.items) >= 2) else " "
    indent = _line_indent(text, anchor)
    return nl + indent if indent is not None else " "


def _wrap_edits(text: str, entry: JObject, launch: GuardLaunch) -> list[_Edit]:
    found = _launch_of(entry)
    command_raw = text[found.command.value.start : found.command.value.end]
    new_command = json.dumps(launch.command, ensure_ascii=False)
    prefix = [json.dumps(a, ensure_ascii=False) for a in launch.prefix] + [command_raw]
    edits: list[_Edit] = []
    if found.args is None:
        inserted = _inserted_args(text, entry, found.command, prefix)
        return [(found.command.value.start, found.command.value.end, new_command + inserted)]
    edits.append((found.command.value.start, found.command.value.end, new_command))
    arr = found.args.value
    assert isinstance(arr, JArray)  # noqa: S101  (checked by _launch_of)
    if arr.items:
        sep = _array_sep(text, arr)
        edits.append((arr.items[0].start, arr.items[0].start, "".join(p + "," + sep for p in prefix)))
    else:
        edits.append((arr.end - 1, arr.end - 1, ", ".join(prefix)))
    return edits


def _unwrap_edits(text: str, entry: JObject) -> list[_Edit]:
    found = _launch_of(entry)
    command = _string(found.command.value)
    assert command is not None  # noqa: S101
    try:
        split = split_guard_args(command, found.values)
    except ValueError as exc:
        raise _Skip(str(exc)) from None
    if split is None or found.args is None:
        raise _Skip("not wrapped")
    _, cut = split
    arr = found.args.value
    assert isinstance(arr, JArray)  # noqa: S101
    items = found.items
    server = items[cut]
    server_raw = text[server.start : server.end]
    g0 = text[arr.start + 1 : items[0].start]
    if cut + 1 < len(items):
        new_args = "[" + g0 + text[items[cut + 1].start : arr.end]
    else:
        index = entry.members.index(found.command)
        follows = index + 1 < len(entry.members) and entry.members[index + 1] is found.args
        prefix_raw = [text[i.start : i.end] for i in items[: cut + 1]]
        if follows and text[found.command.value.end : arr.end] == _inserted_args(
            text, entry, found.command, prefix_raw
        ):
            return [(found.command.value.start, arr.end, server_raw)]
        new_args = "[" + g0 + text[server.end : arr.end]
    return [(found.command.value.start, found.command.value.end, server_raw), (arr.start, arr.end, new_args)]


def _select(entries: Iterator[_Entry], servers: Collection[str] | None, found: set[str]) -> Iterator[_Entry]:
    for entry in entries:
        if servers is not None and entry.name not in servers:
            continue
        found.add(entry.name)
        yield entry


def _stdio_entries(
    root: JObject, project_dir: Path | None, servers: Collection[str] | None, outcome: Outcome
) -> Iterator[tuple[int, _Entry, EntryResult]]:
    """The chosen entries that are stdio server objects, with their index among all chosen entries.

    Every chosen entry gets a result in ``outcome`` (``skipped`` unless the caller says otherwise);
    entries that are not objects, or are remote servers, say why and are not yielded.
    """
    for index, entry in enumerate(_select(_entries(root, project_dir, outcome.notes), servers, outcome.found)):
        result = EntryResult(entry.container, entry.name, "skipped")
        outcome.entries.append(result)
        if not isinstance(entry.node, JObject):
            result.detail = "not an object"
            continue
        remote = _remote_reason(entry.node)
        if remote:
            result.detail = remote
            continue
        yield index, entry, result


def wrap_text(
    text: str,
    launch: GuardLaunch,
    *,
    servers: Collection[str] | None = None,
    project_dir: Path | None = None,
    update_options: bool = False,
    file: str = "<config>",
) -> Outcome:
    """Wrap the chosen stdio servers (all when ``servers`` is None) in ``text``.

    An entry that already runs the guard is left alone, unless ``update_options`` is set
    and its guard options differ from ``launch``'s: then it is unwrapped and wrapped
    again with ``launch`` (e.g. to point it at a different policy).
    """
    outcome = Outcome(text, text)
    root = _parse_root(text, file)
    rewrap: list[int] = []
    plan: list[tuple[int, _Entry]] = []
    for index, entry, result in _stdio_entries(root, project_dir, servers, outcome):
        try:
            found = _launch_of(_object(entry.node))
            command = _string(found.command.value)
            assert command is not None  # noqa: S101
            split = split_guard_args(command, found.values)
        except (_Skip, ValueError) as exc:
            result.detail = str(exc)
            continue
        if split is None:
            result.action = "wrapped"
            plan.append((index, entry))
        elif update_options and tuple(split[0]) != launch.options:
            result.action = "rewrapped"
            result.detail = f"guard options {split[0]} -> {list(launch.options)}"
            rewrap.append(index)
            plan.append((index, entry))
        else:
            result.action = "already-wrapped"
    if rewrap:
        edits = [e for i, entry in plan if i in rewrap for e in _unwrap_edits(text, _object(entry.node))]
        text = _apply(text, edits)
        fresh = list(_select(_entries(parse(text, file), project_dir), servers, set()))
        plan = [(i, fresh[i]) for i, _ in plan]
    edits = [e for _, entry in plan for e in _wrap_edits(text, _object(entry.node), launch)]
    outcome.new_text = _apply(text, edits)
    return outcome


def unwrap_text(
    text: str,
    *,
    servers: Collection[str] | None = None,
    project_dir: Path | None = None,
    file: str = "<config>",
) -> Outcome:
    """Give the chosen wrapped entries (all when ``servers`` is None) their own command back."""
    outcome = Outcome(text, text)
    root = _parse_root(text, file)
    edits: list[_Edit] = []
    for _, entry, result in _stdio_entries(root, project_dir, servers, outcome):
        try:
            edits.extend(_unwrap_edits(text, _object(entry.node)))
            result.action = "unwrapped"
        except _Skip as exc:
            if str(exc) == "not wrapped":
                result.action = "not-wrapped"
            else:
                result.detail = str(exc)
    outcome.new_text = _apply(text, edits)
    return outcome


# --------------------------------------------------------------------------- files


def client_config_paths(
    client: str,
    *,
    project_dir: Path,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> list[Path]:
    """The config files ``client`` reads, whether or not they exist, user-level first."""
    env = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    platform = sys.platform if platform is None else platform

    def app_dir(name: str) -> Path:
        if platform == "darwin":
            return home / "Library" / "Application Support" / name
        if platform == "win32":
            return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / name
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / name

    if client == "claude-desktop":
        paths = [app_dir("Claude") / "claude_desktop_config.json"]
    elif client == "claude-code":
        user_dir = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home
        paths = [user_dir / ".claude.json", project_dir / ".mcp.json"]
    elif client == "cursor":
        paths = [home / ".cursor" / "mcp.json", project_dir / ".cursor" / "mcp.json"]
    elif client == "vscode":
        paths = [app_dir("Code") / "User" / "mcp.json", project_dir / ".vscode" / "mcp.json"]
    else:
        raise ValueError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")
    unique: list[Path] = []
    seen: set[str] = set()
    for path in paths:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def read_config(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their text (UTF-8, a BOM kept as part of the text)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def backup_path(path: Path, now: datetime | None = None) -> Path:
    """``NAME.bak-YYYYmmdd-HHMMSS`` next to ``path``; ``-2``, ``-3``… if that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    return candidate


def write_config(path: Path, expected: bytes, new_text: str, now: datetime | None = None) -> Path:
    """Back the file up, then replace it atomically with ``new_text``; returns the backup's path.

    A symlinked config is written through to its target. The file's permission bits are
    kept. If the file no longer holds ``expected`` (another program wrote it meanwhile),
    nothing is written.
    """
    real = Path(os.path.realpath(path))
    current = real.read_bytes()
    if current != expected:
        raise ConfigError(f"{path}: changed while mcp-guard was editing it; nothing written, try again")
    mode = stat.S_IMODE(real.stat().st_mode)
    backup = backup_path(real, now)
    shutil.copy2(real, backup)
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(new_text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return backup


def unified_diff(path: Path, old: str, new: str) -> str:
    """A unified diff of the change, for ``--dry-run``."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"{path}", tofile=f"{path} (new)"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
