"""Run a short agent-like session against the demo payments server, through mcp-guard.

    python examples/demo.py [--mode auto|legacy]

The script plays the MCP client. It launches ``python -m mcp_guard --policy examples/policies/seed.json
-- python examples/demo_server.py``, exactly as Claude Desktop or another MCP client would launch a
wrapped server, then:

1. lists the tools;
2. calls ``track_behavior_event`` 35 times: the seed policy allows 30 a minute, so the guard
   should pass 30 through and refuse 5, saying when to retry;
3. tries ``create_charge``, which the seed policy does not mention, so its default ``deny`` applies.

It prints a summary and exits 0 when the guard behaved as expected (30 allowed, 5 refused, the
charge refused), 1 otherwise. Paths are resolved from this file, so it runs from any directory.

The guard runs with a home and XDG folders in a temporary directory, removed at the end: a demo
must not leave an audit log, a secret or counters in your own mcp-guard folders.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

EXAMPLES = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLES.parent
POLICY = EXAMPLES / "policies" / "seed.json"
DEMO_SERVER = EXAMPLES / "demo_server.py"
VIOLATION_KEY = "mcp-guard/violation"

TRACK_CALLS = 35
EXPECTED_TRACK_ALLOWED = 30
EXPECTED_TRACK_REFUSED = 5
EVENTS = ("page_view", "login", "add_to_cart", "checkout_started", "payment_form_focus")


def violation_of(result: CallToolResult) -> dict[str, Any] | None:
    """The guard's machine-readable refusal facts, or None if the guard let the call through."""
    if not result.is_error or not result.meta:
        return None
    violation = result.meta.get(VIOLATION_KEY)
    return violation if isinstance(violation, dict) else None


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class Tally:
    """Per-tool outcome counts: allowed (reached the server), refused (by the guard), error (upstream)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def record(self, tool: str, result: CallToolResult) -> str:
        outcome = "refused" if violation_of(result) else "error" if result.is_error else "allowed"
        self.counts.setdefault(tool, Counter())[outcome] += 1
        return outcome

    def get(self, tool: str, outcome: str) -> int:
        return self.counts.get(tool, Counter())[outcome]

    def table(self) -> str:
        rows = [("tool", "allowed", "refused", "error")]
        rows += [(tool, str(c["allowed"]), str(c["refused"]), str(c["error"])) for tool, c in self.counts.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join([row[0].ljust(widths[0]), *(row[i].rjust(widths[i]) for i in range(1, 4))]) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def scratch_env(folder: Path) -> dict[str, str]:
    """A home and XDG folders under ``folder`` for the guard (the SDK passes HOME and PATH on, nothing else)."""
    env = {"HOME": str(folder)}
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(folder / var.lower())
    if os.name == "nt":
        env.update(USERPROFILE=str(folder), APPDATA=str(folder / "roaming"), LOCALAPPDATA=str(folder / "local"))
    return env


async def session(mode: str, scratch: Path) -> int:
    """Drive the scripted session; returns the process exit status."""
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_guard",
            "--policy",
            str(POLICY),
            "--audit-log",
            str(scratch / "audit.jsonl"),
            "--",
            sys.executable,
            str(DEMO_SERVER),
        ],
        env=scratch_env(scratch),
        # The repository root as working directory lets `-m mcp_guard` work from a source checkout
        # even when the package is not installed.
        cwd=str(REPO_ROOT),
    )
    tally = Tally()
    first_refusal: tuple[int, CallToolResult] | None = None
    print(f"Launching: mcp-guard --policy {POLICY.relative_to(REPO_ROOT)} -- python {DEMO_SERVER.name}")
    async with Client(params, mode=mode, read_timeout_seconds=30) as client:
        print(f"Connected (protocol {client.protocol_version}).\n")

        listing = await client.list_tools()
        print(f"Tools offered ({len(listing.tools)}): {', '.join(tool.name for tool in listing.tools)}\n")

        print(f"Calling track_behavior_event {TRACK_CALLS} times (policy: at most 30 per minute)...")
        outcomes: list[str] = []
        for call in range(1, TRACK_CALLS + 1):
            arguments = {
                "user_id": "user-42",
                "event": EVENTS[(call - 1) % len(EVENTS)],
                "properties": {"session": "demo", "seq": call},
            }
            result = await client.call_tool("track_behavior_event", arguments)
            outcomes.append(tally.record("track_behavior_event", result))
            if first_refusal is None and violation_of(result):
                first_refusal = (call, result)
        print("  " + "".join({"allowed": ".", "refused": "x", "error": "!"}[o] for o in outcomes))
        print("  (. allowed   x refused by the guard   ! error from the server)\n")

        if first_refusal is not None:
            call, result = first_refusal
            violation = violation_of(result) or {}
            print(f"First refusal, on call #{call}:")
            print(indent(text_of(result)))
            print(f"  rule: {violation.get('rule')}   kind: {violation.get('kind')}")
            print(f"  retry after: {violation.get('retry_after_s')} s\n")

        print("Trying create_charge (not in the policy, so the default 'deny' applies)...")
        charge = await client.call_tool(
            "create_charge",
            {"amount": 4999.0, "currency": "USD", "customer_id": "cus_001", "description": "demo"},
        )
        outcome = tally.record("create_charge", charge)
        violation = violation_of(charge) or {}
        print(f"  outcome: {outcome}")
        print(indent(text_of(charge)))
        if violation:
            print(f"  rule: {violation.get('rule')}   kind: {violation.get('kind')}")
        print()

    print("Summary")
    print(indent(tally.table(), "  "))
    print()

    problems: list[str] = []
    allowed, refused = (
        tally.get("track_behavior_event", "allowed"),
        tally.get("track_behavior_event", "refused"),
    )
    if (allowed, refused) != (EXPECTED_TRACK_ALLOWED, EXPECTED_TRACK_REFUSED):
        problems.append(
            f"track_behavior_event: expected {EXPECTED_TRACK_ALLOWED} allowed / "
            f"{EXPECTED_TRACK_REFUSED} refused, got {allowed} / {refused}"
        )
        if first_refusal is not None and first_refusal[0] == 1:
            problems.append("the very first call was refused: is a counter from an earlier run still in its window?")
    if tally.get("create_charge", "refused") != 1:
        problems.append("create_charge: expected the guard to refuse it")
    if problems:
        print("UNEXPECTED OUTCOME:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("OK: the guard allowed 30 events, refused the next 5 and denied the charge.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo session through mcp-guard.")
    parser.add_argument(
        "--mode",
        choices=("auto", "legacy"),
        default="auto",
        help="auto: 2026-07-28 server/discover, falling back to initialize; legacy: initialize only",
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="mcp-guard-demo-") as scratch:
            return anyio.run(session, args.mode, Path(scratch))
    except Exception as exc:
        # Most likely the guard failed to start (not installed, bad policy) and the connection closed;
        # anyio wraps that in exception groups, so report the innermost single cause.
        cause: BaseException = exc
        while (inner := getattr(cause, "exceptions", None)) and len(inner) == 1:
            cause = inner[0]
        print(
            f"FAILED: the session through mcp-guard broke off: {type(cause).__name__}: {cause}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
