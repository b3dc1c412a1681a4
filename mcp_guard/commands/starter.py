"""The starter test file ``init`` writes beside a policy (``NAME.tests.yaml``), for ``mcp-guard test``.

A few cases derived from the policy ``init`` drafted: a tool it allows, one it denies, a tool it
does not list, and a rate limit's last allowed and first refused call. Arguments are made up from
each tool's ``inputSchema`` (its required fields, with the simplest value of each type), since the
starter policy checks them (``validate_arguments``). Every case is run through the guard's own
pipeline before the file is written, and one that does not pass (a schema too clever for the
made-up arguments) is left out: the file ``init`` writes passes ``mcp-guard test`` as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HEADER = (
    "# Starter policy tests written by `mcp-guard init`: run them with `mcp-guard test {name}`.\n"
    "# Each case is a call and the decision the guard must reach; add your own (see the README's\n"
    "# policy tests section), and keep them passing as the policy changes.\n"
)
UNLISTED = "a_tool_the_policy_does_not_list"


def tests_path(policy: Path) -> Path:
    """``payments.json`` -> ``payments.tests.yaml``, beside it."""
    return policy.with_name(f"{policy.stem}.tests.yaml")


def sample(schema: object, depth: int = 0) -> Any:
    """The simplest value ``schema`` accepts, as far as a simple schema says."""
    if not isinstance(schema, Mapping) or depth > 8:
        return "x"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            kept = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return sample((kept or options)[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(1, int(low) + 1) if isinstance(low, (int, float)) else 1
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "array":
        least = schema.get("minItems", 0)
        return [sample(schema.get("items"), depth + 1) for _ in range(least if isinstance(least, int) else 0)]
    if kind == "object":
        return arguments_for(schema, depth + 1)
    if kind == "null":
        return None
    least = schema.get("minLength", 1)
    return "x" * max(1, least if isinstance(least, int) else 1)


def arguments_for(schema: object, depth: int = 0) -> dict[str, Any]:
    """Arguments with each required field of an object schema, and nothing else."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    names = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    return {name: sample(properties.get(name), depth) for name in names}


def draft_cases(policy: Mapping[str, Any], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The starter cases for ``policy`` (a document ``init`` built) and the tools it was built from."""
    from mcp_guard.policy.engine import key_path

    rules = policy.get("tools", {})
    schemas = {t["name"]: t.get("inputSchema") for t in tools if isinstance(t.get("name"), str)}

    def call(tool: str) -> dict[str, Any]:
        return {"tool": tool, "args": arguments_for(schemas.get(tool))}

    cases: list[dict[str, Any]] = []
    allowed = [n for n, r in rules.items() if r.get("action", "allow") == "allow"]
    plain = next((n for n in allowed if not rules[n].get("limits")), None)
    if plain is not None:
        cases.append({"name": f"{plain} is allowed", "call": call(plain), "expect": "allow"})
    denied = next((n for n, r in rules.items() if r.get("action") == "deny"), None)
    if denied is not None:
        cases.append(
            {
                "name": f"{denied} is refused",
                "call": call(denied),
                "expect": {"decision": "deny", "rule": f"{key_path(denied)}.action"},
            }
        )
    cases.append({"name": "a tool the policy does not list is refused", "call": call(UNLISTED), "expect": "deny"})
    limited = next((n for n in allowed if rules[n].get("limits")), None)
    if limited is not None:
        limit = rules[limited]["limits"][0]
        most = int(limit["max"])
        cases.append(
            {
                "name": f"{limited}: {most} calls in a {limit['window']} pass, the next is refused",
                "repeat": most + 1,
                "call": call(limited),
                "expect": "allow",
                "expect_last": {"decision": "deny", "rule": f"{key_path(limited)}.limits[0]"},
            }
        )
    return cases


def write_starter_tests(policy_path: Path, tools: Sequence[Mapping[str, Any]], force: bool) -> tuple[Path, int] | str:
    """Write the starter tests beside ``policy_path`` (written already, with its lock file).

    Returns (the file, how many cases) or why nothing was written.
    """
    import json

    import yaml

    from mcp_guard import atomic
    from mcp_guard.commands.testing import Suite, run_suite
    from mcp_guard.policy.cases import Case
    from mcp_guard.policy.load import load_policy

    target = tests_path(policy_path)
    if target.exists() and not force:
        return f"{target} already exists; not overwriting it (pass --force to replace it)"
    policy = load_policy(policy_path)
    document = json.loads(policy_path.read_text(encoding="utf-8"))
    drafted = draft_cases(document, tools)
    cases = [Case.model_validate(c) for c in drafted]
    report = run_suite(Suite(target, policy, policy_path, None, cases, [None] * len(cases)))
    kept = [c for c, r in zip(drafted, report.results, strict=True) if r.status == "pass"]
    text = HEADER.format(name=target.name) + yaml.safe_dump(
        {"policy": policy_path.name, "cases": kept}, sort_keys=False, allow_unicode=True, width=100
    )
    atomic.write(target, text.encode("utf-8"))
    return target, len(kept)
