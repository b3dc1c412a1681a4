"""The policy document: PolicyLayer's JSON v1 and the fields mcp-guard adds.

These models describe the document as written (windows stay ``"minute"`` or
``"90s"``); :mod:`mcp_guard.policy.engine` compiles them into what the hot path
needs. Every model forbids unknown fields: a misspelt key must stop the guard,
not silently weaken the policy.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

WINDOW_NAMES: dict[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

WindowSpec = Literal["second", "minute", "hour", "day"] | float | str


def window_seconds(spec: WindowSpec) -> float:
    """Seconds in a window written as a name, a number of seconds, or ``"90s"``/``"15m"``/``"2h"``/``"1d"``."""
    if isinstance(spec, bool):
        raise ValueError("a window is a name, a number of seconds or a duration, not true/false")
    if isinstance(spec, (int, float)):
        seconds = float(spec)
    elif spec in WINDOW_NAMES:
        seconds = WINDOW_NAMES[spec]
    else:
        m = _DURATION.match(spec)
        if m is None:
            raise ValueError(
                f"window {spec!r} is not understood: expected 'second', 'minute', 'hour', 'day', "
                "a number of seconds, or a duration such as '90s', '15m', '2h', '1d'"
            )
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not seconds > 0:
        raise ValueError(f"window must be longer than zero seconds, got {spec!r}")
    return seconds


def _version_schema(schema: dict[str, Any]) -> None:
    """The schema editors check against says what the loader accepts: "1", or the number 1."""
    schema.pop("const", None)
    schema.pop("type", None)
    schema["enum"] = ["1", 1]


NOTE_HELP = "For people reading the policy (why it is there, what to change); never sent to the model."


class _Strict(BaseModel):
    # strict: a value of the wrong type is an error, never converted ("3" is not a max, "yes" not a boolean).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Operator = Literal["eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "exists", "within"]


class Condition(_Strict):
    """A test on the call: ``{"path": "args.amount", "op": "gt", "value": 10000}``."""

    path: str = Field(description="'tool', or 'args.KEY' with nested keys and list indexes (args.items[0].sku).")
    op: Operator = Field(description="How the value at path is compared with 'value'.")
    value: Any = Field(
        default=None,
        description="What to compare with (a list for in/not_in, a pattern for regex, an absolute directory or a "
        "list of them for within).",
    )
    not_: bool = Field(default=False, alias="not", description="Invert the test.")
    reason: str | None = Field(default=None, description="Shown to the model when this condition refuses a call.")
    note: str | None = Field(default=None, description=NOTE_HELP)


class ConditionGroup(_Strict):
    """PolicyLayer's form: all ``conditions`` together, with the message ``on_deny``."""

    conditions: list[Condition] = Field(description="All must match for the group to match; [] always matches.")
    on_deny: str | None = Field(default=None, description="Shown to the model when the group refuses a call.")
    note: str | None = Field(default=None, description=NOTE_HELP)


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "group" if "conditions" in value or "on_deny" in value else "condition"
    return "group" if isinstance(value, ConditionGroup) else "condition"


# Tagged so a mistake is reported against the form the author meant, not against both.
ConditionEntry = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated[ConditionGroup, Tag("group")],
    Discriminator(_entry_kind),
]


class Limit(_Strict):
    """One sliding-window limit on a named counter."""

    counter: str = Field(min_length=1, description="Counter name; limits naming the same counter share it.")
    window: WindowSpec = Field(
        description="'second', 'minute', 'hour', 'day', a number of seconds, or a duration such as '90s'."
    )
    max: float = Field(gt=0, description="Most calls (or, with increment_from, the largest total) per window.")
    scope: Literal["grant", "server", "global"] = Field(
        default="grant",
        description=(
            "Who shares the counter. 'grant': this guard process (one client's session with one server); "
            "'server': every guard with the same --name using the same --state store; "
            "'global': every guard using the same --state store."
        ),
    )
    refund_on_error: bool = Field(
        default=False, description="A call the server answers with an error does not count against this limit."
    )
    increment_from: str | None = Field(
        default=None,
        description="Make this a spend cap: each call adds the number at this path (e.g. 'args.amount').",
    )
    key: str | None = Field(
        default=None,
        description="Give each distinct value at this path (e.g. 'args.customer_id') its own counter. A call "
        "whose value is missing or not a string, number or boolean is refused.",
    )
    max_keys: int = Field(
        default=10000,
        gt=0,
        description="With key: the most distinct values the counter tracks at once (a value is tracked while its "
        "window holds a call). Past it, calls with a new value are refused; no value's count is ever dropped.",
    )
    reason: str | None = Field(default=None, description="Shown to the model when this limit refuses a call.")
    note: str | None = Field(default=None, description=NOTE_HELP)

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: WindowSpec) -> WindowSpec:
        window_seconds(value)
        return value

    @model_validator(mode="after")
    def _whole_count(self) -> Limit:
        # "at most 3.5 calls" would admit 3 and read as a typo; a spend cap (increment_from) may be 99.5.
        if self.increment_from is None and not float(self.max).is_integer():
            raise PydanticCustomError(
                "whole_number",
                "a count limit admits whole calls: expected a whole number (only a spend cap with "
                "increment_from may be fractional)",
                {"field": "max", "input": self.max},
            )
        return self


def _detector_names(value: list[str], field: str) -> list[str]:
    """Unknown names are reported where the whole document is seen (a name may be a pattern defined in
    ``all_tools.results``); here only duplicates, which read as a typo."""
    seen: set[str] = set()
    for name in value:
        if name in seen:
            raise ValueError(f"{field} names {name!r} twice")
        seen.add(name)
    return value


DETECTOR_HELP = (
    "Detector names: secrets, payment_cards, ibans, emails, invisible_text, terminal_escapes, or a name "
    "defined in patterns."
)


class _Detectors(_Strict):
    block: list[str] = Field(default_factory=list, description="What is withheld when found. " + DETECTOR_HELP)
    warn: list[str] = Field(default_factory=list, description="Only reported (stderr and audit). " + DETECTOR_HELP)
    patterns: dict[str, str] = Field(
        default_factory=dict, description="Named detectors of your own: name -> RE2 pattern (linear time)."
    )
    note: str | None = Field(default=None, description=NOTE_HELP)

    @field_validator("block", "warn")
    @classmethod
    def _names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _detector_names(value, str(info.field_name))

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            return value
        from mcp_guard.inspect.catalog import DETECTORS
        from mcp_guard.inspect.scanner import pattern_problem

        for name, regex in value.items():
            if not name or name in DETECTORS:
                raise ValueError(f"pattern name {name!r} is {'empty' if not name else 'a built-in detector'}")
            problem = pattern_problem(regex)
            if problem is not None:
                raise ValueError(f"pattern {name!r} ({regex!r}) {problem}")
        return value


class ResultRules(_Detectors):
    """What to do with findings in what a server sends back (``results`` on ``all_tools`` and tool rules).

    ``block`` replaces the whole result with an error that says what kind and how many (never the
    value); ``redact`` replaces each finding with ``[redacted: detector/kind]``; ``warn`` only reports.
    """

    redact: list[str] = Field(
        default_factory=list, description="Replace each finding with [redacted: detector/kind]. " + DETECTOR_HELP
    )
    validate_output: bool = Field(
        default=False,
        description="Check structuredContent against the tool's outputSchema (pinned or listed); a mismatch "
        "blocks the result.",
    )

    @field_validator("redact")
    @classmethod
    def _redact_names(cls, value: list[str]) -> list[str]:
        return _detector_names(value, "redact")


class DescriptionRules(_Detectors):
    """What to do with findings in tool definitions (``tools/list``) and the server's ``instructions``:
    ``block`` hides such a tool (and drops such instructions), ``warn`` only reports."""


class LimitSet(_Strict):
    limits: list[Limit] = Field(default_factory=list)
    results: ResultRules | None = Field(
        default=None, description="What to do with findings in every tool's results (and resources, prompts)."
    )


class _Rule(_Strict):
    """What a tool rule and a prompt or resource rule share (a request: a tool call, a prompts/get, a
    resources/read)."""

    action: Literal["allow", "deny", "approve"] = Field(
        default="allow", description="allow, deny, or approve (ask a person first)."
    )
    reason: str | None = Field(default=None, description="Shown to the model when this rule refuses a request.")
    note: str | None = Field(default=None, description=NOTE_HELP)
    deny_if: list[ConditionEntry] = Field(default_factory=list, description="Any match refuses the request.")
    require: list[ConditionEntry] = Field(
        default_factory=list, description="All must hold, else the request is refused."
    )
    approve_if: list[ConditionEntry] = Field(default_factory=list, description="Any match asks a person first.")
    remember: WindowSpec | None = Field(
        default=None,
        description="After a person approves a request, identical ones (same name and arguments) pass without "
        "asking for this long, e.g. '10m'.",
    )
    limits: list[Limit] = Field(default_factory=list)

    @field_validator("remember")
    @classmethod
    def _check_remember(cls, value: WindowSpec | None) -> WindowSpec | None:
        if value is not None:
            window_seconds(value)
        return value


class ToolRule(_Rule):
    """What the policy says about one tool (or a glob of tools). ``{}`` allows it."""

    validate_arguments: bool | None = Field(
        default=None,
        description="Check this tool's arguments against its declared inputSchema (overrides the top level).",
    )
    results: ResultRules | None = Field(
        default=None,
        description="What to do with findings in this tool's results; combined with all_tools.results, the "
        "strictest action per detector wins.",
    )
    labels: list[Label] = Field(
        default_factory=list,
        description="Labels this tool carries for flow rules (e.g. 'private', 'external'). A successful call "
        "gives the session its labels; a call to it is checked against the flow rules' 'to' labels. Every "
        "matching tool key (name or glob) adds its labels.",
    )


Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class FlowRule(_Strict):
    """Refuse (or ask about) a call to a tool carrying a 'to' label while the session holds a 'from' label."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    from_: list[Label] = Field(
        alias="from", min_length=1, description="Labels that, once acquired, make 'to' calls dangerous."
    )
    to: list[Label] = Field(min_length=1, description="Labels of the tools this rule stops while a 'from' is held.")
    within: WindowSpec | None = Field(
        default=None,
        description="How long an acquired label is held, e.g. '1h' (default: as long as the scope lasts, for "
        "'client' the client's session).",
    )
    action: Literal["deny", "approve"] = Field(default="deny", description="deny, or approve (ask a person first).")
    scope: Literal["client", "grant", "server", "global"] = Field(
        default="client",
        description="Whose labels count. 'client': every guard started by the same MCP client (flows across "
        "servers); 'grant': this guard only; 'server': every guard with the same --name on the same --state "
        "store; 'global': every guard on the same store.",
    )
    reason: str | None = Field(default=None, description="Shown to the model when this rule stops a call.")
    note: str | None = Field(default=None, description=NOTE_HELP)

    @field_validator("within")
    @classmethod
    def _check_within(cls, value: WindowSpec | None) -> WindowSpec | None:
        if value is not None:
            window_seconds(value)
        return value


class RequestRule(_Rule):
    """What the policy says about one prompt or resource (or a glob of them). ``{}`` allows it."""

    labels: list[Label] = Field(
        default_factory=list,
        description="Labels this prompt or resource carries for flow rules (e.g. 'private' for a resource, "
        "'external' for a prompt that fetches a URL), as a tool's do: a successful request gives the session its "
        "labels; a request for it is checked against the flow rules' 'to' labels. Every matching key (name, URI "
        "or glob) adds its labels; a tool of the same name gives none.",
    )


class RequestSection(_Strict):
    """``prompts`` or ``resources``: rules for ``prompts/get`` (by prompt name) or ``resources/read`` and
    ``resources/subscribe`` (by URI). Without the section those requests pass untouched."""

    default: Literal["allow", "deny"] = Field(
        default="allow", description="What happens to requests for names (URIs) not listed under 'rules'."
    )
    hide: list[str] = Field(
        default_factory=list,
        description="Names (URIs) or globs removed from listings and answered as if the server did not have them.",
    )
    rules: dict[str, RequestRule] = Field(default_factory=dict, description="Rules per name (URI) or glob.")


class PinsConfig(_Strict):
    """Tool pinning: compare every listed tool with a lock file written by ``mcp-guard pin``."""

    file: str = Field(description="The lock file; a relative path is relative to the policy file.")
    mode: Literal["enforce", "warn"] = Field(
        default="enforce",
        description="enforce: hide and refuse tools that differ from their pin or have none. warn: only report.",
    )


class Policy(_Strict):
    """A policy document (PolicyLayer JSON v1, extended)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        title="mcp-guard policy",
        json_schema_extra=None,
    )

    schema_: str | None = Field(default=None, alias="$schema", description="JSON Schema reference for editors.")
    version: Literal["1"] = Field(
        description="Policy format version; always '1' (the number 1 is read as '1').",
        json_schema_extra=_version_schema,
    )
    description: str | None = Field(default=None, description="Free text for people reading the policy.")
    mode: Literal["enforce", "monitor"] = Field(
        default="enforce", description="enforce: refuse what the policy refuses. monitor: only record decisions."
    )
    default: Literal["allow", "deny"] = Field(
        default="deny", description="What happens to calls of tools not listed under 'tools'."
    )
    hide: list[str] = Field(
        default_factory=list,
        description="Tool names or globs removed from tools/list and refused as unknown; '*' hides all.",
    )
    all_tools: LimitSet = Field(default_factory=LimitSet, description="Limits applied to every tool call.")
    state: str | None = Field(
        default=None,
        description="Where shared counters live (overridden by --state): 'memory:', 'sqlite:///path/counters.db', "
        "'redis://host:6379/0' or 'rediss://…'.",
    )
    record: str | None = Field(
        default=None,
        description="Record every frame of each session to this JSON-lines file (secrets redacted, mode 0600), "
        "for 'mcp-guard replay'; relative to the policy file. --record overrides it. Read at start only.",
    )
    approval_timeout: WindowSpec = Field(
        default=45,
        description="How long an in-band approval question may wait before falling through to the next channel "
        "(seconds or a duration; keep it under the ~60 s after which clients give up on a call).",
    )
    pins: PinsConfig | None = Field(default=None, description="Pin tool definitions against silent changes.")
    validate_arguments: bool = Field(
        default=False,
        description="Check every call's arguments against the tool's declared inputSchema (as pinned, where pinned).",
    )
    protect_own_files: bool = Field(
        default=True,
        description="Refuse calls whose arguments name the guard's own files (policy, lock, stores, audit log).",
    )
    on_store_error: Literal["deny", "allow"] = Field(
        default="deny",
        description="When the shared counter store (--state) cannot be reached: refuse calls under shared limits "
        "(deny, fail closed) or let them through uncounted (allow).",
    )
    tools: dict[str, ToolRule] = Field(default_factory=dict, description="Rules per tool name or glob.")
    tool_descriptions: DescriptionRules | None = Field(
        default=None,
        description="Scan tool definitions (tools/list) and the server's instructions: block hides the tool.",
    )
    flows: list[FlowRule] = Field(
        default_factory=list,
        description="Flow rules: stop a call to a tool with a 'to' label while a 'from' label is held.",
    )
    prompts: RequestSection | None = Field(
        default=None,
        description="Rules for prompts/get, by prompt name (conditions test 'prompt' and 'args.NAME'). Absent: "
        "prompts pass untouched.",
    )
    resources: RequestSection | None = Field(
        default=None,
        description="Rules for resources/read and resources/subscribe, by URI (conditions test 'uri'). Absent: "
        "resources pass untouched.",
    )
    # Checked as cases (mcp_guard.policy.cases) by the loader, and only when present: building those models
    # costs every guard's start-up time for a section the guard ignores. The schema shows their shape.
    tests: list[Any] | None = Field(
        default=None,
        description="Test cases run by 'mcp-guard test' against this policy; the guard itself ignores them.",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_number(cls, value: Any) -> Any:
        # YAML reads `version: 1` as a number, and people type it so; nothing else is taken for "1".
        return "1" if type(value) is int and value == 1 else value

    @field_validator("approval_timeout")
    @classmethod
    def _check_timeout(cls, value: WindowSpec) -> WindowSpec:
        window_seconds(value)
        return value


ALLOW_ALL = Policy(version="1", default="allow")
