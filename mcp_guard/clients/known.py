"""The MCP clients mcp-guard knows, and the config files each one reads."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

CLIENTS: dict[str, str] = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
}


def client_config_paths(
    client: str,
    *,
    project_dir: Path,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> list[Path]:
    """The config files ``client`` reads, whether or not they exist, user-level first."""
    env = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    platform = sys.platform if platform is None else platform

    def app_dir(name: str) -> Path:
        if platform == "darwin":
            return home / "Library" / "Application Support" / name
        if platform == "win32":
            return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / name
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / name

    if client == "claude-desktop":
        paths = [app_dir("Claude") / "claude_desktop_config.json"]
    elif client == "claude-code":
        user_dir = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home
        paths = [user_dir / ".claude.json", project_dir / ".mcp.json"]
    elif client == "cursor":
        paths = [home / ".cursor" / "mcp.json", project_dir / ".cursor" / "mcp.json"]
    elif client == "vscode":
        paths = [app_dir("Code") / "User" / "mcp.json", project_dir / ".vscode" / "mcp.json"]
    else:
        raise ValueError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")
    unique: list[Path] = []
    seen: set[str] = set()
    for path in paths:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique
