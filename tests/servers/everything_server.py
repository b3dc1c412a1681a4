"""An SDK-built "everything" MCP stdio server: the upstream for mcp-guard's transparency tests.

mcp-guard has to relay everything it does not police without changing it, so this server
exercises as much of MCP as the Python SDK (2.x) offers, in both protocol eras (the SDK
serves the ``initialize`` handshake and the 2026-07-28 per-request envelope / ``server/discover``
on the same stdio connection, deciding by the client's first request):

* tools: ``echo``, ``add`` (structured output), ``big`` (a text of exactly N bytes), ``slow`` (sleeps;
  cancellable), ``progress`` (progress notifications), ``log`` (``notifications/message``),
  ``elicit`` / ``sample`` / ``roots`` (server-to-client requests in the handshake era; an
  ``InputRequiredResult`` round trip in the 2026-07-28 era), ``fail`` (an ``isError`` result),
  ``image`` (image content), ``notify_changes`` (list-changed / resource-updated notifications),
  ``crash`` (the process dies mid-call) and ``print_to_stdout`` (a stray non-JSON line on the wire);
* resources (static text, static binary, a template), resource subscriptions (handshake era);
* prompts, completion, ``logging/setLevel`` (handshake era).

Command-line flags, for tests of the guard's edge cases:

* ``--tools N`` registers N extra trivial tools ``tool_0 .. tool_{N-1}``;
* ``--page-size K`` pages ``tools/list`` K tools at a time (``MCPServer`` itself never paginates,
  so a middleware slices its answer and mints ``nextCursor``);
* ``--banner`` writes a non-JSON line to stdout before serving, like a chatty server's start-up banner;
* ``--exit-after-init CODE`` exits with CODE when the first request after the handshake
  (``initialize`` or ``server/discover``) arrives, before answering it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, Any, get_args

import anyio
from mcp.server import MCPServer, NotificationOptions, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware
from mcp.server.mcpserver import (
    Context,
    Elicit,
    ElicitationResult,
    Image,
    ListRoots,
    Resolve,
    Sample,
    UserMessage,
)
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import (
    INVALID_PARAMS,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageResult,
    EmptyResult,
    ListRootsResult,
    LoggingLevel,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

# Logging, sampling and roots are deprecated as of 2026-07-28 but are exactly what a transparency
# test must cover; without this the SDK's deprecation warnings would clutter stderr on every call.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

app = MCPServer(
    "everything",
    version="1.0.0",
    instructions="Test upstream for mcp-guard: exercises every MCP feature the Python SDK offers.",
)
# A few features (logging/setLevel, resources/subscribe, list-changed flags in the handshake
# capabilities) have no MCPServer-level API, so they are wired on the low-level server.
_lowlevel = app._lowlevel_server  # pyright: ignore[reportPrivateUsage]

LOG_LEVELS: tuple[LoggingLevel, ...] = get_args(LoggingLevel)
STATIC_URI = "everything://static/hello"
BLOB_URI = "everything://static/blob"
ITEMS = {"alpha": "first item", "beta": "second item", "gamma": "third item"}
NAMES = ("Ada", "Alan", "Alice", "Bob", "Grace")
# A 1x1 transparent PNG, small enough to inline.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)

_state: dict[str, Any] = {"log_level": "debug", "subscriptions": set(), "dynamic_tools": 0}
# The stdio transport points fd 1 at stderr while it serves (so stray prints cannot corrupt the
# wire), so print_to_stdout writes to a duplicate of the real stdout taken before serving starts.
_wire_fd: int | None = None


# --- tools -------------------------------------------------------------------------------------


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers (the result also comes back as structured content)."""
    return a + b


@app.tool(structured_output=False)
def big(size: int) -> str:
    """Return a text of exactly `size` bytes, for frame-size tests."""
    if size < 0:
        raise ToolError("size must be >= 0")
    # Unstructured, so the payload is not duplicated into structuredContent.
    pattern = "0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (pattern * (size // len(pattern) + 1))[:size]


@app.tool()
async def slow(seconds: float) -> str:
    """Sleep for `seconds`, then answer; cancellable through notifications/cancelled."""
    await anyio.sleep(seconds)
    return f"slept {seconds}s"


@app.tool()
async def progress(ctx: Context, steps: int = 5, delay: float = 0.0) -> str:
    """Emit `steps` progress notifications (when the caller sent a progressToken), then answer."""
    for step in range(1, steps + 1):
        if delay:
            await anyio.sleep(delay)
        await ctx.report_progress(step, steps, f"step {step}/{steps}")
    return f"done {steps} steps"


@app.tool()
async def log(ctx: Context, message: str, level: LoggingLevel = "info") -> str:
    """Send `message` as a notifications/message log entry at `level`.

    Handshake era: filtered by the level set through logging/setLevel. 2026-07-28 era: sent
    only if the request's _meta opted in at that level (the SDK enforces this).
    """
    if LOG_LEVELS.index(level) < LOG_LEVELS.index(_state["log_level"]):
        return f"dropped: {level} is below the level set by logging/setLevel"
    await ctx.log(level, message, logger_name="everything")
    return f"logged at {level}"


class Confirmation(BaseModel):
    """The form the `elicit` tool asks the user to fill in."""

    confirm: bool = Field(description="Proceed?")
    note: str = Field(default="", description="Optional note")


def _ask(question: str) -> Elicit[Confirmation]:
    return Elicit(question, Confirmation)


@app.tool()
def elicit(question: str, answer: Annotated[ElicitationResult[Confirmation], Resolve(_ask)]) -> str:
    """Ask the client (elicitation/create) to confirm `question`, and report the user's answer.

    Uses the SDK's resolver mechanism, which sends a server-to-client request in the handshake
    era and returns an InputRequiredResult (answered by a retried tools/call) in the 2026 era.
    """
    if answer.action == "accept":
        return f"accepted: confirm={answer.data.confirm} note={answer.data.note!r}"
    return answer.action


def _sample_request(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100)


@app.tool()
def sample(prompt: str, reply: Annotated[CreateMessageResult, Resolve(_sample_request)]) -> str:
    """Ask the client's LLM (sampling/createMessage) to answer `prompt`, and return its reply."""
    content = reply.content
    text = content.text if isinstance(content, TextContent) else content.type
    return f"{reply.model}: {text}"


def _list_roots() -> ListRoots:
    return ListRoots()


@app.tool()
def roots(listing: Annotated[ListRootsResult, Resolve(_list_roots)]) -> list[str]:
    """Ask the client for its roots (roots/list) and return their URIs."""
    return [str(root.uri) for root in listing.roots]


@app.tool()
def fail(message: str = "this tool always fails") -> str:
    """Raise a tool error, which the SDK turns into a CallToolResult with isError: true."""
    raise ToolError(message)


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def image() -> Image:
    """Return a 1x1 PNG as image content."""
    return Image(data=PIXEL_PNG, format="png")


@app.tool()
async def notify_changes(ctx: Context) -> str:
    """Register a new tool, then announce it and a resource change to the client.

    Handshake era: notifications/tools/list_changed and notifications/resources/updated for
    subscribed URIs. 2026-07-28 era: the same events go to subscriptions/listen streams.
    """
    index = _state["dynamic_tools"]
    _state["dynamic_tools"] += 1
    app.add_tool(_make_trivial_tool(f"dynamic_{index}"), name=f"dynamic_{index}", description="Added at run time.")
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        await ctx.notify_tools_changed()
        await ctx.notify_resource_updated(STATIC_URI)
    else:
        await ctx.session.send_tool_list_changed()
        for uri in sorted(_state["subscriptions"]):
            await ctx.session.send_resource_updated(uri)
    return f"added dynamic_{index}"


@app.tool(annotations=ToolAnnotations(destructive_hint=True))
def crash(code: int = 1) -> str:
    """Kill the server process immediately with exit status `code`, mid-call (no response is sent)."""
    sys.stderr.flush()
    os._exit(code)


@app.tool()
def print_to_stdout(text: str = "this is not JSON") -> str:
    """Write `text` as a raw, non-JSON line onto the stdout wire (a stray banner), then answer."""
    fd = _wire_fd if _wire_fd is not None else 1
    os.write(fd, (text + "\n").encode())
    return "printed"


def _make_trivial_tool(name: str) -> Callable[[], str]:
    # A fresh function per tool: MCPServer derives each tool's schema from its function.
    def trivial() -> str:
        return name

    return trivial


# --- resources, prompts, completion ------------------------------------------------------------


@app.resource(STATIC_URI, name="hello", description="A static text resource.", mime_type="text/plain")
def hello_resource() -> str:
    return "Hello from the everything server."


@app.resource(BLOB_URI, name="blob", description="A static binary resource.", mime_type="application/octet-stream")
def blob_resource() -> bytes:
    return bytes(range(256))


@app.resource("everything://items/{item_id}", name="item", description="An item by id.", mime_type="application/json")
def item_resource(item_id: str) -> str:
    if item_id not in ITEMS:
        raise ValueError(f"no item {item_id!r}")
    return json.dumps({"id": item_id, "description": ITEMS[item_id]})


@app.prompt()
def greet(name: str) -> str:
    """A one-message prompt that greets `name`."""
    return f"Say hello to {name}."


@app.prompt(title="Code review")
def review(code: str, language: str = "python") -> list[UserMessage]:
    """A multi-message prompt asking for a code review."""
    return [UserMessage(f"Please review this {language} code."), UserMessage(code)]


@app.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves this decorator untyped
async def complete(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion | None:
    """Complete greet's `name` argument and the items template's `item_id`."""
    if isinstance(ref, PromptReference) and ref.name == "greet" and argument.name == "name":
        candidates: Sequence[str] = NAMES
    elif isinstance(ref, ResourceTemplateReference) and argument.name == "item_id":
        candidates = sorted(ITEMS)
    else:
        return None
    values = [value for value in candidates if value.lower().startswith(argument.value.lower())]
    return Completion(values=values, total=len(values), has_more=False)


# --- handshake-era extras on the low-level server ----------------------------------------------


async def _set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
    _state["log_level"] = params.level
    return EmptyResult()


async def _subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
    _state["subscriptions"].add(str(params.uri))
    return EmptyResult()


async def _unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
    _state["subscriptions"].discard(str(params.uri))
    return EmptyResult()


_lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
_lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)


# --- middleware for the command-line behaviours -------------------------------------------------


def paginate_tools(page_size: int) -> ServerMiddleware[Any]:
    """Slice tools/list answers into pages of `page_size`; the cursor is an opaque offset token."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/list":
            return await call_next(ctx)
        cursor = (ctx.params or {}).get("cursor")
        start = 0
        if cursor is not None:
            if not (isinstance(cursor, str) and cursor.startswith("offset-") and cursor[7:].isdigit()):
                raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data=cursor)
            start = int(cursor[7:])
        result = await call_next(ctx)
        # The runner hands middleware the already-serialised wire dict.
        assert isinstance(result, dict)
        tools = result["tools"]
        result["tools"] = tools[start : start + page_size]
        if start + page_size < len(tools):
            result["nextCursor"] = f"offset-{start + page_size}"
        else:
            result.pop("nextCursor", None)
        return result

    return middleware


def exit_after_init(code: int) -> ServerMiddleware[Any]:
    """Exit with `code` when the first request after the handshake arrives, before answering it."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is not None and ctx.method not in ("initialize", "server/discover"):
            # A pipelining client may send this request before the handshake answer is written;
            # pause briefly so that answer reaches the wire before the process dies.
            await anyio.sleep(0.2)
            sys.stderr.flush()
            os._exit(code)
        return await call_next(ctx)

    return middleware


# --- entry point -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", type=int, default=0, metavar="N", help="add N trivial tools tool_0..tool_{N-1}")
    parser.add_argument("--page-size", type=int, default=0, metavar="K", help="page tools/list K tools at a time")
    parser.add_argument("--banner", action="store_true", help="print a non-JSON line on stdout before serving")
    parser.add_argument("--exit-after-init", type=int, default=None, metavar="CODE", help="exit after the handshake")
    return parser.parse_args(argv)


async def serve() -> None:
    """Like ``app.run()``, but advertising list-changed support in the handshake capabilities."""
    options = _lowlevel.create_initialization_options(
        NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
    )
    async with stdio_server() as (read_stream, write_stream):
        await _lowlevel.run(read_stream, write_stream, options)


def main(argv: Sequence[str] | None = None) -> None:
    global _wire_fd
    args = parse_args(argv)
    for index in range(args.tools):
        name = f"tool_{index}"
        app.add_tool(_make_trivial_tool(name), name=name, description=f"Trivial extra tool #{index}.")
    if args.page_size > 0:
        app.middleware.append(paginate_tools(args.page_size))
    if args.exit_after_init is not None:
        app.middleware.append(exit_after_init(args.exit_after_init))
    if args.banner:
        sys.stdout.write("everything-server v1.0.0 starting (this banner is not JSON-RPC)\n")
        sys.stdout.flush()
    _wire_fd = os.dup(1)
    anyio.run(serve)


if __name__ == "__main__":
    main()
