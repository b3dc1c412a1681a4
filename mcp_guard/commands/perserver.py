"""One policy per server in a client's config: ``wrap`` refusing to spread one, ``wrap --init`` making each.

A policy made by ``init`` pins the tools of the server it was made for (its lock records that
server's command). Put on another server, it hides every tool of that one (none is pinned) and
refuses its calls, so :func:`shared_pins_refusal` stops ``wrap --policy`` from putting such a
policy on more than its own server and says which ``--server NAME`` to pass.

``wrap --init`` (:class:`PolicyMaker`) runs ``init`` for each chosen stdio server, with the
``env`` and ``cwd`` its entry gives it, and writes ``NAME.json`` and ``NAME.lock.json`` in a
folder ``mcp-guard`` next to the client's config file, or, for a config file directly in the
home directory (``~/.claude.json``), in ``servers`` under the user config directory. Each server
is then wrapped with its own policy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_guard.clients.edit import Outcome, StdioServer
    from mcp_guard.clients.launch import GuardLaunch
    from mcp_guard.commands.init import Draft
    from mcp_guard.integrity.lockfile import LockFile

SERVERS_DIR = "servers"
BESIDE_DIR = "mcp-guard"


def _say(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def _where(args: argparse.Namespace) -> str:
    """``--client NAME`` or ``--config PATH``, as given to ``wrap``."""
    return f"--client {args.client}" if args.client else f"--config {shlex.quote(str(args.config))}"


# --- one pinned policy, one server ------------------------------------------------------------------


def _targets(
    paths: Sequence[Path], servers: Collection[str] | None, project_dir: Path
) -> list[tuple[Path, StdioServer]]:
    """The stdio entries ``wrap`` would put a policy on (files it cannot read are reported by ``wrap``)."""
    from mcp_guard.clients.edit import stdio_servers
    from mcp_guard.clients.files import ConfigError, read_config

    found: list[tuple[Path, StdioServer]] = []
    for path in paths:
        try:
            _, text = read_config(path)
            found += [(path, entry) for entry in stdio_servers(text, servers=servers, project_dir=project_dir)]
        except ConfigError:
            continue
    return found


def shared_pins_refusal(
    args: argparse.Namespace,
    paths: Sequence[Path],
    project_dir: Path,
    policy: str,
    lock_path: Path,
    lock: LockFile,
) -> str | None:
    """Why ``wrap`` must not put this pinned policy where it would go, or None (after any note) when it may.

    Refused: more than one server, or (without ``--server``) one that does not run the command
    the lock was made for. An explicit ``--server`` naming another command only gets a note.
    """
    chosen = set(args.server) if args.server else None
    targets = _targets(paths, chosen, project_dir)
    command = lock.server_command
    matching = sorted({entry.name for _, entry in targets if command is not None and entry.argv == command})
    if len(targets) <= 1 and (chosen is not None or not targets or matching):
        if targets and not matching:
            made_for = shlex.join(command) if command else "a server it does not name"
            _say(
                f"note: {targets[0][1].label} runs {shlex.join(targets[0][1].argv)}, but the lock {lock_path} was made "
                f"for {made_for}: tools it does not pin will be hidden and refused"
            )
        return None
    made_for = f"the server `{shlex.join(command)}`" if command else "one server (its lock does not say which)"
    where = _where(args)
    base = f"mcp-guard wrap {where}" + (f" --policy {shlex.quote(policy)}" if policy else "")
    if args.lock:
        base += f" --lock {shlex.quote(str(lock_path))}"
    names = sorted({entry.name for _, entry in targets})
    if matching:
        advice = "put it on that server only:\n" + "\n".join(f"  {base} --server {shlex.quote(n)}" for n in matching)
    else:
        advice = (
            f"none of the servers here ({', '.join(names)}) runs that command: pass --server NAME for the one it "
            f"was made for:\n  {base} --server NAME"
        )
    return (
        f"not wrapping: {policy or 'the lock file'} pins the tools of {made_for} (lock {lock_path}); on "
        f"{'server ' + names[0] if len(names) == 1 else f'{len(targets)} servers'} it would hide every tool the "
        f"lock does not pin. To {advice}\n"
        "or give each server a policy of its own: mcp-guard wrap " + where + " --init"
    )


# --- wrap --init ----------------------------------------------------------------------------------


def policy_dir_for(config: Path, chosen: str | None) -> Path:
    """Where ``wrap --init`` puts the policies of the servers in ``config``."""
    if chosen:
        return Path(os.path.abspath(Path(chosen).expanduser()))
    folder = Path(os.path.abspath(config)).parent
    home = Path(os.path.abspath(Path.home()))
    if os.path.normcase(folder) == os.path.normcase(home):
        from mcp_guard import paths

        return paths.config_dir() / SERVERS_DIR
    return folder / BESIDE_DIR


def file_stem(name: str) -> str:
    """A server name made safe as a file name on every platform."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem[:100] or "server"


@dataclass
class _Planned:
    name: str
    policy: Path
    lock: Path
    made: Draft


@dataclass
class PolicyMaker:
    """Drafts one policy per server while ``wrap`` plans its edits; :meth:`commit` writes them."""

    args: argparse.Namespace
    guard_command: Sequence[str] | None = None
    planned: list[_Planned] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # server label -> why it has no policy
    _taken: set[str] = field(default_factory=set)

    def launches(self, config: Path, text: str, project_dir: Path) -> dict[str, GuardLaunch]:
        """A launch per chosen server name in ``config``'s text, each with its own (drafted) policy."""
        from mcp_guard.clients.edit import stdio_servers
        from mcp_guard.clients.launch import guard_launch
        from mcp_guard.commands.init import draft, print_table
        from mcp_guard.commands.listing import DEFAULT_CAPABILITIES

        args = self.args
        chosen = set(args.server) if args.server else None
        entries = stdio_servers(text, servers=chosen, project_dir=project_dir, file=str(config))
        folder = policy_dir_for(config, args.policy_dir)
        launches: dict[str, GuardLaunch] = {}
        by_name: dict[str, list[StdioServer]] = {}
        for entry in entries:
            by_name.setdefault(entry.name, []).append(entry)
        capabilities = DEFAULT_CAPABILITIES if args.capabilities is None else args.capabilities
        for name, same in by_name.items():
            entry = same[0]
            if any(other.argv != entry.argv for other in same[1:]):
                self.failures[name] = "two servers of this name run different commands; wrap each with --policy"
                continue
            if entry.guard_options is not None and not args.force:
                # Already guarded: left as it is (wrap is not asked to update options), so any launch will do.
                launches[name] = guard_launch(None, self.guard_command)
                continue
            policy, lock = self._paths(folder, name)
            if policy.exists() and not args.force:
                self.failures[name] = (
                    f"{policy} exists already; pass --force to make it again, or wrap with it: "
                    f"mcp-guard wrap {_where(args)} --policy {shlex.quote(str(policy))} --server {shlex.quote(name)}"
                )
                continue
            if not args.dry_run and not folder.is_dir():
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    self.failures[name] = f"cannot create {folder}: {exc.strerror or exc}"
                    continue
            _say(f"{entry.label}: making its own policy {policy}")
            made = draft(entry.argv, args.timeout, capabilities, lock.name, entry.env or None, entry.cwd)
            if made is None:
                self.failures[name] = "could not list its tools (see above); left as it was"
                continue
            print_table(made.server, made.rows)
            self.planned.append(_Planned(name, policy, lock, made))
            digest = hashlib.sha256(made.policy_text.encode("utf-8")).hexdigest() if args.pin_policy_hash else None
            launches[name] = guard_launch(str(policy), self.guard_command, policy_sha256=digest)
        return launches

    def _paths(self, folder: Path, name: str) -> tuple[Path, Path]:
        """``NAME.json`` and ``NAME.lock.json`` in ``folder``, never the same pair twice in one run."""
        from mcp_guard.paths import default_lock_path

        stem, n = file_stem(name), 1
        while True:
            policy = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            key = os.path.normcase(str(policy))
            if key not in self._taken:
                self._taken.add(key)
                return policy, default_lock_path(policy)
            n += 1

    def annotate(self, outcome: Outcome) -> None:
        """Say in ``wrap``'s report why a server was left as it was."""
        for entry in outcome.entries:
            if entry.name in self.failures and entry.action == "skipped":
                entry.detail = self.failures[entry.name]

    def commit(self) -> bool:
        """Write every drafted policy and lock; False (after saying why) if one could not be written."""
        from mcp_guard.commands.init import write_draft
        from mcp_guard.policy.load import PolicyError

        for plan in self.planned:
            try:
                write_draft(plan.policy, plan.lock, plan.made, force=self.args.force)
            except (OSError, PolicyError) as exc:
                _say(f"cannot write {plan.policy} and {plan.lock}: {exc}")
                return False
            _say(f"wrote {plan.policy} and the tool pins {plan.lock}")
        return True
