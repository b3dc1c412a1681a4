"""``mcp-guard unwrap``: the inverse of ``mcp-guard wrap`` (same module, other entry point)."""

from __future__ import annotations

import argparse

from mcp_guard.commands import wrap as _wrap

HELP = _wrap.UNWRAP_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _wrap.add_unwrap_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _wrap.run_unwrap(args)
