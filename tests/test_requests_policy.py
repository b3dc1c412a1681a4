"""Prompts and resources under policy: the engine's sections, without pipes or clocks (issue 23, part 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_policy

from mcp_guard.judge import Judge
from mcp_guard.limits import MemoryLimiter
from mcp_guard.policy.decision import Allow, Approve, Deny
from mcp_guard.policy.engine import Engine, PolicyCompileError
from mcp_guard.policy.model import Policy
from mcp_guard.policy.uris import readings

ISSUE = {
    "default": "allow",
    "tools": {"fetch": {"limits": [{"counter": "web", "window": "minute", "max": 10}]}},
    "prompts": {
        "default": "allow",
        "hide": ["debug_*"],
        "rules": {"fetch": {"action": "deny", "reason": "Use the fetch tool."}},
    },
    "resources": {
        "default": "allow",
        "rules": {
            "file:///etc/*": {"action": "deny"},
            "https://*": {"limits": [{"counter": "web", "window": "minute", "max": 10}]},
        },
    },
}


def engine(doc: dict[str, Any]) -> Engine:
    return Engine(Policy.model_validate({"version": "1", **doc}))


def decide(e: Engine, kind: str, name: str, arguments: dict[str, Any] | None = None) -> Any:
    section = e.section(kind)
    assert section is not None
    return section.decide(name, arguments or {})


def test_no_sections_no_rules() -> None:
    e = engine({"default": "deny"})
    assert e.section("prompt") is None and e.section("resource") is None
    assert e.sections == {}


def test_denied_prompt_says_the_reason() -> None:
    d = decide(engine(ISSUE), "prompt", "fetch", {"url": "https://example.com"})
    assert d == Deny("deny", "prompts.rules.fetch.action", "Use the fetch tool.")


def test_other_prompts_follow_the_default() -> None:
    assert decide(engine(ISSUE), "prompt", "summarise") == Allow(None)
    strict = engine({"prompts": {"default": "deny"}})
    d = decide(strict, "prompt", "summarise")
    assert isinstance(d, Deny) and d.kind == "default_deny" and d.rule == "prompts.default"
    assert d.reason == "Prompt 'summarise' is not allowed: the policy does not list it and its default is deny."


def test_hidden_prompt() -> None:
    e = engine(ISSUE)
    section = e.section("prompt")
    assert section is not None
    assert section.is_hidden("debug_dump") and not section.is_hidden("fetch")
    d = decide(e, "prompt", "debug_dump")
    assert isinstance(d, Deny) and d.kind == "hidden" and d.rule == "prompts.hide"


def test_resource_globs_and_quoted_rule_paths() -> None:
    e = engine(ISSUE)
    d = decide(e, "resource", "file:///etc/passwd")
    assert d == Deny(
        "deny", 'resources.rules["file:///etc/*"].action', "The policy denies the resource 'file:///etc/passwd'."
    )
    allowed = decide(e, "resource", "https://example.com/a")
    assert isinstance(allowed, Allow) and allowed.rule == 'resources.rules["https://*"]'
    assert [(c.counter, c.max, c.window_s) for c in allowed.charges] == [("web", 10, 60.0)]
    assert decide(e, "resource", "file:///srv/data.txt") == Allow(None)


@pytest.mark.parametrize(
    "uri", ["file:///tmp/../etc/passwd", "file:///%65tc/passwd", "file://localhost/etc//passwd", "file:/etc/./passwd"]
)
def test_resource_spellings_cannot_step_around_a_rule(uri: str) -> None:
    d = decide(engine(ISSUE), "resource", uri)
    assert isinstance(d, Deny) and d.kind in ("deny", "invalid"), d


def test_uri_readings() -> None:
    assert readings("file:///tmp/../etc/passwd") == ["file:///tmp/../etc/passwd", "file:///etc/passwd"]
    assert readings("https://a/../b") == ["https://a/../b", "https://a/b"]  # as a URL parser reads it
    assert readings("file:///srv\\..\\etc\\x") == ["file:///srv\\..\\etc\\x", "file:///etc/x"]
    assert readings("custom:opaque") == ["custom:opaque"]
    assert readings("file:///a%00b") == []


def test_resource_and_tool_limits_share_a_counter() -> None:
    e = engine(ISSUE)
    judge = Judge(e, MemoryLimiter())
    outcomes = []
    for i in range(6):
        tool = e.decide("fetch", {"url": "https://x"})
        assert isinstance(tool, Allow)
        outcomes.append(judge.settle(tool))
        resource = decide(e, "resource", f"https://example.com/{i}")
        assert isinstance(resource, Allow)
        outcomes.append(judge.settle(resource))
    assert [type(o).__name__ for o in outcomes] == ["Allow"] * 10 + ["Deny"] * 2
    last = outcomes[-1]
    assert isinstance(last, Deny) and last.kind == "limit" and last.details["counter"] == "web"


def test_conditions_on_prompt_arguments_and_uris() -> None:
    e = engine(
        {
            "prompts": {
                "rules": {
                    "fetch": {"require": [{"path": "args.url", "op": "regex", "value": "https://docs\\..*"}]},
                    "ask": {"approve_if": [{"path": "prompt", "op": "eq", "value": "ask"}]},
                }
            },
            "resources": {"rules": {"file:///*": {"require": [{"path": "uri", "op": "within", "value": "/srv"}]}}},
        }
    )
    assert isinstance(decide(e, "prompt", "fetch", {"url": "https://docs.example"}), Allow)
    d = decide(e, "prompt", "fetch", {"url": "https://evil.example"})
    assert isinstance(d, Deny) and d.kind == "condition" and d.reason.startswith("This prompt requires args.url")
    missing = decide(e, "prompt", "fetch")
    assert isinstance(missing, Deny) and "args.url is missing" in missing.reason
    assert isinstance(decide(e, "prompt", "ask"), Approve)
    assert isinstance(decide(e, "resource", "file:///srv/a.txt"), Allow)
    outside = decide(e, "resource", "file:///home/me/.ssh/id_rsa")
    assert isinstance(outside, Deny) and outside.kind == "condition"


def test_approve_action() -> None:
    e = engine({"resources": {"rules": {"db://*": {"action": "approve", "remember": "10m"}}}})
    d = decide(e, "resource", "db://customers")
    assert isinstance(d, Approve)
    assert d.rule == 'resources.rules["db://*"].action'
    assert d.reason == "A person must approve requests for the resource 'db://customers'."
    assert d.remember_s == 600


@pytest.mark.parametrize(
    ("doc", "where", "text"),
    [
        (
            {"resources": {"rules": {"x://*": {"deny_if": [{"path": "args.a", "op": "eq", "value": 1}]}}}},
            ("resources", "rules", "x://*", "deny_if", 0, "path"),
            "a resource's conditions test 'uri'",
        ),
        (
            {"prompts": {"rules": {"p": {"deny_if": [{"path": "tool", "op": "eq", "value": 1}]}}}},
            ("prompts", "rules", "p", "deny_if", 0, "path"),
            "must be 'prompt' or start with 'args.'",
        ),
        (
            {
                "tools": {"t": {"limits": [{"counter": "web", "window": "minute", "max": 10}]}},
                "resources": {
                    "rules": {"x": {"limits": [{"counter": "web", "window": "minute", "max": 5, "scope": "global"}]}}
                },
            },
            ("resources", "rules", "x", "limits", 0, "counter"),
            "limits sharing a counter must agree",
        ),
        (
            {"prompts": {"rules": {"a*": {}, "*a": {}}}},
            ("prompts", "rules", "*a"),
            "can match the same prompt",
        ),
    ],
)
def test_compile_problems_name_the_place(doc: dict[str, Any], where: tuple[Any, ...], text: str) -> None:
    with pytest.raises(PolicyCompileError) as info:
        engine(doc)
    assert any(path == where and text in message for path, message in info.value.problems), info.value.problems


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="validate_arguments"):
        engine({"prompts": {"rules": {"p": {"validate_arguments": True}}}})
    with pytest.raises(ValueError, match="hidden"):
        engine({"resources": {"hidden": []}})


# mcp-guard test and explain ---------------------------------------------------------------------------


def test_policy_tests_may_name_prompts_and_resources(tmp_path: Path) -> None:
    from test_policy_tests import run_cases, statuses

    cases = [
        {"name": "fetch prompt", "call": {"prompt": "fetch", "args": {"url": "u"}}, "expect": "deny"},
        {"name": "hidden", "call": {"prompt": "debug_x"}, "expect": {"decision": "deny", "rule": "prompts.hide"}},
        {"name": "etc", "call": {"resource": "file:///etc/passwd"}, "expect": "deny"},
        {
            "name": "shared counter",
            "sequence": [
                {"call": {"tool": "fetch", "args": {"url": "u"}}, "repeat": 5, "expect": "allow"},
                {
                    "call": {"resource": "https://example.com/"},
                    "repeat": 6,
                    "expect": "allow",
                    "expect_last": {"decision": "deny", "rule": 'resources.rules["https://*"].limits[0]'},
                },
            ],
        },
        {"name": "wrong on purpose", "call": {"resource": "https://example.com/"}, "expect": "deny"},
    ]
    report = run_cases(tmp_path, cases, {"version": "1", **ISSUE})
    assert statuses(report) == [
        ("fetch prompt", "pass"),
        ("hidden", "pass"),
        ("etc", "pass"),
        ("shared counter", "pass"),
        ("wrong on purpose", "fail"),
    ]


@pytest.mark.parametrize(
    "call", [{"tool": "a", "prompt": "b"}, {}, {"resource": "x://y", "args": {"a": 1}}], ids=["two", "none", "args"]
)
def test_a_case_names_one_subject(call: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from mcp_guard.policy.cases import CallSpec

    with pytest.raises(ValidationError):
        CallSpec.model_validate(call)


def test_explain_a_prompt_and_a_resource(cli: Any, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"version": "1", **ISSUE})
    r = cli("explain", str(policy), "--prompt", "fetch", '{"url": "https://x"}')
    code, out, _ = r.returncode, r.stdout, r.stderr
    assert code == 1
    assert out.splitlines() == [
        "DENY  prompt fetch",
        "  rule:   prompts.rules.fetch.action",
        "  reason: Use the fetch tool.",
    ]
    r = cli("explain", str(policy), "--resource", "https://example.com/", "--json")
    code, out, _ = r.returncode, r.stdout, r.stderr
    assert code == 0
    assert json.loads(out) == {
        "decision": "allow",
        "rule": 'resources.rules["https://*"]',
        "reason": None,
        "kind": "resource",
        "limits": [
            {
                "rule": 'resources.rules["https://*"].limits[0]',
                "counter": "web",
                "window_s": 60.0,
                "max": 10,
                "cost": 1.0,
            }
        ],
    }
    bare = write_policy(tmp_path, {"version": "1", "default": "deny"}, "bare.json")
    r = cli("explain", str(bare), "--prompt", "fetch", "--json")
    code, out, _ = r.returncode, r.stdout, r.stderr
    assert code == 0
    assert (
        json.loads(out)["reason"]
        == "The policy has no 'prompts' section, so the guard relays every prompts/get untouched."
    )
    r = cli("explain", str(policy), "fetch", "--prompt", "fetch")
    code, _, err = r.returncode, r.stdout, r.stderr
    assert code == 2 and "not both" in err


def test_check_counts_the_sections(cli: Any, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"version": "1", **ISSUE})
    r = cli("check", str(policy))
    assert r.returncode == 0
    assert "1 tool rule, 0 hidden, prompts: 1 rule, 1 hidden, resources: 2 rules, 0 hidden)" in r.stdout


# Flow labels on prompt and resource rules ------------------------------------------------------------------

LABELLED = {
    "default": "allow",
    "tools": {"fetch": {"labels": ["external"]}},
    "prompts": {"rules": {"fetch": {"labels": ["external", "untrusted"]}, "summar*": {"labels": ["untrusted"]}}},
    "resources": {
        "rules": {
            "file:///srv/*": {"labels": ["private"]},
            "file:///srv/mail/*": {"labels": ["mail"], "action": "approve"},
            "https://example.com": {"labels": ["public"]},
        }
    },
    "flows": [{"from": ["private", "mail"], "to": ["external"]}, {"from": ["untrusted"], "to": ["public"]}],
}


def labels(e: Engine, kind: str, name: str) -> frozenset[str]:
    section = e.section(kind)
    assert section is not None
    return section.labels_for(name)


def test_prompt_and_resource_rules_carry_labels_every_matching_key_adds() -> None:
    e = engine(LABELLED)
    assert labels(e, "prompt", "fetch") == {"external", "untrusted"}
    assert labels(e, "prompt", "summarise") == {"untrusted"}
    assert labels(e, "prompt", "other") == frozenset()
    # A glob and a more specific glob both match: both add their labels (more labels only stop more requests).
    assert labels(e, "resource", "file:///srv/mail/1") == {"private", "mail"}
    assert labels(e, "resource", "file:///srv/notes.txt") == {"private"}
    # Every reading of a URI counts: a server reads file:///tmp/../srv/x as file:///srv/x.
    assert labels(e, "resource", "file:///tmp/../srv/x") == {"private"}
    assert labels(e, "resource", "file:///srv/%6Dail/1") == {"private", "mail"}
    assert labels(e, "resource", "https://example.com/") == {"public"}  # the URL parser's form of the exact key
    assert labels(e, "resource", "file:///etc/hostname") == frozenset()
    # The tool 'fetch' keeps its own: a prompt of the same name is another thing.
    assert e.labels_for("fetch") == {"external"}


def test_labels_on_prompt_and_resource_rules_are_checked_like_tool_labels() -> None:
    for section in ("prompts", "resources"):
        good = Policy.model_validate({"version": "1", section: {"rules": {"r": {"labels": ["a.b:c-d_1"]}}}})
        rules = getattr(good, section).rules
        assert rules["r"].labels == ["a.b:c-d_1"]
        for bad in (["a b"], [""], ["x" * 101], [1]):
            with pytest.raises(ValueError, match=rf"{section}\.rules\.r\.labels\.0\n"):
                Policy.model_validate({"version": "1", section: {"rules": {"r": {"labels": bad}}}})


def test_a_bad_label_on_a_resource_rule_is_reported_at_its_place_in_the_file(tmp_path: Path) -> None:
    from mcp_guard.policy.load import PolicyError, load_policy

    text = (
        '{\n  "version": "1",\n  "resources": {\n    "rules": {\n'
        '      "file:///srv/*": {"labels": ["private", "not ok"]}\n    }\n  }\n}\n'
    )
    path = tmp_path / "policy.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    # Line 5, column 47: where "not ok" starts.
    assert f"{path}:5:47: resources.rules.file:///srv/*.labels[1]: String should match pattern" in message, message
    assert message.endswith("got 'not ok'"), message


def test_check_knows_the_labels_prompt_and_resource_rules_give(cli: Any, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"version": "1", **LABELLED})
    r = cli("check", str(policy))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stderr, r.stderr
