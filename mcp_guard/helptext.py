"""What ``--help`` says beyond the options: one line per subcommand, and real examples for each.

Kept in one table rather than in each command's module so the main help (built on every start of
the guard) costs no imports, and so one test can walk every command and check that each example
parses with that command's own parser.
"""

from __future__ import annotations

import argparse
import textwrap

EVERYTHING = "npx -y @modelcontextprotocol/server-everything"
"""The reference server the examples guard: on npm, runs anywhere Node runs."""

SUMMARIES: dict[str, str] = {
    "check": "validate a policy file (exit 2 with located errors) and print its SHA-256",
    "explain": "dry-run one tool call against a policy: allowed, refused or asked, and why",
    "schema": "print the policy's JSON Schema, for editors",
    "logs": "show recent decisions from the audit log",
    "stats": "count decisions per server and tool, and the rules that refused calls",
    "init": "start a server once, list its tools and write a starter policy",
    "wrap": "put the guard in front of an MCP client's servers (edits its config, with a backup)",
    "unwrap": "take the guard out of a client's config again, byte for byte",
    "pins": "pin a server's tools in a lock file, compare them later, accept changes",
    "approvals": "list, show, approve or deny calls waiting for a person",
    "test": "run a policy's test cases through the guard's own checks, on a simulated clock",
    "replay": "replay recorded calls (--record, or the audit log) under a new policy: what would change",
    "flows": "list the flow labels client sessions hold, or forget them",
}
"""One line per subcommand for the main help (the older spellings are listed apart)."""

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "mcp-guard --policy examples/policies/seed.json -- python3 examples/demo_server.py",
        f"mcp-guard --policy mcp-guard-policy.json --monitor -- {EVERYTHING}",
    ),
    "check": ("mcp-guard check mcp-guard-policy.json", "mcp-guard check --sha256 mcp-guard-policy.json"),
    "explain": (
        'mcp-guard explain mcp-guard-policy.json echo \'{"message": "hi"}\'',
        "mcp-guard explain examples/policies/trifecta.json send_email '{}' --labels private,untrusted",
    ),
    "schema": ("mcp-guard schema -o policy.schema.json",),
    "test": (
        "mcp-guard test examples/payments.tests.yaml",
        "mcp-guard test payments.tests.yaml --junit results.xml",
    ),
    "replay": (
        "mcp-guard replay session.jsonl --policy new-policy.json",
        "mcp-guard replay session.jsonl --policy new-policy.json --against policy.json --json",
    ),
    "logs": (
        "mcp-guard logs --decision refused -n 20",
        "mcp-guard logs --follow --server @modelcontextprotocol/server-everything",
    ),
    "stats": (
        "mcp-guard stats --since 1h",
        "mcp-guard stats --json --policy mcp-guard-policy.json --state sqlite:counters.db --name everything",
    ),
    "init": (f"mcp-guard init -- {EVERYTHING}", f"mcp-guard init -o everything.json --timeout 120 -- {EVERYTHING}"),
    "wrap": (
        "mcp-guard wrap --client claude-desktop --server everything --policy everything.json --dry-run",
        "mcp-guard wrap --config .vscode/mcp.json --server everything --policy everything.json",
    ),
    "unwrap": ("mcp-guard unwrap --client claude-desktop --dry-run", "mcp-guard unwrap --config .cursor/mcp.json"),
    "pins": (
        f"mcp-guard pins create --lock everything.lock.json -- {EVERYTHING}",
        f"mcp-guard pins diff --lock everything.lock.json -- {EVERYTHING}",
    ),
    "pins create": (f"mcp-guard pins create --lock everything.lock.json -- {EVERYTHING}",),
    "pins diff": (f"mcp-guard pins diff --lock everything.lock.json -- {EVERYTHING}",),
    "pins accept": (
        f"mcp-guard pins accept echo --lock everything.lock.json -- {EVERYTHING}",
        f"mcp-guard pins accept --lock everything.lock.json -- {EVERYTHING}",
    ),
    "pin": (f"mcp-guard pin --lock everything.lock.json -- {EVERYTHING}",),
    "approvals": ("mcp-guard approvals", "mcp-guard approvals show ap-7k3m9q"),
    "approvals list": ("mcp-guard approvals list --json",),
    "approvals show": ("mcp-guard approvals show ap-7k3m9q",),
    "approvals approve": ("mcp-guard approvals approve ap-7k3m9q --for 10m",),
    "approvals deny": ("mcp-guard approvals deny ap-7k3m9q",),
    "approve": ("mcp-guard approve ap-7k3m9q", "mcp-guard approve ap-7k3m9q --for 10m"),
    "deny": ("mcp-guard deny ap-7k3m9q",),
    "flows": ("mcp-guard flows list", "mcp-guard flows clear --client pid4242-123456@1a2b3c4d"),
    "flows list": ("mcp-guard flows list --json --state sqlite:counters.db",),
    "flows clear": ("mcp-guard flows clear", "mcp-guard flows clear --client desktop --state redis://localhost:6379/0"),
}
"""Examples per command path ("" is the guard itself); each must parse with that command's parser."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills paragraphs written on one line to the terminal's width; keeps the others (lists, examples,
    text already broken into lines) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if "\n" in paragraph.strip("\n") or paragraph[:1].isspace():
                paragraphs.append(textwrap.indent(paragraph, indent))
            else:
                paragraphs.append(
                    textwrap.fill(paragraph.strip(), width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(paragraphs)


def examples_epilog(path: str) -> str | None:
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    return "examples:\n" + "\n".join(f"  {example}" for example in examples)


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers of ``parser``'s sub-commands (``pins create``, ``approvals show``), by name."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def decorate(parser: argparse.ArgumentParser, path: str) -> None:
    """Give ``parser`` (the command ``path``) and its sub-commands the formatter and their examples."""
    parser.formatter_class = HelpFormatter
    epilog = examples_epilog(path)
    if epilog is not None:
        parser.epilog = f"{parser.epilog}\n\n{epilog}" if parser.epilog else epilog
    for name, child in subparsers_of(parser).items():
        decorate(child, f"{path} {name}")
