"""Listing a server's tools for pinning: start it once with the MCP SDK's client and read every page.

The server is started with ``server/discover`` first, falling back to the ``initialize``
handshake; every page of ``tools/list`` is read as the server sent it (the raw JSON, not the
SDK's models, so fields the SDK does not know are pinned too). ``init``, ``pins create``,
``pins diff``, ``pins accept`` and ``wrap --init`` all list through :func:`fetch_listing`.

Servers offer some tools only to clients that declare a capability (the npm reference server
lists 17 tools to a client declaring roots, sampling and elicitation, 13 to one declaring
nothing), so the listing client declares what real clients declare: by default the three
(Claude Code and VS Code declare them; Claude Desktop no elicitation), chosen with
``--capabilities``. A pin made as a bare client would hide the other tools from the real one.
The callbacks behind them only answer what a server may ask while it is being listed: no
roots, no sampling, elicitation declined.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PAGE_CAP = 10_000
CAPABILITIES = ("roots", "sampling", "elicitation")
"""The client capabilities a listing may declare, in the order they are written everywhere."""
DEFAULT_CAPABILITIES = CAPABILITIES


@dataclass
class Listing:
    """A server's complete tool list, as sent, and what it said about itself."""

    tools: list[dict[str, Any]]
    server: dict[str, Any] = field(default_factory=dict)  # command, name, version, protocolVersion
    problems: list[str] = field(default_factory=list)  # entries that cannot be pinned, duplicate names
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES  # what the listing client declared
    # What the server lists besides tools (None: it does not offer prompts, or resources), for init's sections.
    prompts: list[dict[str, Any]] | None = None
    resources: list[dict[str, Any]] | None = None
    templates: list[dict[str, Any]] | None = None
    instructions: str | None = None  # the server's instructions (initialize or server/discover), pinned too


def say(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def innermost(exc: BaseException) -> BaseException:
    while True:
        inner = getattr(exc, "exceptions", None)
        if not inner:
            return exc
        exc = inner[0]


def add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up if the server has not listed its tools by then (default: 60)",
    )


def parse_capabilities(text: str) -> tuple[str, ...]:
    """``roots,sampling,elicitation`` (any order, any subset) or ``none``; in :data:`CAPABILITIES` order."""
    words = [word.strip().lower() for word in text.split(",") if word.strip()]
    if words == ["none"]:
        return ()
    unknown = [word for word in words if word not in CAPABILITIES]
    if unknown or not words:
        raise argparse.ArgumentTypeError(
            f"unknown capability {', '.join(map(repr, unknown)) or repr(text)}: expected a comma-separated list of "
            f"{', '.join(CAPABILITIES)}, or none"
        )
    return tuple(name for name in CAPABILITIES if name in words)


def describe_capabilities(capabilities: Sequence[str]) -> str:
    """``a client declaring roots, sampling`` / ``a client declaring no capabilities``."""
    return f"a client declaring {', '.join(capabilities) if capabilities else 'no capabilities'}"


def add_capabilities(parser: argparse.ArgumentParser, default_help: str | None = None) -> None:
    parser.add_argument(
        "--capabilities",
        type=parse_capabilities,
        default=None,
        metavar="LIST",
        help="the client capabilities to declare while listing, comma-separated: "
        f"{', '.join(CAPABILITIES)}, or none. Servers offer some tools only to clients that declare them; "
        "declare what your client declares "
        f"(default: {default_help or ','.join(DEFAULT_CAPABILITIES)})",
    )


def _callbacks(capabilities: Sequence[str]) -> dict[str, Any]:
    """The SDK client's callbacks; passing one is what makes the SDK declare its capability."""
    from mcp import types

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[])  # grant a server that asks no folder: this is only a listing

    async def sampling(context: Any, params: Any) -> types.ErrorData:
        return types.ErrorData(code=types.INVALID_REQUEST, message="mcp-guard is only listing tools; no model here")

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    table = {"roots": ("list_roots_callback", roots), "sampling": ("sampling_callback", sampling)}
    table["elicitation"] = ("elicitation_callback", elicitation)
    return dict(table[name] for name in capabilities)


async def list_raw_tools(
    command: Sequence[str],
    timeout: float,
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Listing:
    """Start the server, read every ``tools/list`` page as raw JSON; the tools in the server's order."""
    import anyio
    from mcp import Client, StdioServerParameters, types
    from pydantic import BaseModel, ConfigDict

    class RawResult(BaseModel):
        """Any result object, its fields kept as sent (in ``model_extra``)."""

        model_config = ConfigDict(extra="allow")

    # The server sees the caller's whole environment, as it would when started by hand, plus what a
    # client config sets for it.
    params = StdioServerParameters(
        command=command[0], args=list(command[1:]), env={**os.environ, **(env or {})}, cwd=cwd
    )
    tools: list[dict[str, Any]] = []
    prompts: list[dict[str, Any]] | None = None
    resources: list[dict[str, Any]] | None = None
    templates: list[dict[str, Any]] | None = None
    instructions: str | None = None
    server: dict[str, Any] = {}
    with anyio.fail_after(timeout):
        async with Client(params, mode="auto", **_callbacks(capabilities)) as client:
            info = client.server_info
            if info is not None:
                server["name"] = info.name
                server["version"] = info.version
            server["protocolVersion"] = client.protocol_version
            instructions = client.instructions

            async def every_page(kind: Any, method: str, field: str) -> list[Any]:
                entries: list[Any] = []
                cursor: str | None = None
                seen: set[str] = set()
                for _ in range(PAGE_CAP):
                    request = kind(params=types.PaginatedRequestParams(cursor=cursor))
                    page = (await client.session.send_request(request, RawResult)).model_extra or {}
                    listed = page.get(field)
                    if not isinstance(listed, list):
                        raise RuntimeError(f"the server's {method} result has no {field} array")
                    entries.extend(listed)
                    next_cursor = page.get("nextCursor")
                    if next_cursor is None:
                        return entries
                    if not isinstance(next_cursor, str):
                        raise RuntimeError(f"the server sent a nextCursor that is not a string: {next_cursor!r}")
                    if next_cursor in seen:
                        raise RuntimeError(f"the server sent the {method} cursor {next_cursor!r} twice")
                    seen.add(next_cursor)
                    cursor = next_cursor
                raise RuntimeError(f"{method} did not end after {PAGE_CAP} pages")

            tools = await every_page(types.ListToolsRequest, "tools/list", "tools")
            offers = client.server_capabilities
            if offers.prompts is not None:
                prompts = await every_page(types.ListPromptsRequest, "prompts/list", "prompts")
            if offers.resources is not None:
                resources = await every_page(types.ListResourcesRequest, "resources/list", "resources")
                templates = await every_page(
                    types.ListResourceTemplatesRequest, "resources/templates/list", "resourceTemplates"
                )
    problems: list[str] = []
    names: set[str] = set()
    for index, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str):
            problems.append(f"tools/list entry {index} has no string name; it cannot be pinned")
        elif name in names:
            problems.append(f"the server lists {name!r} more than once; the first definition is pinned")
        else:
            names.add(name)
    return Listing(tools, server, problems, tuple(capabilities), prompts, resources, templates, instructions)


def fetch_listing(
    command: list[str],
    timeout: float,
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Listing | None:
    """Resolve and start ``command`` and list its tools as :func:`describe_capabilities` would; None (after
    saying why) if that fails. ``env`` is added to this process's environment; ``cwd`` is where it runs."""
    from mcp_guard.upstream import CommandNotFound, resolve_command

    try:
        resolved = resolve_command(command)
    except CommandNotFound as exc:
        say(f"command not found: {exc.command!r}")
        return None
    except PermissionError as exc:
        say(f"command is not executable: {exc}")
        return None

    import anyio

    say(f"starting {shlex.join(command)} to list its tools as {describe_capabilities(capabilities)}...")
    try:
        listing = anyio.run(list_raw_tools, resolved, timeout, capabilities, env, cwd)
    except Exception as exc:  # the SDK wraps failures in exception groups; report the cause
        cause = innermost(exc)
        if isinstance(cause, TimeoutError):
            say(f"the server did not list its tools within {timeout:g} s (raise it with --timeout)")
        else:
            say(f"could not list the server's tools: {type(cause).__name__}: {cause}")
        return None
    # The lock records which server it was made for, and as which client.
    listing.server = {"command": list(command), "clientCapabilities": list(capabilities), **listing.server}
    for problem in listing.problems:
        say(f"warning: {problem}")
    return listing


def server_label(server: dict[str, Any]) -> str:
    name = server.get("name")
    version = server.get("version")
    if isinstance(name, str) and name:
        return f"{name} {version}" if isinstance(version, str) and version else name
    command = server.get("command")
    return " ".join(map(str, command)) if isinstance(command, list) else "the server"
