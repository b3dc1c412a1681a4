"""The guard's own command line: where its options end and the server's command starts, and the spellings."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, guard_command, isolated_env

from mcp_guard import cli, exits


def run_parser_options() -> list[tuple[str, bool]]:
    """Every option string of the guard's parser, and whether it takes a value (read from argparse itself).

    Without ``--help`` and ``--version``: they end the program before a command is read.
    """
    parser = cli._run_parser()
    return [
        (option, action.nargs != 0)
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help", "--version")
    ]


@pytest.mark.parametrize(("option", "takes_value"), run_parser_options())
def test_every_option_is_split_from_the_command_without_dashes(option: str, takes_value: bool) -> None:
    given = [option, "VALUE"] if takes_value else [option]
    assert cli.split_command([*given, "srv", "--flag", "x"]) == (given, ["srv", "--flag", "x"])
    assert cli.split_command([*given, "--", "srv", "--flag"]) == (given, ["srv", "--flag"])
    if takes_value:
        assert cli.split_command([f"{option}=VALUE", "srv"]) == ([f"{option}=VALUE"], ["srv"])


def test_split_command_edge_cases() -> None:
    split = cli.split_command
    # The reported bug: the lock file was taken for the server's command.
    assert split(["--pins", "L.json", "npx", "srv"]) == (["--pins", "L.json"], ["npx", "srv"])
    assert split(["--lock", "L.json", "--policy-sha256", "ab", "npx"]) == (
        ["--lock", "L.json", "--policy-sha256", "ab"],
        ["npx"],
    )
    # An unambiguous abbreviation takes its value as argparse does; an ambiguous one is left to argparse.
    assert split(["--approval-t", "5", "srv"]) == (["--approval-t", "5"], ["srv"])
    assert split(["--pol", "p.json", "srv"]) == (["--pol"], ["p.json", "srv"])
    # A `--` after the server's command belongs to it.
    assert split(["--monitor", "npx", "srv", "--", "x"]) == (["--monitor"], ["npx", "srv", "--", "x"])
    # A value cannot be `--`: argparse then says the option lacks one.
    assert split(["--name", "--", "srv"]) == (["--name"], ["srv"])
    assert split(["--policy"]) == (["--policy"], [])
    assert split([]) == ([], [])


@pytest.mark.parametrize(
    ("words", "dest", "value"),
    [
        (["--lock", "L.json"], "pins", "L.json"),
        (["--pins", "L.json"], "pins", "L.json"),
        (["--store", "a.db"], "approval_store", "a.db"),
        (["--approval-store", "a.db"], "approval_store", "a.db"),
    ],
)
def test_lock_and_store_spellings(words: list[str], dest: str, value: str) -> None:
    args = cli._run_parser().parse_args(words)
    assert getattr(args, dest) == value


def test_help_names_the_commands_and_the_older_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == exits.OK
    out = capsys.readouterr().out
    assert "--lock FILE, --pins FILE" in out
    assert "--store PATH, --approval-store PATH" in out
    assert (
        "older spellings, still accepted: pin = pins create, approve = approvals approve, deny = approvals deny" in out
    )


def test_lock_before_the_command_without_dashes(tmp_path: Path) -> None:
    """``mcp-guard --pins L.json CMD``: L.json is the lock file, not the server."""
    ran = tmp_path / "server-ran"
    server = [PYTHON, "-c", f"open({str(ran)!r}, 'w').close()"]
    for option in ("--pins", "--lock"):
        done = subprocess.run(
            [*guard_command(), option, str(tmp_path / "missing.lock.json"), "--no-audit", *server],
            capture_output=True,
            text=True,
            timeout=60,
            env=isolated_env(tmp_path),
            check=False,
        )
        assert done.returncode == exits.USAGE, done.stderr
        assert "expected one argument" not in done.stderr
        assert f"{tmp_path / 'missing.lock.json'}: no such lock file" in done.stderr
        assert done.stdout == ""


def test_subcommands_and_aliases_resolve() -> None:
    assert set(cli.ALIASES) <= set(cli.SUBCOMMANDS)
    for name in ("approvals", "approve", "deny", "pins", "pin"):
        assert name in cli.SUBCOMMANDS
    parser = argparse.ArgumentParser()
    import importlib

    importlib.import_module(cli.SUBCOMMANDS["pins"]).add_arguments(parser)
    args = parser.parse_args(["create", "--lock", "x.json", "--", "srv"])
    assert (args.action, args.lock, args.command) == ("create", "x.json", ["--", "srv"])


def test_one_table_of_exit_codes() -> None:
    table = (exits.OK, exits.REFUSED, exits.DIFFERS, exits.FAILED, exits.USAGE, exits.NEEDS_APPROVAL)
    assert table == (0, 1, 1, 1, 2, 3)
    assert (exits.CANNOT_RUN, exits.NOT_FOUND, exits.INTERRUPTED) == (126, 127, 130)
    assert cli.EXIT_USAGE == exits.USAGE


# --- a mistyped subcommand is never started as a server (issue 18, trap 6) ---------------------------------


def _fake_program(folder: Path, name: str, marker: Path) -> None:
    folder.mkdir(exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\necho ran > '{marker}'\n")
    program.chmod(0o755)


def _guard_run(args: list[str], tmp_path: Path, path_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = isolated_env(tmp_path)
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [*guard_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("chekc", "check"), ("stast", "stats"), ("approvls", "approvals"), ("unwarp", "unwrap"), ("exaplin", "explain")],
)
def test_a_word_close_to_a_subcommand_is_refused_with_a_suggestion(typed: str, meant: str, tmp_path: Path) -> None:
    done = _guard_run([typed, "x.json"], tmp_path)
    assert done.returncode == exits.USAGE
    assert done.stdout == ""
    assert done.stderr == (
        f"mcp-guard: unknown command {typed!r}: did you mean {meant}? "
        f"(to run a program named {typed!r} as the server: mcp-guard [options] -- {typed} ...)\n"
    )


@pytest.mark.skipif(os.name != "posix", reason="a shell script as the fake server")
def test_after_dashes_or_when_it_is_a_real_program_the_word_runs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    marker = tmp_path / "ran"
    _fake_program(bin_dir, "chekc", marker)
    done = _guard_run(["--no-audit", "--", "chekc", "x.json"], tmp_path, bin_dir)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran\n"
    marker.unlink()
    # A program on PATH wins over the suggestion, `mcp-guard deno run srv.ts` keeps working, and says so once.
    _fake_program(bin_dir, "deno", marker)
    done = _guard_run(["deno", "run", "srv.ts"], tmp_path, bin_dir)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran\n"
    assert done.stderr.startswith(
        "mcp-guard: note: 'deno' is a program on PATH, so it runs as the server (not `mcp-guard deny`); "
        "write `mcp-guard [options] -- deno ...` to say so\n"
    )


def test_a_word_far_from_every_subcommand_still_runs_as_the_server(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    done = _guard_run(["--no-audit", PYTHON, "-c", f"open({str(marker)!r}, 'w').close()"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    missing = _guard_run(["no-such-server-xyz"], tmp_path)
    assert missing.returncode == exits.NOT_FOUND
    assert "command not found: 'no-such-server-xyz'" in missing.stderr


# --- every --help ends with real examples; the main help lists the subcommands (issue 18, trap 8) ----------


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from mcp_guard.helptext import subparsers_of

    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(path: str, parser: argparse.ArgumentParser) -> None:
        found.append((path, parser))
        for name, child in subparsers_of(parser).items():
            walk(f"{path} {name}", child)

    for name in cli.SUBCOMMANDS:
        walk(name, cli.subcommand_parser(name)[0])
    return found


def _parses(example: str) -> None:
    """Run ``example``'s words through the parser mcp-guard would use; argparse exits on any mistake."""
    words = shlex.split(example)
    assert words[0] == "mcp-guard"
    if words[1] in cli.SUBCOMMANDS:
        cli.subcommand_parser(words[1])[0].parse_args(words[2:])
    else:
        parser = cli._run_parser()
        options, command = cli.split_command(words[1:], parser)
        parser.parse_args(options)
        assert command, example


@pytest.mark.parametrize(("path", "parser"), _all_parsers(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_subcommand_help_ends_with_examples_that_parse(path: str, parser: argparse.ArgumentParser) -> None:
    from mcp_guard.helptext import EXAMPLES

    examples = EXAMPLES[path]
    assert 1 <= len(examples) <= 2
    text = parser.format_help()
    assert text.rstrip().endswith("examples:\n" + "\n".join(f"  {example}" for example in examples))
    for example in examples:
        assert example == f"mcp-guard {path}" or example.startswith(f"mcp-guard {path} "), example
        _parses(example)


def test_examples_table_has_no_command_that_does_not_exist() -> None:
    from mcp_guard.helptext import EXAMPLES

    assert set(EXAMPLES) == {"", *(path for path, _ in _all_parsers())}


def test_main_help_lists_each_subcommand_with_one_line_and_ends_with_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mcp_guard.helptext import EXAMPLES, SUMMARIES

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        if name in cli.ALIASES:
            continue
        assert re.search(rf"^  {name} +{re.escape(SUMMARIES[name])}$", out, re.MULTILINE), name
    assert out.rstrip().endswith("examples:\n" + "\n".join(f"  {example}" for example in EXAMPLES[""]))
    for example in EXAMPLES[""]:
        _parses(example)


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`mcp-guard schema | head -1`: the command ends quietly, as shells expect of a closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already left: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [*guard_command(), "schema"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=isolated_env(tmp_path),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == exits.OUTPUT_CLOSED == 141
