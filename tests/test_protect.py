"""Self-protection fails closed: every string is read, the guard's folders count, shell spellings count."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from conftest import PYTHON, RECORDER_SERVER, Start, handshake, tool_call, write_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_guard.integrity import protect
from mcp_guard.integrity.guard import IntegritySettings, ToolIntegrity
from mcp_guard.integrity.protect import MAX_CHARS, MAX_VALUES, ProtectedPaths, guard_paths_for
from mcp_guard.policy.decision import Deny

VIOLATION = "mcp-guard/violation"


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A home with the guard's platform folders in it, and a project folder as the working directory."""
    home = tmp_path / "home"
    config = home / ".config" / "mcp-guard"
    state = home / ".local" / "state" / "mcp-guard"
    data = home / ".local" / "share" / "mcp-guard"
    project = tmp_path / "work" / "project"
    for folder in (config, state, data, project):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    policy = config / "policy.json"
    policy.write_text("{}", encoding="utf-8")
    (project / "policy.json").write_text("{}", encoding="utf-8")  # the project's own, unrelated file
    return {
        "home": home,
        "config": config,
        "state": state,
        "data": data,
        "project": project,
        "policy": policy,
        "tmp": tmp_path,
    }


def default_guard(layout: dict[str, Path], **options: Any) -> ProtectedPaths:
    """What the guard protects with the user config policy and every store in its default place."""
    return guard_paths_for(layout["policy"], None, None, None, None, cwd=layout["project"], **options)


def refused(protected: ProtectedPaths, arguments: Any) -> Deny:
    deny = protected.refusal(arguments)
    assert deny is not None, arguments
    assert (deny.kind, deny.rule) == ("protected", "protect_own_files")
    return deny


# --- fail closed ----------------------------------------------------------------------------------


def test_a_reference_after_a_megabyte_of_padding_is_found(layout: dict[str, Path]) -> None:
    protected = default_guard(layout)
    padded = "x" * 1_000_001 + f" {layout['policy']}"
    assert protected.find_reference({"content": padded}) is not None
    assert protected.find_reference(["y" * 600_000, "z" * 600_000, f"cat {layout['policy']}"]) is not None
    command = "echo " + "a " * 600_000 + "; cd ~/.config && cat mcp-guard/policy.json"
    assert protected.find_reference({"command": command}) is not None


def test_arguments_too_large_to_check_are_refused_saying_why(layout: dict[str, Path]) -> None:
    protected = default_guard(layout)
    assert protected.refusal(["x" * MAX_CHARS]) is None
    deny = refused(protected, ["x" * (MAX_CHARS // 2), "x" * (MAX_CHARS // 2 + 1)])
    assert "too large to check" in deny.reason and f"{MAX_CHARS:,}" in deny.reason
    deny = refused(protected, {"rows": [0] * MAX_VALUES})
    assert f"{MAX_VALUES:,} values" in deny.reason
    small = default_guard(layout, max_chars=1000, max_values=50)
    refused(small, ["x" * 999, "yy"])
    refused(small, {"x" * 999: "yy"})  # keys count too
    deep: object = "x"
    for _ in range(60):
        deep = [deep]
    refused(small, {"deep": deep})
    assert small.refusal(["x" * 990, "yy"]) is None


def test_a_call_that_needs_too_many_file_lookups_is_refused(layout: dict[str, Path]) -> None:
    for i in range(300):
        (layout["project"] / f"d{i}").mkdir()
    words = " ".join(f"d{i}/sub/file" for i in range(300))  # a lookup in each of 300 folders
    deny = refused(default_guard(layout, max_fs_lookups=100), {"command": f"ls {words}"})
    assert "file-system lookups" in deny.reason
    assert default_guard(layout).refusal({"command": f"ls {words}"}) is None


def test_the_guard_refuses_instead_of_relaying_what_it_could_not_read(layout: dict[str, Path]) -> None:
    integrity = ToolIntegrity(IntegritySettings(protected=default_guard(layout, max_chars=100)), lambda _: None)
    verdict = integrity.check_call("write", {"text": "x" * 97})
    assert isinstance(verdict, Deny) and "too large to check" in verdict.reason
    assert integrity.check_call("write", {"text": "x" * 96}) is None


def test_typical_and_large_calls_stay_cheap(layout: dict[str, Path]) -> None:
    protected = default_guard(layout)
    code = (
        "import os  # see https://example.com/a/b?c=1&d=%20\n"
        "x = a / b * c[1] + '$HOME' % d  // comment /* more */\n"
        "path = 'src/module/file.py'; other = \"../lib/thing.js\"\n"
    )
    big_code = (code * (1_000_000 // len(code)))[:1_000_000]
    big_prose = ("Lorem ipsum dolor sit amet, consectetur? adipiscing elit. " * 20_000)[:1_000_000]
    for text in (big_code, big_prose):
        # CPU time, not wall time: linear work stays far below this bound however loaded the machine is.
        start = time.process_time()
        assert protected.refusal({"content": text}) is None
        assert time.process_time() - start < 2.0


# --- the guard's folders --------------------------------------------------------------------------


def test_the_guards_own_folders_are_protected_entirely(layout: dict[str, Path]) -> None:
    protected = default_guard(layout)
    for command in (
        "rm -rf ~/.local/state/mcp-guard",
        "cat ~/.config/mcp-guard/",
        "ls ~/.config/mcp-guard",
        f"cp evil.json {layout['config']}/other.json",
        "cat ~/.local/share/mcp-guard/secret.key",
        "sqlite3 ~/.local/state/mcp-guard/approvals.db 'delete from grants'",
        "truncate -s0 ~/.local/state/mcp-guard/log/audit.jsonl",
        "ls ~/.local/share/mcp-guard/",
        "cd ~/.local/state && rm -rf mcp*",
        "cd ~/.local/state/mcp-guard/ && ls",  # entering the folder is already a reference to it
    ):
        refused(protected, {"command": command})
    for harmless in ("ls ~/.config", "cat ~/.config/other/settings.json", "ls ~/.local/state/other", "cat policy.json"):
        assert protected.refusal({"command": harmless}) is None, harmless


def test_user_chosen_files_are_protected_with_their_siblings_not_their_folder(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    project = layout["project"]
    policy = project / "guard.json"
    audit = tmp_path / "logs" / "audit.jsonl"
    store = tmp_path / "approvals" / "approvals.db"
    lock = project / "tools.lock.json"
    protected = guard_paths_for(
        policy, lock, audit, store, f"sqlite:///{tmp_path / 'shared' / 'counters.db'}", cwd=project
    )
    for path in (
        policy,
        project / "guard.lock.json",  # where mcp-guard pins create writes by default
        project / "guard.json.bak",
        project / ".guard.json.3f2a.tmp",
        lock,
        audit,
        audit.with_name("audit.jsonl.1"),
        audit.with_name("audit.jsonl.lock"),
        store,
        store.with_name("approvals.db-wal"),
        tmp_path / "shared" / "counters.db",
        tmp_path / "shared" / "counters.db-journal",
    ):
        refused(protected, {"path": str(path)})
    refused(protected, {"command": "cat guard.json"})  # relative to the working directory
    for harmless in (
        project,
        project / "README.md",
        project / "guard.yaml",
        audit.parent,
        audit.with_name("other.jsonl"),
        tmp_path / "shared",
        tmp_path / "shared" / "notes.txt",
    ):
        assert protected.refusal({"path": str(harmless)}) is None, harmless
    for harmless_command in ("ls", "cat README.md", "rm -rf build/", "grep -r guard .", "ls ./src/*.py"):
        assert protected.refusal({"command": harmless_command}) is None, harmless_command
    # The platform folders are protected whatever the files given.
    refused(protected, {"command": "rm -rf ~/.config/mcp-guard"})


def test_a_relative_sqlite_store_lives_in_the_state_folder(layout: dict[str, Path]) -> None:
    protected = guard_paths_for(None, None, None, None, "sqlite:counters.db", cwd=layout["project"])
    refused(protected, {"path": str(layout["state"] / "counters.db")})
    assert guard_paths_for(None, None, None, None, "redis://localhost:6379/0", cwd=layout["project"]) is not None


# --- spellings and shell commands -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "cd ~/.config && cat mcp-guard/policy.json",
        "cd {home}/.config; rm mcp-guard/policy.json",
        "cd {config}; rm policy.json",
        "pushd ~/.config >/dev/null; cat ./mcp-guard//policy.json; popd",
        'cd "$HOME"/.config && cat mcp-guard/policy.json',
        "cd ${{HOME}}/.config && cat mcp-guard/policy.json",
        "cd && cat .config/mcp-guard/policy.json",
        "cd; cat .config/mcp-guard/policy.json",
        "cd ~ && cd .config && cat mcp-guard/policy.json",
        "(cd /tmp) ; cd ~/.local && cd state && rm -rf mcp-guard",
        "cd -P ~/.config && sed -i s/deny/allow/ mcp-guard/policy.json",
        "tar -C ~/.config -czf /tmp/x.tgz mcp-guard",
        "python -c \"import os; os.chdir('{home}/.config'); open('mcp-guard/policy.json', 'w')\"",
        "cat ~/.config/mcp''-guard/policy.json",
        "cat ~/.config/'mcp'\"-guard\"/pol''icy.json",
        "cat ~/.config/mcp\\-guard/pol\\icy.json",
        "cat $'~/.config/mcp-guard/\\x70olicy.json'",
        'cat "$HOME/.config/mcp-guard/policy.json"',
        "cat $HOME/.config/mcp-guard/policy.json",
        "cat ${{HOME}}/.config/mcp-guard/policy.json",
        "X=${{HOME}}/.config/mcp-guard/policy.json; cat $X",
        "X=~/.config; cat $X/mcp-guard/policy.json",
        "cat ${{UNSET_VARIABLE}}/mcp-guard",
        "cat ~{user}/.config/mcp-guard/policy.json",
        "cat {home}/.config/../.config/./mcp-guard//policy.json",
        "cat {home}//.config///mcp-guard/policy.json",
        "cat ../../home/.config/mcp-guard/policy.json",
        "curl file://{home_url}/.config/mcp%2Dguard/policy%2Ejson",
        "curl FILE://localhost{home}/.config/%6dcp-guard/%70olicy.json",
        "cat ~/.config/*/pol*.json",
        "cat `echo x` ~/.config/mcp-guard/policy.json",
        "echo don't; cat ~/.config/mcp-guard/policy.json; echo 'it'",
    ],
)
def test_shell_spellings_count_as_references(layout: dict[str, Path], command: str) -> None:
    home = layout["home"]
    user = getpass.getuser()
    if "~{user}" in command:
        # ~user expands through the password database: point the protected home there.
        import pwd

        home = Path(pwd.getpwnam(user).pw_dir)
        layout = {**layout, "policy": home / ".config" / "mcp-guard" / "policy.json"}
        protected = ProtectedPaths([layout["policy"]], layout["project"])
    else:
        protected = default_guard(layout)
    text = command.format(home=home, config=layout["config"], user=user, home_url=str(home))
    refused(protected, {"command": text})


@pytest.mark.parametrize(
    "command",
    [
        "cd /tmp && cat policy.json",
        "cd ~/src/mcp-guard && make test",
        "cd ~/.config && ls",
        "cd mcp-guard && pytest",
        "cd .. && cat policy.json",
        "echo cd ~/.config is where settings live; cat notes/policy.md",
        "cat ~/.config/mcp-guard-notes.txt",
        "curl file:///tmp/policy.json",
        "cat $UNSET_VARIABLE/notes.txt",
        "rm -rf $BUILD_DIR/*",
    ],
)
def test_shell_commands_that_stay_away_pass(layout: dict[str, Path], command: str) -> None:
    assert default_guard(layout).refusal({"command": command}) is None


def test_file_paths_only_protection_follows_cd_too(layout: dict[str, Path]) -> None:
    """With only the policy file protected (a policy in a project folder), cd still counts."""
    project = layout["project"]
    protected = ProtectedPaths([project / "policy.json"], layout["tmp"])
    refused(protected, {"command": f"cd {project} && cat policy.json"})
    refused(protected, {"command": "cd work && cd project && sed -i s/a/b/ policy.json"})
    refused(protected, {"command": f"cd {project} && cat pol*"})
    assert protected.refusal({"command": "cd work && cat policy.json"}) is None
    assert protected.refusal({"command": f"cd {project} && cat README.md"}) is None


def test_many_directory_changes_fall_back_to_the_conservative_reading(layout: dict[str, Path]) -> None:
    protected = default_guard(layout)
    hops = " && ".join(f"cd d{i}" for i in range(12))
    back = "/".join([".."] * 12)
    refused(protected, {"command": f"cd ~ && {hops} && cd {back}/.config && cat mcp-guard/x"})
    refused(protected, {"command": f"{hops}; cat mcp-guard/policy.json"})
    assert protected.refusal({"command": f"{hops}; cat README.md"}) is None


def test_symbolic_links_reached_after_a_cd(layout: dict[str, Path]) -> None:
    elsewhere = layout["tmp"] / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cfg").symlink_to(layout["config"], target_is_directory=True)
    (elsewhere / "rules").symlink_to(layout["policy"])
    protected = default_guard(layout)
    refused(protected, {"command": f"cd {elsewhere} && cat cfg/policy.json"})
    refused(protected, {"command": f"cd {elsewhere} && cat rules"})
    refused(protected, {"command": f"cd {elsewhere}/cfg && ls"})
    assert protected.refusal({"command": f"cd {elsewhere} && ls"}) is None


def test_long_strings_follow_symbolic_links_too(layout: dict[str, Path]) -> None:
    """Past the short-string size only paths that start somewhere real are looked up: these do."""
    project = layout["project"]
    (project / "cfg").symlink_to(layout["data"], target_is_directory=True)
    outside = layout["tmp"] / "outside"
    outside.mkdir()
    (outside / "lnk").symlink_to(layout["data"], target_is_directory=True)
    (project / "alias").symlink_to(layout["policy"])
    protected = default_guard(layout)
    padding = "lorem ipsum and/or https://example.com/a/b " * 200
    # No protected name and no segment that exists as written: only the glob can match.
    data = "/" + "/".join(part[:-1] + "?" for part in layout["data"].parts[1:])
    for tail in (
        "cat cfg/secret.key",
        f"cat {outside}/lnk/secret.key",
        "cat alias",
        f"cat {outside}/l'n'k/secret.key",
        f"cat {data}/*",  # no protected name, no path that exists: a glob still matches as written
    ):
        refused(protected, {"content": padding + tail})
    assert protected.refusal({"content": padding + f"cat {outside}/other/secret.key"}) is None


def test_quoted_paths_with_spaces(layout: dict[str, Path]) -> None:
    project = layout["project"]
    folder = project / "my rules"
    folder.mkdir()
    protected = ProtectedPaths([folder / "policy.json"], project)
    for command in (
        'cat "my rules/policy.json"',
        "cat 'my rules'/policy.json",
        "cat my\\ rules/policy.json",
        'cd "my rules" && cat policy.json',
        f'cat "{folder}/policy.json"',
    ):
        refused(protected, {"command": command})
        refused(protected, {"command": "echo " + "word " * 2000 + command})
    assert protected.refusal({"command": 'cat "my notes/policy.json"'}) is None


def _obfuscated(data: st.DataObject, segment: str) -> str:
    """``segment`` as a shell still reads it: an empty quote pair or an escape somewhere, or as is."""
    how = data.draw(st.sampled_from(["plain", "quotes", "escape", "quoted"]))
    at = data.draw(st.integers(1, len(segment) - 1))
    if how == "quotes":
        return segment[:at] + data.draw(st.sampled_from(["''", '""'])) + segment[at:]
    if how == "escape":
        return segment[:at] + "\\" + segment[at:]
    if how == "quoted":
        quote = data.draw(st.sampled_from(["'", '"']))
        return quote + segment + quote
    return segment


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mix_of_spellings_is_found(layout: dict[str, Path], data: st.DataObject) -> None:
    protected = ProtectedPaths([layout["policy"]], layout["project"], directories=[layout["state"]])
    segments = [_obfuscated(data, s) for s in (".config", "mcp-guard", "policy.json")]
    glue = [data.draw(st.sampled_from(["/", "//", "/./", "/x/../"])) for _ in segments]
    home = data.draw(st.sampled_from(["~", "$HOME", "${HOME}", '"$HOME"', str(layout["home"])]))
    cut = data.draw(st.integers(0, len(segments) - 1))  # cd into the first `cut` segments, then a relative path
    head = home + "".join(g + s for g, s in zip(glue[:cut], segments[:cut], strict=True))
    tail = "/".join(segments[cut:])
    command = f"cd {head} && cat {tail}" if cut or data.draw(st.booleans()) else f"cat {head}/{tail}"
    padding = "echo " + "word " * data.draw(st.sampled_from([0, 10, 1200]))
    refused(protected, {"command": padding + "; " + command})


_PIECES = [
    *("policy.json", "mcp-guard", "rules", "cfg", "cat ", "cd ", "pushd ", "--directory=", "-C "),
    *("/", "~", "$", "%", "*", "?", "[", "'", '"', "`", "\\", "word", " ", "..", "state", "chdir("),
]


@pytest.mark.parametrize("where", ["project", "config", "state"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_quick_look_at_short_strings_never_changes_a_verdict(
    layout: dict[str, Path], where: str, data: st.DataObject
) -> None:
    """Short strings are searched once for anything worth reading; the full reading must agree on each."""
    project = layout["project"]
    if not (project / "cfg").is_symlink():
        (project / "cfg").symlink_to(layout["config"], target_is_directory=True)
        (project / "rules").symlink_to(layout["policy"])
    cwd = layout[where]
    protected = ProtectedPaths([layout["policy"]], cwd, directories=[layout["state"]], home=layout["home"])
    name = data.draw(st.sampled_from(["policy.json", "rules", "cfg", "mcp-guard", "word"]))
    at = data.draw(st.integers(0, len(name)))
    name = name[:at] + data.draw(st.sampled_from(["", "'", '"', "`", "\\", "''"])) + name[at:]
    before, after = (data.draw(st.lists(st.sampled_from(_PIECES), max_size=2)) for _ in range(2))
    text = "".join([*before, name, *after])
    quick = protected.refusal({"a": text})
    with patch.object(protect, "_QUICK_CHARS", -1):  # every string read in full
        assert protected.refusal({"a": text}) == quick


# --- end to end -----------------------------------------------------------------------------------


def test_the_guard_refuses_a_policy_path_after_a_megabyte(start: Start, guard_cmd: list[str], tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    # The recorder (standard library only) is upstream: it starts at once and shows what got through.
    record = tmp_path / "received.jsonl"
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    handshake(session)
    answer = session.request(tool_call(1, "echo", {"text": "x" * 1_100_000 + f" {policy}"}))
    refusal = answer["result"]["_meta"][VIOLATION]
    assert (refusal["kind"], refusal["rule"]) == ("protected", "protect_own_files")
    assert session.request(tool_call(2, "echo", {"text": "x" * 1_100_000}))["result"]["isError"] is False
    session.close_stdin()
    assert session.wait() == 0
    calls = [json.loads(line) for line in record.read_bytes().splitlines() if b'"tools/call"' in line]
    assert [call["id"] for call in calls] == [2]
