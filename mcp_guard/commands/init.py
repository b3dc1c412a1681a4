"""``mcp-guard init -- COMMAND [ARGS...]``: write a starter policy from a server's own tool list.

The server is started once with the MCP SDK's client, declaring what real clients declare
(roots, sampling, elicitation; ``--capabilities`` to choose: servers offer some tools only to
clients that declare them), every page of ``tools/list`` is read, and each tool gets a rule
from its annotations:

* ``readOnlyHint: true``: allowed, no limit;
* ``destructiveHint: true``: denied;
* anything else: allowed, at most 30 calls a minute.

``default`` is ``deny``, so tools the server adds later are refused until listed. A rule's
``reason`` is what the model is told when the rule refuses a call, so it is written to the
model; why the rule was chosen and what to change goes in its ``note``, which the guard never
sends anywhere. The document is loaded with the guard's own policy loader before it is put in
place: init never writes a policy the guard would refuse. The policy and its lock file are put
in place together (:mod:`mcp_guard.atomic`): Ctrl-C or an error leaves both or neither.

``wrap --init`` makes one policy per server through :func:`draft` and :func:`write_draft`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard import exits
from mcp_guard.commands.listing import DEFAULT_CAPABILITIES, add_capabilities, add_timeout

if TYPE_CHECKING:
    from mcp_guard.commands.listing import Listing

HELP = (
    "Start an MCP stdio server once, list all its tools as a client declaring roots, sampling and elicitation "
    "would see them, and write a starter policy from their annotations (with a lock file pinning them): "
    "read-only tools allowed, destructive ones denied, the rest allowed at 30 calls a minute; default deny."
)
USAGE = "mcp-guard init [-o FILE] [--force] [--capabilities LIST] [--timeout SECONDS] -- COMMAND [ARGS...]"
DEFAULT_OUTPUT = "mcp-guard-policy.json"
RATE_MAX = 30
# What the model is told when a rule refuses a call: addressed to it, about the tool.
DESTRUCTIVE_REASON = "The server marks this tool as destructive: it can delete or change data."
# For the policy's author only (``note`` is never sent to the model).
DESTRUCTIVE_NOTE = (
    'destructive (destructiveHint): refused. Set "action" to "approve" to ask a person before each call, or to "allow"'
)
CONTRADICTORY_NOTE = (
    'destructive (destructiveHint, although also marked readOnlyHint): refused. Set "action" to "approve" to ask '
    'a person before each call, or to "allow"'
)
READ_ONLY_NOTE = 'read-only (readOnlyHint): allowed without a limit; add "limits" to cap it'
RATE_NOTE = (
    f"neither read-only nor destructive by its annotations: allowed, at most {RATE_MAX} calls a minute; "
    'change "max", or set "action" to "approve" or "deny"'
)


def _say(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"where to write the policy (default: {DEFAULT_OUTPUT} in the current directory); "
        "the lock file goes beside it as NAME.lock.json",
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_capabilities(parser)
    add_timeout(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after `--`")


def rule_for(tool: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A short label for the table and the policy rule for one tool (as the server listed it)."""
    annotations = tool.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    read_only = annotations.get("readOnlyHint") is True
    destructive = annotations.get("destructiveHint") is True
    if destructive:
        return "deny (destructive)", {
            "action": "deny",
            "reason": DESTRUCTIVE_REASON,
            "note": CONTRADICTORY_NOTE if read_only else DESTRUCTIVE_NOTE,
        }
    if read_only:
        return "allow (read-only)", {"note": READ_ONLY_NOTE}
    limit = {"counter": f"{tool['name']}_rate", "window": "minute", "max": RATE_MAX, "scope": "grant"}
    return f"allow, {RATE_MAX}/minute", {"note": RATE_NOTE, "limits": [limit]}


STARTER_RESULTS: Mapping[str, list[str]] = {
    "redact": ["secrets", "payment_cards"],
    "block": ["invisible_text", "terminal_escapes"],
}


def build_policy(tools: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The policy document and a (tool, decision) row per tool, in the server's order."""
    rules: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, str]] = []
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str) or name in rules:
            continue
        label, rule = rule_for(tool)
        rules[name] = rule
        rows.append((name, label))
    return {"version": "1", "default": "deny", "tools": rules}, rows


REQUEST_NOTE = "listed by the server when the policy was made: allowed (the default); add rules to limit or deny it"
TEMPLATE_NOTE = "the server's resource template {template}: allowed (the default); add rules to limit or deny it"


def request_sections(listing: Listing) -> dict[str, Any]:
    """A ``prompts`` and a ``resources`` section (for a server that offers them), default allow, with an entry
    for each prompt name and resource URI listed, and a glob for each resource template (``{var}`` -> ``*``),
    so the policy's author sees what there is and has a place to put a rule. A server that lists none gets
    no section: its requests are relayed untouched, at no cost."""
    from mcp_guard.policy.globs import globs_overlap, is_glob, literal_length

    sections: dict[str, Any] = {}
    if listing.prompts is not None:
        names = [p.get("name") for p in listing.prompts if isinstance(p, Mapping)]
        rules = {name: {"note": REQUEST_NOTE} for name in names if isinstance(name, str) and name and not is_glob(name)}
        if rules:
            sections["prompts"] = {"default": "allow", "hide": [], "rules": rules}
    if listing.resources is not None:
        entries: dict[str, dict[str, Any]] = {}
        for resource in listing.resources:
            uri = resource.get("uri") if isinstance(resource, Mapping) else None
            if isinstance(uri, str) and uri and not is_glob(uri):  # a URI with * or ? would read as a glob
                entries.setdefault(uri, {"note": REQUEST_NOTE})
        for template in listing.templates or []:
            text = template.get("uriTemplate") if isinstance(template, Mapping) else None
            if not isinstance(text, str) or is_glob(text):
                continue
            glob = re.sub(r"\{[^{}]*\}", "*", text)
            # Two equally specific globs matching the same URI would not load: keep the first.
            if glob in entries or not is_glob(glob):
                continue
            if any(
                is_glob(k) and literal_length(k) == literal_length(glob) and globs_overlap(k, glob) for k in entries
            ):
                continue
            entries[glob] = {"note": TEMPLATE_NOTE.format(template=text)}
        if entries:
            sections["resources"] = {"default": "allow", "hide": [], "rules": entries}
    return sections


@dataclass
class Draft:
    """A policy and its lock for one server, not written yet."""

    policy_text: str
    lock_text: str
    rows: list[tuple[str, str]]
    listing: Listing

    @property
    def server(self) -> str:
        from mcp_guard.commands.listing import server_label

        return server_label(self.listing.server)


def draft(
    command: list[str],
    timeout: float,
    capabilities: Sequence[str],
    lock_name: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Draft | None:
    """List the server once and draft its policy (pinning ``lock_name``, beside it); None after saying why not."""
    # One listing, as raw JSON: the rules come from its annotations and the pins from its definitions
    # (the SDK's models would drop fields a pin must cover).
    from mcp_guard.commands.listing import fetch_listing
    from mcp_guard.integrity.instructions import PinnedInstructions
    from mcp_guard.integrity.lockfile import LockFile

    listing = fetch_listing(command, timeout, capabilities, env, cwd)
    if listing is None:
        return None
    policy, rows = build_policy([t for t in listing.tools if isinstance(t, Mapping)])
    policy.update(request_sections(listing))
    # Check arguments against the pinned schemas: a starter policy should notice the server changing.
    policy["pins"] = {"file": lock_name, "mode": "enforce"}
    policy["validate_arguments"] = True
    # What comes back is checked too: credentials and card numbers never reach the model, hidden text and
    # terminal control sequences (instructions the person cannot see) withhold the result.
    policy = {
        "version": policy.pop("version"),
        "default": policy.pop("default"),
        "all_tools": {"results": dict(STARTER_RESULTS)},
        **policy,
    }
    text = json.dumps(policy, indent=2, ensure_ascii=False) + "\n"
    lock = LockFile.from_tools(listing.tools, listing.server, PinnedInstructions.of(listing.instructions))
    lock_text = lock.dumps()
    return Draft(text, lock_text, rows, listing)


def write_draft(output: Path, lock_path: Path, made: Draft, force: bool) -> None:
    """Check the policy with the guard's loader, then put it and its lock file in place together.

    Raises ``FileExistsError`` (``output`` exists and not ``force``), :class:`PolicyError` (a bug
    here) or ``OSError``.
    """
    from mcp_guard import atomic
    from mcp_guard.policy.load import load_policy

    staged: list[Path] = []
    try:
        staged.append(atomic.stage(lock_path, made.lock_text.encode("utf-8")))
        staged.append(atomic.stage(output, made.policy_text.encode("utf-8")))
        load_policy(staged[-1])
        if not force and output.exists():
            raise FileExistsError(str(output))
    except BaseException:
        atomic.discard(staged)
        raise
    atomic.commit([(staged[0], lock_path), (staged[1], output)])


def run(args: argparse.Namespace) -> int:
    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _say(f"no server command given: put it after `--`, e.g.\n  {USAGE}")
        return exits.USAGE
    output = Path(os.path.abspath(Path(args.output).expanduser()))
    if output.exists() and not args.force:
        _say(f"{output} already exists; not overwriting it (pass --force to replace it, or -o another file)")
        return exits.REFUSED
    if not output.parent.is_dir():
        _say(f"cannot write {output}: directory {output.parent} does not exist")
        return exits.FAILED

    from mcp_guard.paths import default_lock_path

    lock_path = default_lock_path(output)
    capabilities = DEFAULT_CAPABILITIES if args.capabilities is None else args.capabilities
    made = draft(command, args.timeout, capabilities, lock_path.name)
    if made is None:
        return exits.FAILED

    from mcp_guard.policy.load import PolicyError

    try:
        write_draft(output, lock_path, made, args.force)
    except FileExistsError:
        _say(f"{output} appeared while the server was starting; not overwriting it (pass --force)")
        return exits.REFUSED
    except PolicyError as exc:  # a bug in this module, never the user's doing
        _say(f"internal error: the generated policy does not load, nothing written:\n{exc}")
        return exits.FAILED
    except OSError as exc:
        _say(f"cannot write {output} and {lock_path}: {exc}")
        return exits.FAILED

    print_table(made.server, made.rows)
    policy_doc = json.loads(made.policy_text)
    for section, noun in (("prompts", "prompt(s)"), ("resources", "resource URI(s) and template(s)")):
        if section in policy_doc:
            count = len(policy_doc[section]["rules"])
            _say(f"{count} {noun} listed under {section!r}, allowed (its default): add rules there to limit or deny")
    tests_note = _starter_tests(output, made, args.force)
    if not made.rows:
        _say("the server lists no tools: with default deny, any tool it adds later is refused until listed")
    policy_arg = shlex.quote(str(output))
    _say(
        f'wrote {output} (default "deny": tools not listed there are refused; each rule\'s "note" says why it was '
        f"chosen) and the tool pins {lock_path}. Review them, then run the server as\n"
        f"  mcp-guard --policy {policy_arg} -- {shlex.join(command)}\n" + _wrap_advice(command, policy_arg)
    )
    if tests_note:
        _say(tests_note)
    return exits.OK


def _starter_tests(output: Path, made: Draft, force: bool) -> str:
    """Write the starter tests beside the policy; what to tell the user about them."""
    from mcp_guard.commands.starter import write_starter_tests

    try:
        written = write_starter_tests(output, [t for t in made.listing.tools if isinstance(t, Mapping)], force)
    except Exception as exc:  # the policy is written and good: tests are a bonus, never a failure of init
        return f"no starter tests written ({exc})"
    if isinstance(written, str):
        return f"no starter tests written: {written}"
    path, count = written
    return f"wrote {count} starter policy test(s) to {path}; run them with\n  mcp-guard test {shlex.quote(str(path))}"


def _wrap_advice(command: list[str], policy_arg: str) -> str:
    """The ``wrap`` line(s) that put this policy on this server, and on no other, in a client's config."""
    lines = [
        f"  mcp-guard wrap --client {client} --policy {policy_arg} --server {shlex.quote(name)}"
        for client, name in clients_running(command, Path.cwd())
    ]
    if lines:
        return "or put the guard in front of it in your client's config (only there: the lock pins this server):\n" + (
            "\n".join(lines)
        )
    return (
        "or put the guard in front of it in a client's config, for this server only (the lock pins it):\n"
        f"  mcp-guard wrap --client CLIENT --policy {policy_arg} --server NAME\n"
        "with CLIENT one of claude-desktop, claude-code, cursor, vscode and NAME the server's name in that config"
    )


def clients_running(command: Sequence[str], project_dir: Path) -> list[tuple[str, str]]:
    """(client, server name) for each entry in the known clients' config files that starts ``command``."""
    from mcp_guard.clients.edit import stdio_servers
    from mcp_guard.clients.files import ConfigError, read_config
    from mcp_guard.clients.known import CLIENTS, client_config_paths

    found: list[tuple[str, str]] = []
    for client in CLIENTS:
        for path in client_config_paths(client, project_dir=project_dir):
            if not path.is_file():
                continue
            try:
                _, text = read_config(path)
                entries = stdio_servers(text, project_dir=project_dir, file=str(path))
            except (ConfigError, OSError):
                continue  # a file init cannot read is one wrap will report on
            for entry in entries:
                if entry.argv == list(command) and (client, entry.name) not in found:
                    found.append((client, entry.name))
    return found


def print_table(server: str, rows: list[tuple[str, str]]) -> None:
    _say(f"{server}: {len(rows)} tool(s)")
    if not rows:
        return
    width = max(len("TOOL"), *(len(name) for name, _ in rows))
    lines = [f"  {'TOOL':<{width}}  DECISION"]
    lines += [f"  {name:<{width}}  {label}" for name, label in rows]
    sys.stderr.write("\n".join(lines) + "\n")
