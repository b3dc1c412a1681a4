"""``mcp-guard replay FILE --policy NEW [--against OLD]``: what a policy would decide differently on real traffic."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.commands.replaying import RecordedCall, ReplayReport
    from mcp_guard.commands.testing import Outcome

HELP = (
    "Replay the tool calls of a recorded session (mcp-guard --record FILE) or of the audit log under a policy, "
    "with their recorded timing, and print what would change: calls newly refused, newly allowed, newly needing "
    "approval. Compared with the decisions recorded, or with --against another policy. "
    "Exit 0 if nothing changes, 1 if something does, 2 for input that cannot be used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a record file (--record) or an audit log")
    parser.add_argument("--policy", required=True, type=Path, metavar="NEW", help="the policy to replay under")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="OLD",
        help="compare with this policy replayed the same way (default: the decisions recorded)",
    )
    parser.add_argument(
        "--lock",
        "--pins",
        dest="lock",
        type=Path,
        metavar="FILE",
        help="the lock file standing in for the server's tool list (default: the policy's pins.file)",
    )
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")


def run(args: argparse.Namespace) -> int:
    from mcp_guard.commands.replaying import ReplayError, load_recording, replay
    from mcp_guard.policy.load import PolicyError, load_policy

    try:
        recording = load_recording(args.file)
        policy = load_policy(args.policy)
        against = (load_policy(args.against), args.against) if args.against is not None else None
        report = replay(recording, policy, args.policy, against, args.lock)
    except ReplayError as exc:
        print(f"mcp-guard replay: {exc}", file=sys.stderr)
        return exits.USAGE
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return exits.USAGE
    except ValueError as exc:  # a lock file that cannot be used
        print(f"mcp-guard replay: {exc}", file=sys.stderr)
        return exits.USAGE
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(report_text(report), end="")
    return exits.DIFFERS if report.changes else exits.OK


def _where(call: RecordedCall, source: str) -> str:
    place = "line" if source == "audit" else "record line"
    return f"#{call.number} {call.tool} at {call.at:.3f} s (session {call.session}, {place} {call.line})"


def _outcome(outcome: Outcome) -> str:
    return f"{outcome.decision} ({outcome.rule})" if outcome.rule else outcome.decision


def report_text(report: ReplayReport) -> str:
    recording = report.recording
    compared = f"against {report.against}" if report.against is not None else "against the decisions recorded"
    kind = "audit log" if recording.source == "audit" else "recording"
    lines = [
        f"replay of {recording.file} ({kind}: {recording.sessions} session(s), {len(recording.calls)} call(s)) "
        f"under {report.policy}, {compared}"
    ]
    for category in ("newly refused", "newly allowed", "newly needing approval"):
        changes = [c for c in report.changes if c.category == category]
        if not changes:
            continue
        lines.append(f"{category} ({len(changes)}):")
        for change in changes:
            lines.append(
                f"  {_where(change.call, recording.source)}: {_outcome(change.before)} -> {_outcome(change.after)}"
            )
            if change.after.reason:
                lines.append(f"      {change.after.reason}")
    if report.skipped:
        lines.append(f"could not replay ({len(report.skipped)}):")
        for skipped in report.skipped:
            lines.append(f"  {_where(skipped.call, recording.source)}: {skipped.why}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def summary_line(report: ReplayReport) -> str:
    counts = report.counts()
    changed = len(report.changes)
    detail = ", ".join(f"{n} {name}" for name, n in counts.items())
    line = f"{report.replayed} call(s) replayed: {changed} changed ({detail}), {report.replayed - changed} unchanged"
    if report.skipped:
        line += f"; {len(report.skipped)} could not be replayed"
    return line


def _call_json(call: RecordedCall) -> dict[str, Any]:
    return {
        "number": call.number,
        "session": call.session,
        "line": call.line,
        "at_s": round(call.at, 6),
        "tool": call.tool,
        "id": call.ident,
    }


def report_json(report: ReplayReport) -> dict[str, Any]:
    recording = report.recording
    return {
        "file": str(recording.file),
        "source": recording.source,
        "policy": str(report.policy),
        "against": str(report.against) if report.against is not None else "recorded",
        "sessions": recording.sessions,
        "calls": len(recording.calls),
        "replayed": report.replayed,
        "changes": [
            {**_call_json(c.call), "change": c.category, "before": c.before.as_dict(), "after": c.after.as_dict()}
            for c in report.changes
        ],
        "not_replayed": [{**_call_json(s.call), "why": s.why} for s in report.skipped],
        "summary": {
            **report.counts(),
            "changed": len(report.changes),
            "unchanged": report.replayed - len(report.changes),
        },
    }
