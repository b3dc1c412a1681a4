"""The pipeline leaves out stages that cannot act under a snapshot, and never one that can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_guard.integrity.guard import IntegritySettings, ToolIntegrity
from mcp_guard.integrity.protect import ProtectedPaths
from mcp_guard.judge import Judge
from mcp_guard.limits import MemoryLimiter
from mcp_guard.pipeline import CallIn, Pipeline, Refuse, Relay, Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.model import Policy


def engine(policy: dict[str, Any]) -> Engine:
    return Engine(Policy.model_validate({"version": "1", **policy}))


def call(name: str, arguments: dict[str, Any] | None = None) -> CallIn:
    params = {"name": name, "arguments": arguments or {}}
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    return CallIn(1, name, arguments or {}, params, message, modern=False)


def walked(pipeline: Pipeline, snap: Snapshot) -> list[str]:
    return [name for _, name, _ in pipeline._walk(snap)]


def test_an_allow_all_policy_walks_only_the_stages_that_can_act() -> None:
    plain = engine({"default": "allow"})
    pipeline = Pipeline(Judge(plain, MemoryLimiter()))
    assert walked(pipeline, Snapshot(plain)) == ["rounds", "rule"]


def test_each_feature_puts_its_stage_back(tmp_path: Path) -> None:
    hiding = engine({"default": "allow", "hide": ["secret_*"]})
    pipeline = Pipeline(Judge(hiding, MemoryLimiter()))
    assert walked(pipeline, Snapshot(hiding)) == ["rounds", "hidden", "rule"]
    # In monitor mode the rule stage reports hidden tools itself.
    assert walked(pipeline, Snapshot(hiding, force_monitor=True)) == ["rounds", "rule"]
    protected = ToolIntegrity(IntegritySettings(protected=ProtectedPaths([tmp_path / "policy.json"], tmp_path)), print)
    assert walked(pipeline, Snapshot(hiding, protected)) == ["rounds", "hidden", "own files", "rule"]
    validating = ToolIntegrity(IntegritySettings(validate_all=True), print)
    assert walked(pipeline, Snapshot(hiding, validating)) == ["rounds", "hidden", "schema", "rule"]


def test_a_new_snapshot_is_walked_anew_every_time_it_changes() -> None:
    plain, hiding = engine({"default": "allow"}), engine({"default": "allow", "hide": ["echo"]})
    pipeline = Pipeline(Judge(plain, MemoryLimiter()))
    before, after = Snapshot(plain), Snapshot(hiding)
    assert isinstance(pipeline.judge_call(call("echo"), before), Relay)
    refused = pipeline.judge_call(call("echo"), after)
    assert isinstance(refused, Refuse) and refused.deny.kind == "hidden"
    assert isinstance(pipeline.judge_call(call("echo"), before), Relay)
    # Two snapshots equal in every field are still two versions: each is walked as itself.
    again = Snapshot(hiding)
    refused = pipeline.judge_call(call("echo"), again)
    assert isinstance(refused, Refuse) and refused.deny.kind == "hidden"


def test_own_files_still_refuses_when_nothing_else_is_checked(tmp_path: Path) -> None:
    plain = engine({"default": "allow"})
    policy = tmp_path / "policy.json"
    protected = ToolIntegrity(IntegritySettings(protected=ProtectedPaths([policy], tmp_path)), print)
    verdict = Pipeline(Judge(plain, MemoryLimiter())).judge_call(
        call("read_file", {"path": str(policy)}), Snapshot(plain, protected)
    )
    assert isinstance(verdict, Refuse) and verdict.deny.rule == "protect_own_files"


def test_a_snapshot_the_table_cannot_read_walks_every_stage() -> None:
    plain = engine({"default": "allow"})
    pipeline = Pipeline(Judge(plain, MemoryLimiter()))

    class Broken:
        @property
        def settings(self) -> object:
            raise RuntimeError("no settings")

    snap = Snapshot(plain, Broken())  # type: ignore[arg-type]
    assert walked(pipeline, snap) == [
        "rounds",
        "hidden",
        "descriptions",
        "own files",
        "pins",
        "schema",
        "rule",
        "flows",
    ]
    # Each stage then fails on its own, refusing the one call, never ending the session.
    verdict = pipeline.judge_call(call("echo"), snap)
    assert isinstance(verdict, Refuse) and "own files" in verdict.deny.reason
