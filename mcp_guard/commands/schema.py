"""``mcp-guard schema``: the JSON Schema of the policy document, generated from the models."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mcp_guard import exits

HELP = 'Print the JSON Schema of the policy document (for editors: reference it with "$schema").'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")


def policy_schema() -> dict[str, Any]:
    from mcp_guard.policy.model import Policy

    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    # The model types "tests" loosely, to spare the guard's start-up (see model.py); editors get the cases' shape.
    from mcp_guard.policy.cases import TestsSection

    section = TestsSection.model_json_schema(by_alias=True, mode="validation")
    schema["$defs"] = dict(sorted({**schema["$defs"], **section.get("$defs", {})}.items()))
    schema["properties"]["tests"]["anyOf"][0]["items"] = section["properties"]["tests"]["items"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/mcp-guard/mcp-guard/schema/policy.schema.json"
    return schema


def run(args: argparse.Namespace) -> int:
    text = json.dumps(policy_schema(), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text, end="")
    return exits.OK
