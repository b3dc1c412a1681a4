"""Wrap and unwrap the server entries in one client config file's text, in place.

Stdio entries are described below; remote (``url``) entries, which ``wrap --remote`` turns
into stdio entries running mcp-remote and keeps the original text of, are described in
:mod:`mcp_guard.clients.remote`.

How the edit is made
    The file is never re-serialised. :mod:`mcp_guard.jsonpos` reads it (accepting the
    JSONC that VS Code and Cursor allow: comments, trailing commas) and records where
    every value sits in the text, and wrapping is a handful of splices: the ``command``
    value is replaced and the guard's own arguments are inserted in front of the first
    ``args`` item. Everything else (key order, indentation, line endings, comments, escapes,
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

import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mcp_guard.clients import remote as _remote
from mcp_guard.clients.files import ConfigError
from mcp_guard.clients.launch import GuardLaunch, split_guard_args
from mcp_guard.jsonpos import JArray, JMember, JNode, JObject, JScalar, JsonSyntaxError, parse


def _parse(text: str, file: str) -> JNode:
    try:
        return parse(text, jsonc=True)
    except JsonSyntaxError as exc:
        raise ConfigError(f"{file}:{exc.line}:{exc.column}: {exc.message}") from None


@dataclass
class EntryResult:
    """What happened to one server entry."""

    container: str
    name: str
    action: str  # wrapped, rewrapped, already-wrapped, unwrapped, not-wrapped, skipped
    detail: str = ""
    remote: bool = False  # a remote entry, wrapped through mcp-remote

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
    root = _parse(text, file)
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
    server = _string(found.command.value) or ""
    prefix = [json.dumps(a, ensure_ascii=False) for a in launch.before(server)] + [command_raw]
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


def _remote_wrap_edits(text: str, entry: JObject, launch: GuardLaunch) -> list[_Edit]:
    """Turn a remote entry into a stdio one running ``mcp-guard ... -- npx -y mcp-remote URL ...``.

    The ``url`` member becomes ``command`` and ``args`` in its place (laid out as wrapping lays
    out the ``args`` it adds), ``type`` becomes ``"stdio"``, ``headers`` goes (it is in the args
    now), and every other key stays as it is. The entry's whole original text goes into the
    guard's ``--remote-entry`` option, from which unwrap restores it.
    """
    try:
        remote = _remote.remote_of(entry)
    except _remote.NotBridgeable as exc:
        raise _Skip(str(exc)) from None
    record = text[entry.start : entry.end]
    server = remote.command()
    argv = [*launch.prefix, _remote.RECORD_OPTION, record, *(["--"] if server[0].startswith("-") else []), *server]
    items = [json.dumps(a, ensure_ascii=False) for a in argv]
    url = entry.get("url")
    assert url is not None  # noqa: S101  (remote_of checked)
    kv = text[url.key_end : url.value.start]
    if kv.strip() != ":":
        kv = ": "
    command = '"command"' + kv + json.dumps(launch.command, ensure_ascii=False)
    edits: list[_Edit] = [(url.key_start, url.value.end, command + _inserted_args(text, entry, url, items))]
    kind = entry.get("type")
    if kind is not None:
        edits.append((kind.value.start, kind.value.end, '"stdio"'))
    headers = entry.get("headers")
    if headers is not None:
        edits.append(_member_removal(entry, headers))
    return edits


def _member_removal(entry: JObject, member: JMember) -> _Edit:
    """The edit that removes ``member`` from ``entry`` (not its only member) with one of its commas."""
    index = entry.members.index(member)
    if index + 1 < len(entry.members):
        return (member.key_start, entry.members[index + 1].key_start, "")
    return (entry.members[index - 1].value.end, member.value.end, "")


def _unwrap_edits(text: str, entry: JObject) -> tuple[list[_Edit], str]:
    """The edits that give a wrapped entry its own command back, and a note on how (or "")."""
    found = _launch_of(entry)
    command = _string(found.command.value)
    assert command is not None  # noqa: S101
    try:
        split = split_guard_args(command, found.values)
    except ValueError as exc:
        raise _Skip(str(exc)) from None
    if split is None or found.args is None:
        raise _Skip("not wrapped")
    options, cut = split
    record = _remote.split_record(options)[1]
    note = ""
    if record is not None:
        changed = _remote_record_problem(record, entry, found.values[cut:])
        if changed is None:
            return [(entry.start, entry.end, record)], "back to the remote entry it was"
        note = f"{changed}, so it keeps running mcp-remote, unguarded, instead of becoming the remote entry it was"
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
            return [(found.command.value.start, arr.end, server_raw)], note
        new_args = "[" + g0 + text[server.end : arr.end]
    edits = [(found.command.value.start, found.command.value.end, server_raw), (arr.start, arr.end, new_args)]
    return edits, note


def _remote_record_problem(record: str, entry: JObject, server: Sequence[str]) -> str | None:
    """None if ``record`` (a ``--remote-entry``) can replace ``entry``; else why not."""
    try:
        original = parse(record, jsonc=True)
    except JsonSyntaxError:
        return "its --remote-entry is not the JSON text of an entry"
    if not isinstance(original, JObject):
        return "its --remote-entry is not the JSON text of an entry"
    return _remote.still_matches(original, entry, server)


def _select(entries: Iterator[_Entry], servers: Collection[str] | None, found: set[str]) -> Iterator[_Entry]:
    for entry in entries:
        if servers is not None and entry.name not in servers:
            continue
        found.add(entry.name)
        yield entry


def _chosen_entries(
    root: JObject,
    project_dir: Path | None,
    servers: Collection[str] | None,
    outcome: Outcome,
    *,
    remote: str,
) -> Iterator[tuple[int, _Entry, EntryResult, bool]]:
    """The chosen server objects, each with its index among all chosen entries and whether it is remote.

    Every chosen entry gets a result in ``outcome`` (``skipped`` unless the caller says otherwise);
    entries that are not objects say why and are not yielded. ``remote`` says what to do with
    remote (``url``) entries: ``"wrap"`` yields those mcp-remote can stand in for (the others
    are skipped, saying why); ``"offer"`` skips them all, saying whether ``--remote`` would
    wrap them; ``"leave"`` reports them as not wrapped.
    """
    for index, entry in enumerate(_select(_entries(root, project_dir, outcome.notes), servers, outcome.found)):
        result = EntryResult(entry.container, entry.name, "skipped")
        outcome.entries.append(result)
        if not isinstance(entry.node, JObject):
            result.detail = "not an object"
            continue
        kind = _remote.remote_kind(entry.node)
        if kind is None:
            yield index, entry, result, False
            continue
        if remote == "leave":
            result.action = "not-wrapped"
            continue
        try:
            _remote.remote_of(entry.node)
        except _remote.NotBridgeable as exc:
            result.detail = f"{kind}; not wrapped: {exc}"
            continue
        if remote == "wrap":
            yield index, entry, result, True
        else:
            result.detail = f"{kind}; add --remote to guard it through mcp-remote"


def wrap_text(
    text: str,
    launch: GuardLaunch | Mapping[str, GuardLaunch],
    *,
    servers: Collection[str] | None = None,
    project_dir: Path | None = None,
    update_options: bool = False,
    remote: bool = False,
    file: str = "<config>",
) -> Outcome:
    """Wrap the chosen stdio servers (all when ``servers`` is None) in ``text``; with ``remote``, remote ones too.

    ``launch`` is one launch for every entry, or one per server name (``wrap --init``: each
    server its own policy; an entry whose name has none is skipped). An entry that already
    runs the guard is left alone, unless ``update_options`` is set and its guard options
    differ from its launch's: then it is unwrapped and wrapped again (e.g. to point it at a
    different policy); an entry that ``--remote`` wrapped is wrapped again the same way.
    """
    outcome = Outcome(text, text)
    root = _parse_root(text, file)
    rewrap: list[int] = []
    plan: list[tuple[int, _Entry]] = []
    literal: list[str] = []
    launches: dict[int, GuardLaunch] = {}
    chosen_entries = _chosen_entries(root, project_dir, servers, outcome, remote="wrap" if remote else "offer")
    for index, entry, result, is_remote in chosen_entries:
        chosen = launch if isinstance(launch, GuardLaunch) else launch.get(entry.name)
        if chosen is None:
            result.detail = "no policy made for it"
            continue
        launches[index] = chosen
        if is_remote:
            result.action = "wrapped"
            result.detail = "remote, through mcp-remote"
            result.remote = True
            plan.append((index, entry))
            credentials = _remote.literal_credentials(_remote.remote_of(_object(entry.node)))
            literal += [f"{entry.name}: {name}" for name in credentials]
            continue
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
        elif update_options and tuple(_remote.split_record(split[0])[0]) != chosen.options:
            result.action = "rewrapped"
            result.detail = f"guard options {_remote.split_record(split[0])[0]} -> {list(chosen.options)}"
            rewrap.append(index)
            plan.append((index, entry))
        else:
            result.action = "already-wrapped"
    if rewrap:
        edits = [e for i, entry in plan if i in rewrap for e in _unwrap_edits(text, _object(entry.node))[0]]
        text = _apply(text, edits)
        fresh = list(_select(_entries(_parse(text, file), project_dir), servers, set()))
        plan = [(i, fresh[i]) for i, _ in plan]
    edits = []
    for index, entry in plan:
        node = _object(entry.node)
        if _remote.remote_kind(node) is not None:
            edits.extend(_remote_wrap_edits(text, node, launches[index]))
        else:
            edits.extend(_wrap_edits(text, node, launches[index]))
    outcome.new_text = _apply(text, edits)
    if literal:
        outcome.notes.append(
            f"these credentials are now on the command lines of mcp-guard and mcp-remote, which other users of "
            f"this machine can read in the process list: {', '.join(literal)}; where the client supports it, write "
            "the secret as a variable (${VAR} in Claude Code, ${env:VAR} in Cursor, ${input:ID} in VS Code)"
        )
    return outcome


def unwrap_text(
    text: str,
    *,
    servers: Collection[str] | None = None,
    project_dir: Path | None = None,
    file: str = "<config>",
) -> Outcome:
    """Give the chosen wrapped entries (all when ``servers`` is None) their own command back.

    An entry ``wrap --remote`` made gets its remote entry back, byte for byte.
    """
    outcome = Outcome(text, text)
    root = _parse_root(text, file)
    edits: list[_Edit] = []
    for _, entry, result, _ in _chosen_entries(root, project_dir, servers, outcome, remote="leave"):
        try:
            found, result.detail = _unwrap_edits(text, _object(entry.node))
            edits.extend(found)
            result.action = "unwrapped"
        except _Skip as exc:
            if str(exc) == "not wrapped":
                result.action = "not-wrapped"
            else:
                result.detail = str(exc)
    outcome.new_text = _apply(text, edits)
    return outcome


@dataclass(frozen=True)
class StdioServer:
    """A stdio server entry as a client would start it: the server's own argv (after the guard's ``--``
    when the entry is wrapped), and the ``env`` and ``cwd`` the client gives it."""

    container: str
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    guard_options: list[str] | None  # the guard's options when the entry is wrapped, else None

    @property
    def label(self) -> str:
        return f"{self.container}.{self.name}"


def stdio_servers(
    text: str,
    *,
    servers: Collection[str] | None = None,
    project_dir: Path | None = None,
    file: str = "<config>",
) -> list[StdioServer]:
    """The chosen stdio server entries of a config file's text (all when ``servers`` is None), in file order.

    Entries :func:`wrap_text` would skip (remote servers, malformed entries) are left out.
    """
    outcome = Outcome(text, text)
    found: list[StdioServer] = []
    for _, entry, _result, is_remote in _chosen_entries(
        _parse_root(text, file), project_dir, servers, outcome, remote="offer"
    ):
        if is_remote:
            continue
        node = _object(entry.node)
        try:
            launch = _launch_of(node)
            command = _string(launch.command.value)
            assert command is not None  # noqa: S101  (checked by _launch_of)
            split = split_guard_args(command, launch.values)
        except (_Skip, ValueError):
            continue
        argv = [command, *launch.values] if split is None else launch.values[split[1] :]
        env_member = node.get("env")
        env: dict[str, str] = {}
        if env_member is not None and isinstance(env_member.value, JObject):
            for member in env_member.value.members:
                value = _string(member.value)
                if value is not None:
                    env[member.key] = value
        cwd_member = node.get("cwd")
        cwd = _string(cwd_member.value) if cwd_member is not None else None
        options = None if split is None else list(split[0])
        found.append(StdioServer(entry.container, entry.name, argv, env, cwd, options))
    return found
