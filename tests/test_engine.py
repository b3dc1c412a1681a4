"""The pure policy engine: globs, actions, conditions, spend caps, all without pipes or clocks."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_guard.judge import Judge
from mcp_guard.limits import MemoryLimiter
from mcp_guard.policy.decision import Allow, Approve, Deny
from mcp_guard.policy.engine import Engine, PolicyCompileError, compile_problems, policy_warnings
from mcp_guard.policy.globs import globs_overlap
from mcp_guard.policy.model import Policy


def engine(doc: dict[str, Any]) -> Engine:
    return Engine(Policy.model_validate({"version": "1", **doc}))


PAYMENTS = {
    "default": "deny",
    "tools": {
        "create_charge": {
            "deny_if": [
                {"path": "args.amount", "op": "gt", "value": 10000, "reason": "Charges over 10 000 are never allowed"}
            ],
            "require": [{"path": "args.currency", "op": "in", "value": ["EUR", "USD"]}],
            "approve_if": [{"path": "args.amount", "op": "gt", "value": 1000}],
            "limits": [
                {"counter": "charge_total", "window": "1h", "max": 5000, "increment_from": "args.amount"},
                {"counter": "charges", "window": "minute", "max": 10},
            ],
        },
        "get_*": {},
        "delete_*": {"action": "deny", "reason": "Deletion is done by hand"},
        "delete_draft*": {},
    },
}


def test_payments_policy_decisions() -> None:
    e = engine(PAYMENTS)
    ok = e.decide("create_charge", {"amount": 100, "currency": "EUR"})
    assert isinstance(ok, Allow) and ok.rule == "tools.create_charge"
    assert [(c.counter, c.cost) for c in ok.charges] == [("charge_total", 100.0), ("charges", 1.0)]

    too_big = e.decide("create_charge", {"amount": 20000, "currency": "EUR"})
    assert too_big == Deny("condition", "tools.create_charge.deny_if[0]", "Charges over 10 000 are never allowed.")

    yen = e.decide("create_charge", {"amount": 10, "currency": "JPY"})
    assert isinstance(yen, Deny) and yen.rule == "tools.create_charge.require[0]"
    assert yen.reason == 'This tool requires args.currency in ["EUR", "USD"].'

    ask = e.decide("create_charge", {"amount": 1500, "currency": "USD"})
    assert isinstance(ask, Approve) and ask.rule == "tools.create_charge.approve_if[0]"
    assert ask.reason == "A person must approve calls where args.amount > 1000."


def test_missing_or_mistyped_arguments_fail_closed() -> None:
    e = engine(PAYMENTS)
    missing = e.decide("create_charge", {"currency": "EUR"})
    assert isinstance(missing, Deny) and missing.kind == "condition"
    assert "args.amount is missing" in missing.reason
    text = e.decide("create_charge", {"amount": "5", "currency": "EUR"})
    assert isinstance(text, Deny) and "expected a number" in text.reason and "got a string" in text.reason
    boolean = e.decide("create_charge", {"amount": True, "currency": "EUR"})
    assert isinstance(boolean, Deny) and "got a boolean" in boolean.reason


def test_spend_cap_refuses_bad_amounts() -> None:
    e = engine(
        {
            "default": "allow",
            "tools": {
                "pay": {"limits": [{"counter": "spent", "window": "day", "max": 100, "increment_from": "args.amount"}]}
            },
        }
    )
    for bad in ({}, {"amount": -5}, {"amount": "10"}, {"amount": None}):
        decision = e.decide("pay", bad)
        assert isinstance(decision, Deny) and decision.kind == "invalid"
        assert decision.rule == "tools.pay.limits[0]"


def test_spend_cap_through_the_judge() -> None:
    clock = [0.0]
    judge = Judge(
        engine(
            {
                "default": "allow",
                "tools": {
                    "pay": {
                        "limits": [{"counter": "spent", "window": "hour", "max": 500, "increment_from": "args.amount"}]
                    }
                },
            }
        ),
        MemoryLimiter(clock=lambda: clock[0]),
    )
    assert isinstance(judge.judge("pay", {"amount": 300}), Allow)
    refused = judge.judge("pay", {"amount": 250})
    assert isinstance(refused, Deny) and refused.kind == "limit"
    assert refused.details["used"] == 300 and refused.details["max"] == 500
    assert "a total of at most 500 per hour" in refused.reason
    assert isinstance(judge.judge("pay", {"amount": 200}), Allow)


def test_glob_precedence() -> None:
    e = engine(PAYMENTS)
    assert e.decide("get_order", {}) == Allow("tools.get_*", ())
    assert e.decide("delete_account", {}) == Deny("deny", "tools.delete_*.action", "Deletion is done by hand.")
    assert e.decide("delete_draft_7", {}) == Allow("tools.delete_draft*", ())
    unknown = e.decide("send_mail", {})
    assert isinstance(unknown, Deny) and unknown.kind == "default_deny" and unknown.rule == "default"


def test_exact_name_beats_glob() -> None:
    e = engine({"default": "deny", "tools": {"*": {"action": "deny"}, "ping": {}}})
    assert e.decide("ping", {}) == Allow("tools.ping", ())
    assert isinstance(e.decide("pong", {}), Deny)


def test_equal_overlapping_globs_are_an_error() -> None:
    with pytest.raises(PolicyCompileError) as info:
        engine({"tools": {"delete_*": {}, "*_refund": {}}})
    assert "'delete_*' and '*_refund' can match the same tool" in str(info.value)
    engine({"tools": {"a*": {}, "b*": {}}})  # same specificity, but disjoint: fine


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("a*", "b*", False),
        ("delete_*", "*_refund", True),
        ("?", "ab", False),
        ("?", "*", True),
        ("a?c", "*c", True),
        ("x*y", "x*z", False),
        ("*", "*", True),
    ],
)
def test_glob_overlap(a: str, b: str, overlap: bool) -> None:
    assert globs_overlap(a, b) is overlap


def test_hide_globs_and_hidden_first() -> None:
    e = engine({"default": "allow", "hide": ["admin_*"], "tools": {"admin_reset": {}}})
    assert e.is_hidden("admin_reset") and not e.is_hidden("reset")
    decision = e.decide("admin_reset", {})
    assert isinstance(decision, Deny) and decision.kind == "hidden"


@pytest.mark.parametrize(
    ("condition", "args", "matches"),
    [
        ({"op": "eq", "value": 1}, {"x": 1.0}, True),
        ({"op": "eq", "value": 1}, {"x": True}, False),
        ({"op": "neq", "value": "a"}, {"x": "b"}, True),
        ({"op": "in", "value": [1, 2]}, {"x": 2}, True),
        ({"op": "not_in", "value": [1, 2]}, {"x": 3}, True),
        ({"op": "lte", "value": 5}, {"x": 5}, True),
        ({"op": "lt", "value": 5}, {"x": 5}, False),
        ({"op": "gte", "value": 5}, {"x": 5.5}, True),
        ({"op": "regex", "value": "[A-Z]{3}"}, {"x": "EUR"}, True),
        ({"op": "regex", "value": "[A-Z]{3}"}, {"x": "EURO"}, False),
        ({"op": "contains", "value": "drop"}, {"x": "please drop table"}, True),
        ({"op": "contains", "value": 3}, {"x": [1, 2, 3]}, True),
        ({"op": "exists"}, {"x": None}, True),
        ({"op": "exists"}, {}, False),
        ({"op": "exists", "value": False}, {}, True),
        ({"op": "eq", "value": 1, "not": True}, {"x": 2}, True),
    ],
)
def test_operators(condition: dict[str, Any], args: dict[str, Any], matches: bool) -> None:
    e = engine({"default": "deny", "tools": {"t": {"deny_if": [{"path": "args.x", **condition}]}}})
    decision = e.decide("t", args)
    assert isinstance(decision, Deny) is matches


def test_nested_paths_and_tool_path() -> None:
    e = engine(
        {
            "default": "allow",
            "tools": {
                "*": {
                    "deny_if": [
                        {"path": "args.items[1].sku", "op": "eq", "value": "BAD"},
                        {"path": "tool", "op": "regex", "value": "drop_.*"},
                        {"path": 'args["odd.key"]', "op": "eq", "value": 1},
                    ]
                }
            },
        }
    )
    assert isinstance(e.decide("x", {"items": [{"sku": "A"}, {"sku": "BAD"}]}), Deny)
    assert isinstance(e.decide("drop_table", {"items": [{"sku": "A"}, {"sku": "B"}], "odd.key": 0}), Deny)
    assert isinstance(e.decide("x", {"items": [{"sku": "A"}, {"sku": "B"}], "odd.key": 1}), Deny)
    assert isinstance(e.decide("x", {"items": [{"sku": "A"}, {"sku": "B"}], "odd.key": 0}), Allow)


def test_policylayer_condition_groups() -> None:
    e = engine(
        {
            "default": "deny",
            "tools": {
                "create_refund": {"deny_if": [{"conditions": [], "on_deny": "Requires human approval."}]},
                "refund": {
                    "require": [
                        {"conditions": [{"path": "args.reason", "op": "exists"}], "on_deny": "Refunds need a reason"}
                    ]
                },
            },
        }
    )
    assert e.decide("create_refund", {}) == Deny(
        "condition", "tools.create_refund.deny_if[0]", "Requires human approval."
    )
    assert e.decide("refund", {}) == Deny("condition", "tools.refund.require[0]", "Refunds need a reason.")
    assert isinstance(e.decide("refund", {"reason": "dup"}), Allow)


def test_approval_counts_limits_only_once_settled() -> None:
    limiter = MemoryLimiter()
    judge = Judge(
        engine(
            {
                "default": "deny",
                "tools": {
                    "wire": {
                        "action": "approve",
                        "reason": "Wires move money",
                        "remember": "10m",
                        "limits": [{"counter": "wires", "window": "hour", "max": 1}],
                    }
                },
            }
        ),
        limiter,
    )
    decision = judge.judge("wire", {})
    assert isinstance(decision, Approve)
    assert (decision.rule, decision.reason, decision.remember_s) == ("tools.wire.action", "Wires move money.", 600.0)
    assert limiter.usage("wires", 3600) == 0  # nothing counted while a person has not approved
    assert isinstance(judge.settle(decision), Allow)
    assert limiter.usage("wires", 3600) == 1
    refused = judge.settle(decision)
    assert isinstance(refused, Deny) and refused.kind == "limit"


@pytest.mark.parametrize(
    ("doc", "where", "words"),
    [
        (
            {"tools": {"t": {"deny_if": [{"path": "amount", "op": "gt", "value": 1}]}}},
            ("tools", "t", "deny_if", 0, "path"),
            "must be 'tool' or start with 'args.'",
        ),
        (
            {"tools": {"t": {"deny_if": [{"path": "args.a", "op": "gt", "value": "x"}]}}},
            ("tools", "t", "deny_if", 0, "value"),
            "'gt' needs a number",
        ),
        (
            {"tools": {"t": {"deny_if": [{"path": "args.a", "op": "in", "value": 3}]}}},
            ("tools", "t", "deny_if", 0, "value"),
            "'in' needs a list",
        ),
        (
            {"tools": {"t": {"deny_if": [{"path": "args.a", "op": "regex", "value": "(a)\\1"}]}}},
            ("tools", "t", "deny_if", 0, "value"),
            "not valid RE2 syntax",
        ),
        (
            {
                "tools": {
                    "a": {"limits": [{"counter": "c", "window": 1, "max": 1}]},
                    "b": {"limits": [{"counter": "c", "window": 1, "max": 1, "increment_from": "args.n"}]},
                }
            },
            ("tools", "b", "limits", 0, "counter"),
            "limits sharing a counter must count the same thing",
        ),
    ],
)
def test_compile_problems_are_located(doc: dict[str, Any], where: tuple[Any, ...], words: str) -> None:
    problems = compile_problems(Policy.model_validate({"version": "1", **doc}))
    assert any(path == where and words in message for path, message in problems), problems


def test_warnings_for_rules_that_never_fire() -> None:
    policy = Policy.model_validate(
        {
            "version": "1",
            "hide": ["secret"],
            "tools": {"secret": {}, "gone": {"action": "deny", "limits": [{"counter": "c", "window": 1, "max": 1}]}},
        }
    )
    messages = [m for _, m in policy_warnings(policy)]
    assert "never applies: 'secret' is hidden by hide entry 'secret'" in messages
    assert "never fires: the tool's action is 'deny', so every call is refused" in messages


def test_regex_is_linear_time() -> None:
    e = engine(
        {"default": "allow", "tools": {"t": {"deny_if": [{"path": "args.s", "op": "regex", "value": "(a+)+b"}]}}}
    )
    assert isinstance(e.decide("t", {"s": "a" * 100_000 + "c"}), Allow)


FILES = {
    "default": "deny",
    "tools": {
        "read_file": {
            "require": [{"path": "args.path", "op": "within", "value": ["/srv/data", "/srv/shared"]}],
            "deny_if": [{"path": "args.path", "op": "within", "value": "/srv/data/private", "reason": "Private."}],
            "approve_if": [{"path": "args.path", "op": "within", "value": "/srv/shared"}],
        },
        "write_file": {"require": [{"path": "args.path", "op": "within", "value": "/srv/data/out", "not": True}]},
    },
}


@pytest.mark.parametrize(
    ("tool", "path", "expected"),
    [
        ("read_file", "/srv/data/a.txt", ("allow", "tools.read_file")),
        ("read_file", "file:///srv/data/a%20b.txt", ("allow", "tools.read_file")),
        ("read_file", "/srv/shared/x", ("approve", "tools.read_file.approve_if[0]")),
        ("read_file", "/srv/data/private/key", ("deny", "tools.read_file.deny_if[0]")),
        ("read_file", "/srv/data/x/../private/key", ("deny", "tools.read_file.deny_if[0]")),
        ("read_file", "/srv/data/../etc/passwd", ("deny", "tools.read_file.require[0]")),
        ("read_file", "/srv/data2/x", ("deny", "tools.read_file.require[0]")),
        # Outside /srv/data/private either way, so deny_if does not fire; require cannot tell, so refuses.
        ("read_file", "/srv/data/%2e%2e/etc/passwd", ("deny", "tools.read_file.require[0]")),
        ("read_file", "data/x", ("deny", "tools.read_file.deny_if[0]")),
        ("write_file", "/srv/data/in/x", ("allow", "tools.write_file")),
        ("write_file", "/srv/data/out/x", ("deny", "tools.write_file.require[0]")),
        ("write_file", "/srv/data/in/../out/x", ("deny", "tools.write_file.require[0]")),
        ("write_file", "data/out/x", ("deny", "tools.write_file.require[0]")),  # not within, yet refused
        ("write_file", "/srv/data/in/%2e%2e/out", ("deny", "tools.write_file.require[0]")),
    ],
)
def test_within_decisions(tool: str, path: str, expected: tuple[str, str]) -> None:
    decision = engine(FILES).decide(tool, {"path": path})
    kind = {Allow: "allow", Deny: "deny", Approve: "approve"}[type(decision)]
    assert (kind, decision.rule) == expected, decision


def test_within_refusals_say_why() -> None:
    e = engine(FILES)
    assert e.decide("read_file", {"path": "/etc/passwd"}) == Deny(
        "condition", "tools.read_file.require[0]", 'This tool requires args.path within ["/srv/data", "/srv/shared"].'
    )
    assert e.decide("read_file", {"path": "/srv/data/private/k"}) == Deny(
        "condition", "tools.read_file.deny_if[0]", "Private."
    )
    assert e.decide("read_file", {"path": "notes/x"}) == Deny(
        "condition",
        "tools.read_file.deny_if[0]",
        "Cannot check this call against the policy: args.path: 'notes/x' is not an absolute path.",
    )
    assert e.decide("read_file", {"path": 7}) == Deny(
        "condition",
        "tools.read_file.deny_if[0]",
        "Cannot check this call against the policy: args.path: expected a path (or a list of paths) to compare "
        "with 'within', got a number.",
    )
    assert e.decide("read_file", {}) == Deny(
        "condition",
        "tools.read_file.deny_if[0]",
        "Cannot check this call against the policy: args.path is missing; this condition needs it (args.path within "
        '"/srv/data/private").',
    )
    assert e.decide("write_file", {"path": "/srv/data/out/x"}) == Deny(
        "condition", "tools.write_file.require[0]", 'This tool requires not (args.path within "/srv/data/out").'
    )


@pytest.mark.parametrize("field", ["deny_if", "require", "approve_if"])
@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize(
    "path", ["data/x", "/srv/data/\x00/../..", "/srv/data/%2e%2e/x", "file://host/srv/data/x", "~bob/x", ""]
)
def test_within_never_allows_a_path_it_cannot_read(field: str, negate: bool, path: str) -> None:
    # Whichever list the condition is in and whichever way it points, an unreadable path is refused.
    condition = {"path": "args.path", "op": "within", "value": "/srv/data", "not": negate}
    decision = engine({"default": "deny", "tools": {"t": {field: [condition]}}}).decide("t", {"path": path})
    assert isinstance(decision, Deny) and decision.rule == f"tools.t.{field}[0]", decision
    assert decision.reason.startswith("Cannot check this call against the policy: args.path: ")


def test_within_on_a_list_argument() -> None:
    e = engine(
        {
            "default": "deny",
            "tools": {"read_many": {"require": [{"path": "args.paths", "op": "within", "value": "/d"}]}},
        }
    )
    assert isinstance(e.decide("read_many", {"paths": ["/d/a", "/d/b/c"]}), Allow)
    assert e.decide("read_many", {"paths": ["/d/a", "/d/../etc/passwd"]}) == Deny(
        "condition",
        "tools.read_many.require[0]",
        "Cannot check this call against the policy: args.paths: the list holds paths both inside and outside the "
        "directories.",
    )
    assert isinstance(e.decide("read_many", {"paths": ["/e/a"]}), Deny)


def test_within_directory_from_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    e = engine({"default": "deny", "tools": {"t": {"require": [{"path": "args.p", "op": "within", "value": "~/w"}]}}})
    assert isinstance(e.decide("t", {"p": "/home/someone/w/x"}), Allow)
    assert isinstance(e.decide("t", {"p": "~/w/x"}), Allow)
    assert isinstance(e.decide("t", {"p": "~/x"}), Deny)


@pytest.mark.parametrize(
    ("value", "where", "words"),
    [
        ("data", ("value",), "directory 'data' is not an absolute path; write it in full (/srv/data)"),
        (["/srv", "rel/dir"], ("value", 1), "directory 'rel/dir' is not an absolute path"),
        ([], ("value",), "'within' needs at least one directory"),
        (None, ("value",), "'within' needs a directory (an absolute path string) or a list of them"),
        (["/srv", 3], ("value", 1), "'within' needs a directory"),
    ],
)
def test_within_directories_are_checked_at_load(value: Any, where: tuple[Any, ...], words: str) -> None:
    doc = {"tools": {"t": {"require": [{"path": "args.p", "op": "within", "value": value}]}}}
    problems = compile_problems(Policy.model_validate({"version": "1", **doc}))
    assert [(path, message) for path, message in problems if words in message] == [
        (("tools", "t", "require", 0, *where), problems[0][1])
    ], problems
