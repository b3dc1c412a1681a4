"""``mcp-guard logs``: recent decisions from the audit log, as a table or JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

HELP = "Show recent decisions from the audit log (newest last)."


def add_common(parser: argparse.ArgumentParser, json_help: str) -> None:
    parser.add_argument("--audit-log", metavar="PATH", help="the audit log to read (default: the guard's default)")
    parser.add_argument(
        "--since", metavar="AGE", help="only decisions newer than AGE (e.g. 10m, 2h, 1d) or an ISO time"
    )
    parser.add_argument("--server", help="only this server")
    parser.add_argument("--tool", help="only this tool")
    parser.add_argument("--json", action="store_true", help=json_help)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "print each decision as the audit log has it: one JSON object per line, for scripts")
    parser.add_argument(
        "--decision", choices=["allowed", "refused", "approved", "declined", "monitored"], help="only this decision"
    )
    parser.add_argument("-n", "--lines", type=int, default=50, help="how many of the newest decisions (default 50)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new decisions as they happen")
    parser.add_argument(
        "--args",
        metavar="JSON",
        help="only calls with exactly these arguments (matched by their keyed fingerprint; values are never logged)",
    )


def log_path(args: argparse.Namespace) -> Path:
    from mcp_guard.audit import default_audit_path

    return Path(args.audit_log) if args.audit_log else default_audit_path()


def since_cutoff(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    from mcp_guard.policy.model import window_seconds

    try:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=window_seconds(text))
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"mcp-guard: --since {text!r}: expected an age such as 10m, 2h, 1d, or an ISO time") from None
    return when if when.tzinfo else when.astimezone()


def read_records(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a torn last line while a guard is writing
                    if isinstance(record, dict):
                        yield record
        except FileNotFoundError:
            continue


def matches(record: dict[str, Any], args: argparse.Namespace, cutoff: dt.datetime | None) -> bool:
    if args.server and record.get("server") != args.server:
        return False
    if args.tool and record.get("tool") != args.tool:
        return False
    if getattr(args, "decision", None) and record.get("decision") != args.decision:
        return False
    wanted = getattr(args, "args_hmac", None)
    if wanted is not None and record.get("args_hmac") != wanted:
        return False
    if cutoff is not None:
        try:
            if dt.datetime.fromisoformat(str(record.get("ts"))) < cutoff:
                return False
        except ValueError:
            return False
    return True


def shown(value: Any) -> str:
    """A field of a record as it may be printed: control, bidi, tag and other invisible characters
    escaped (the log holds what clients, servers and the model sent). Never cut: two servers whose
    names differ only at the end must not look the same."""
    from mcp_guard.approval.request import printable

    return printable("" if value is None else str(value))


def aligned(rows: list[list[str]], widths: list[int], right: frozenset[int] = frozenset()) -> list[str]:
    """``rows`` as lines, each column padded to ``widths`` (a longer cell pushes the rest of its row
    right, never cut); the last column is not padded."""
    lines = []
    for row in rows:
        last = len(row) - 1
        cells = [
            cell if i == last else (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def widths_of(rows: list[list[str]]) -> list[int]:
    """Each column as wide as its widest cell."""
    return [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]


HEADER = ["time", "server", "tool", "decision", "status", "duration", "rule", "reason"]
_RIGHT = frozenset({5})  # duration


def _cells(record: dict[str, Any]) -> list[str]:
    try:
        when = dt.datetime.fromisoformat(str(record["ts"])).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (KeyError, ValueError, OverflowError):
        when = "?"
    duration = record.get("duration_ms")
    took = f"{duration:.1f}ms" if isinstance(duration, (int, float)) and not isinstance(duration, bool) else ""
    return [
        when,
        shown(record.get("server")),
        shown(record.get("tool")),
        shown(record.get("decision")),
        shown(record.get("status")),
        took,
        shown(record.get("rule")),
        shown(str(record.get("reason") or "").replace("\n", " ")),
    ]


def _emit(record: dict[str, Any], as_json: bool, widths: list[int]) -> None:
    from mcp_guard.approval.request import json_for_people

    print(json_for_people(record) if as_json else aligned([_cells(record)], widths, _RIGHT)[0], flush=True)


def run(args: argparse.Namespace) -> int:
    from mcp_guard.audit import log_files

    path = log_path(args)
    cutoff = since_cutoff(args.since)
    args.args_hmac = None
    if args.args:
        try:
            wanted = json.loads(args.args)
        except ValueError as exc:
            print(f"mcp-guard logs: --args is not valid JSON: {exc}", file=sys.stderr)
            return 2
        if not isinstance(wanted, dict):
            print("mcp-guard logs: --args must be a JSON object, e.g. '{\"amount\": 12}'", file=sys.stderr)
            return 2
        from mcp_guard.integrity.fingerprint import keyed_fingerprint, load_or_create_secret

        args.args_hmac = keyed_fingerprint(wanted, load_or_create_secret())
    records = [r for r in read_records(log_files(path)) if matches(r, args, cutoff)]
    if not records and not args.follow:
        if not path.exists():
            print(f"mcp-guard: no audit log at {path} yet (the guard writes one line per decision)", file=sys.stderr)
        else:
            print("mcp-guard: no decisions match", file=sys.stderr)
        return 0
    records = records[-args.lines :] if args.lines > 0 else records
    # Columns as wide as what they hold; with --follow, a later, longer name pushes its own row right.
    widths = widths_of([HEADER, *(_cells(record) for record in records)])
    if not args.json:
        print(aligned([HEADER], widths, _RIGHT)[0])
    for record in records:
        _emit(record, args.json, widths)
    if args.follow:
        try:
            _follow(path, args, cutoff, widths)
        except KeyboardInterrupt:
            return 0
    return 0


def _follow(path: Path, args: argparse.Namespace, cutoff: dt.datetime | None, widths: list[int]) -> None:
    """tail -f that survives rotation (the file is replaced by a new inode)."""
    handle = None
    inode = None
    buffer = ""
    while True:
        if handle is None:
            try:
                handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                inode = os.fstat(handle.fileno()).st_ino
                if buffer == "" and inode is not None:
                    handle.seek(0, os.SEEK_END)
            except FileNotFoundError:
                time.sleep(0.5)
                continue
        chunk = handle.read()
        if chunk:
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and matches(record, args, cutoff):
                    _emit(record, args.json, widths)
            continue
        try:
            if os.stat(path).st_ino != inode:
                handle.close()
                handle = None
                buffer = "\n"  # read the new file from its start
                continue
        except FileNotFoundError:
            pass
        time.sleep(0.3)
