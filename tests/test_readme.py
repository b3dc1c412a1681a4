"""What the README and the guard's messages tell a new user to run must run (issue 18, traps 3 and 4).

* Install lines work from this repository today (mcp-guard is not on PyPI yet): a local path
  (`pipx install .`), a published dependency (`pip install redis`), or the package's name said to be
  for once it is published.
* Commands name servers that exist (the reference server on npm, `mcp-remote`, or the bundled demo
  server) and files that are in the repository; every `mcp-guard ...` command parses.
* The README's terminal example, with the example policy written for the reference server, is run
  end to end against that server with the real SDK client.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT, guard_command

from mcp_guard import cli

README = ROOT / "README.md"
RUNNABLE_NPM_PACKAGES = {"@modelcontextprotocol/server-everything", "mcp-remote"}
PUBLISHED_DEPENDENCIES = {"redis", "google-re2"}
INSTALL = re.compile(
    r"\b(?:pipx|pip3?|uv tool|uv pip) install((?:\s+--?[\w-]+(?:\s+(?!\.)[\w.-]+)?)*)\s+(['\"]?)([^\s'\"`),;]+)"
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)]


def readme_commands() -> list[str]:
    """Every command the README shows being run: the lines of ```sh blocks, the `$ ` lines of ```console."""
    commands = []
    for language, body in fenced_blocks(README.read_text(encoding="utf-8")):
        for line in body.splitlines():
            if language == "sh" and line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
            elif language == "console" and line.startswith("$ "):
                commands.append(line[2:].strip())
    return commands


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def npx_packages(argv: list[str]) -> list[str]:
    """The npm packages ``npx`` is asked to run anywhere in ``argv``."""
    found = []
    for i, word in enumerate(argv):
        if word == "npx":
            rest = [w for w in argv[i + 1 :] if not w.startswith("-")]
            if rest:
                found.append(rest[0])
    return found


# --- trap 3: install lines -------------------------------------------------------------------------------


def install_texts() -> list[tuple[str, str]]:
    """(file, text) of the README, the examples' docs, the scripts and every module's messages."""
    files = [README, ROOT / "dev.py", ROOT / ".ci" / "run", *sorted((ROOT / "examples").rglob("*.md"))]
    files += sorted((ROOT / "mcp_guard").rglob("*.py"))
    return [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in files]


def install_problems(name: str, text: str) -> list[str]:
    problems = []
    # Messages are often one sentence over several string literals: join them first.
    flat = re.sub(r"\"\s*\n\s*(?:f?\")", "", text)
    for match in INSTALL.finditer(flat):
        target = match.group(3)
        local = target.startswith((".", "/", "~")) or target.startswith("'.")
        before = flat[max(0, match.start() - 120) : match.start()].lower()
        published_later = "once" in before and "published" in before
        if local or target in PUBLISHED_DEPENDENCIES or published_later:
            continue
        problems.append(f"{name}: {match.group(0)!r} does not work from a checkout today")
    return problems


def test_every_install_line_works_from_a_checkout_today() -> None:
    problems = [problem for name, text in install_texts() for problem in install_problems(name, text)]
    assert problems == []


def test_the_install_check_catches_registry_installs() -> None:
    assert install_problems("x", "pip install mcp-guard          # or: pipx install mcp-guard") != []
    assert install_problems("x", "(pipx install mcp-guard, or uv tool install mcp-guard)") != []
    assert install_problems("x", "\"needs the redis package: pip install 'mcp-guard[redis]'\"") != []
    assert install_problems("x", "pipx install .\nuv tool install --with redis .\npip install '.[redis]'") == []
    assert install_problems("x", "once it is published, `pipx install mcp-guard`") == []


def test_the_readme_install_section_names_the_checkout_forms() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Install") : text.index("## Usage")]
    for line in ("pipx install .", "uv tool install .", "pip install ."):
        assert line in section
    assert "Once it is published, `pipx install mcp-guard`" in section


# --- trap 4: commands that run ---------------------------------------------------------------------------


def test_readme_commands_run_servers_that_exist() -> None:
    commands = readme_commands()
    assert len(commands) > 20
    used = {package for command in commands for package in npx_packages(words(command))}
    assert used <= RUNNABLE_NPM_PACKAGES, used - RUNNABLE_NPM_PACKAGES
    assert "@modelcontextprotocol/server-everything" in used


def test_readme_config_snippets_and_example_configs_run_servers_that_exist() -> None:
    snippets = [body for language, body in fenced_blocks(README.read_text(encoding="utf-8")) if language == "json"]
    snippets.append((ROOT / "examples" / "claude_desktop_config.json").read_text(encoding="utf-8"))
    used = set()
    for snippet in snippets:
        for command, args in re.findall(r'"command":\s*"([^"]+)",\s*"args":\s*\[([^\]]*)\]', snippet):
            used |= set(npx_packages([command, *json.loads(f"[{args}]")]))
    assert used <= RUNNABLE_NPM_PACKAGES, used - RUNNABLE_NPM_PACKAGES
    config = json.loads((ROOT / "examples" / "claude_desktop_config.json").read_text(encoding="utf-8"))
    for entry in config["mcpServers"].values():
        policy = Path(entry["args"][entry["args"].index("--policy") + 1])
        assert (ROOT / "examples" / "policies" / policy.name).is_file(), policy


def test_readme_commands_name_files_that_exist() -> None:
    for command in readme_commands():
        for word in words(command):
            if word.startswith(("examples/", "tests/", "benchmarks/")):
                assert (ROOT / word).exists(), (word, command)


def test_readme_mcp_guard_commands_parse() -> None:
    parsed = 0
    for command in readme_commands():
        argv = words(command)
        if argv[0] != "mcp-guard":
            continue
        if argv[1:2] and argv[1] in cli.SUBCOMMANDS:
            cli.subcommand_parser(argv[1])[0].parse_args(argv[2:])
        else:
            parser = cli._run_parser()
            options, server = cli.split_command(argv[1:], parser)
            parser.parse_args(options)
            assert server, command
        parsed += 1
    assert parsed > 10


def test_the_payments_example_server_is_only_named_as_an_illustration() -> None:
    text = README.read_text(encoding="utf-8")
    for command in readme_commands():
        assert "@codespar/mcp-ap2" not in command and "@acme/" not in command, command
    mentions = [line for line in text.splitlines() if "@codespar/mcp-ap2" in line]
    assert mentions, "the seed policy is PolicyLayer's example for @codespar/mcp-ap2: say so"
    section = text[text.index("### Example policies") : text.index("## Tool integrity")]
    assert "They are illustrations: that package is not on npm." in " ".join(section.split())


@pytest.mark.anyio
async def test_the_readme_terminal_example_runs_against_the_reference_server() -> None:
    """`mcp-guard --policy examples/policies/everything.json -- npx -y @modelcontextprotocol/server-everything`,
    with the server from tests/node (the same package, installed by `npm ci`) instead of npx's download."""
    from mcp import Client, StdioServerParameters
    from test_transcripts import node_everything

    assert (
        "mcp-guard --policy examples/policies/everything.json -- npx -y @modelcontextprotocol/server-everything"
        in readme_commands()
    )
    guard = guard_command()
    params = StdioServerParameters(
        command=guard[0],
        args=[
            *guard[1:],
            "--policy",
            str(ROOT / "examples" / "policies" / "everything.json"),
            "--",
            *node_everything(),
        ],
    )
    async with Client(params, mode="legacy", read_timeout_seconds=30) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" in names and "get-env" in names
        assert not any(name.startswith("toggle-") for name in names)  # hidden by the policy
        echoed = await client.call_tool("echo", {"message": "hi"})
        assert not echoed.is_error and "hi" in echoed.content[0].text  # type: ignore[union-attr]
        refused = await client.call_tool("get-env", {})
        assert refused.is_error
        assert refused.content[0].text == (  # type: ignore[union-attr]
            "mcp-guard refused this call to 'get-env' (policy rule tools.get-env.action): get-env returns the "
            "server's environment variables, API keys included; it is not for agents. The call was not sent to "
            "the server."
        )
        summed = await client.call_tool("get-sum", {"a": 2, "b": 3})
        assert not summed.is_error and "5" in summed.content[0].text  # type: ignore[union-attr]
