"""Loading policies: PolicyLayer documents accepted as-is, every mistake located and explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_guard.policy.load import PolicyError, load_policy
from mcp_guard.policy.model import window_seconds

SEED = {
    "version": "1",
    "default": "deny",
    "tools": {
        "track_behavior_event": {
            "limits": [{"counter": "track_behavior_event_rate", "window": "minute", "max": 30, "scope": "grant"}]
        }
    },
}


def write(tmp_path: Path, text: str, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


def test_seed_policy_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, json.dumps(SEED)))
    assert policy.default == "deny"
    limit = policy.tools["track_behavior_event"].limits[0]
    assert (limit.counter, limit.window, limit.max, limit.scope) == ("track_behavior_event_rate", "minute", 30, "grant")


def test_policylayer_shapes_load(tmp_path: Path) -> None:
    doc = {
        "version": "1",
        "default": "allow",
        "hide": ["delete_account", "*"],
        "all_tools": {"limits": [{"counter": "all", "window": "hour", "max": 100, "scope": "grant"}]},
        "tools": {"create_charge": {}, "refund": {"action": "deny", "reason": "refunds go through support"}},
    }
    policy = load_policy(write(tmp_path, json.dumps(doc)))
    assert policy.hide == ["delete_account", "*"]
    assert policy.tools["refund"].action == "deny"
    assert policy.all_tools.limits[0].window == "hour"


def test_unknown_field_is_located_and_suggested(tmp_path: Path) -> None:
    text = '{\n  "version": "1",\n  "tools": {\n    "x": {"limts": []}\n  }\n}\n'
    message = errors_of(write(tmp_path, text))
    assert f"{tmp_path / 'policy.json'}:4:11: tools.x.limts: unknown field 'limts'; did you mean 'limits'?" in message


def test_unknown_top_level_field(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, '{"version": "1", "defualt": "deny"}'))
    assert ":1:18: defualt: unknown field 'defualt'; did you mean 'default'?" in message


def test_bad_window_names_field_and_expectation(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SEED))
    doc["tools"]["track_behavior_event"]["limits"][0]["window"] = "minnute"
    text = json.dumps(doc, indent=2)
    message = errors_of(write(tmp_path, text))
    line = next(i + 1 for i, ln in enumerate(text.splitlines()) if '"window"' in ln)
    assert f"policy.json:{line}:" in message
    assert "tools.track_behavior_event.limits[0].window" in message
    assert "'minnute'" in message and "'90s'" in message


def test_wrong_version_and_default(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, '{"version": "2", "default": "maybe"}'))
    assert "version: expected one of '1'; got '2'" in message
    assert "default: expected one of 'allow' or 'deny'; got 'maybe'" in message


def test_missing_version(tmp_path: Path) -> None:
    assert "required field 'version' is missing" in errors_of(write(tmp_path, "{}"))


def test_negative_max_and_bad_scope(tmp_path: Path) -> None:
    doc = {"version": "1", "tools": {"t": {"limits": [{"counter": "c", "window": 5, "max": -1, "scope": "team"}]}}}
    message = errors_of(write(tmp_path, json.dumps(doc)))
    assert "tools.t.limits[0].max: Input should be greater than 0; got -1" in message
    assert "tools.t.limits[0].scope:" in message and "'team'" in message


def test_invalid_json_is_located(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, '{\n  "version": "1",\n}\n'))
    assert "policy.json:3:1: expected a key in double quotes (is there a trailing comma?)" in message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    message = errors_of(write(tmp_path, '{"version": "1", "default": "deny", "default": "allow"}'))
    assert ":1:37: duplicate key 'default'" in message


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in errors_of(tmp_path / "nope.json")


def test_yaml_policy(tmp_path: Path) -> None:
    text = "version: '1'\ndefault: deny\ntools:\n  track:\n    limits:\n      - {counter: c, window: 90s, max: 3}\n"
    policy = load_policy(write(tmp_path, text, "policy.yaml"))
    assert policy.tools["track"].limits[0].window == "90s"


def test_yaml_error_is_located(tmp_path: Path) -> None:
    text = "version: '1'\ntools:\n  track:\n    limitz: []\n"
    message = errors_of(write(tmp_path, text, "policy.yml"))
    assert "policy.yml:4:5: tools.track.limitz: unknown field 'limitz'; did you mean 'limits'?" in message


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        ("second", 1),
        ("minute", 60),
        ("hour", 3600),
        ("day", 86400),
        (90, 90),
        (0.5, 0.5),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("250ms", 0.25),
    ],
)
def test_window_forms(spec: str | float, seconds: float) -> None:
    assert window_seconds(spec) == seconds


@pytest.mark.parametrize("spec", ["0s", 0, -5, "5 weeks", "m", True])
def test_bad_windows(spec: str | float) -> None:
    with pytest.raises(ValueError):
        window_seconds(spec)


# --- --policy-sha256: the bytes checked are the bytes loaded ---------------------------------------

CHECKED = json.dumps({"version": "1", "default": "deny"}).encode()
SWAPPED_IN = json.dumps({"version": "1", "default": "allow"}).encode()


def swapped_after_first_read(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[bytes]:
    """Replace ``path`` with another policy right after its first read; the reads, in order."""
    original = Path.read_bytes
    reads: list[bytes] = []

    def read_bytes(self: Path) -> bytes:
        data = original(self)
        if self == path:
            reads.append(data)
            if len(reads) == 1:
                path.write_bytes(SWAPPED_IN)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return reads


def test_the_hash_is_checked_on_the_bytes_that_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from mcp_guard.policy.load import PolicyHashMismatch

    path = tmp_path / "policy.json"
    path.write_bytes(CHECKED)
    digest = hashlib.sha256(CHECKED).hexdigest()
    reads = swapped_after_first_read(monkeypatch, path)
    assert load_policy(path, expected_sha256=digest.upper()).default == "deny"
    assert len(reads) == 1
    with pytest.raises(PolicyHashMismatch) as info:
        load_policy(path, expected_sha256=digest)  # now the swapped-in file
    assert f"has SHA-256 {hashlib.sha256(SWAPPED_IN).hexdigest()}, not the {digest}" in str(info.value)
    assert isinstance(info.value, PolicyError)


def test_reload_loads_the_bytes_it_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from mcp_guard.reload import reload_once

    path = tmp_path / "policy.json"
    path.write_bytes(CHECKED)
    reads = swapped_after_first_read(monkeypatch, path)
    applied: list[object] = []
    said: list[str] = []

    def apply(*version: object) -> bool:
        applied.append(version[0])
        return False  # keep the policy in force untouched: only what was loaded matters here

    reload_once(path, object(), said.append, hashlib.sha256(CHECKED).hexdigest(), apply)  # type: ignore[arg-type]
    assert [getattr(policy, "default", None) for policy in applied] == ["deny"], said
    assert len(reads) == 1


def test_start_loads_the_bytes_it_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import sys

    from mcp_guard import cli

    path = tmp_path / "policy.json"
    path.write_bytes(CHECKED)
    reads = swapped_after_first_read(monkeypatch, path)
    started: list[object] = []

    def limiter(state: object, policy: object, server: object) -> tuple[None, str]:
        started.append(policy)
        return None, ""  # stop before the server starts

    monkeypatch.setattr(cli, "_limiter", limiter)
    digest = hashlib.sha256(CHECKED).hexdigest()
    assert cli.run(["--policy", str(path), "--policy-sha256", digest, "--no-audit", "--", sys.executable]) == 2
    assert [getattr(policy, "default", None) for policy in started] == ["deny"]
    assert len(reads) == 1


# --- YAML and number pitfalls (issue 18, trap 10) ---------------------------------------------------------


def test_a_tab_in_yaml_says_to_use_spaces(tmp_path: Path) -> None:
    text = "version: '1'\ndefault: deny\ntools:\n\ttrack: {}\n"
    message = errors_of(write(tmp_path, text, "policy.yaml"))
    assert message.startswith(f"{tmp_path / 'policy.yaml'}:4:1: not valid YAML: a tab character; YAML indents with")
    assert "spaces only: replace the tab at line 4 with spaces" in message


def test_unquoted_yaml_version_1_is_accepted(tmp_path: Path) -> None:
    text = "version: 1\ndefault: allow\n"
    policy = load_policy(write(tmp_path, text, "policy.yaml"))
    assert policy.version == "1"
    assert load_policy(write(tmp_path, '{"version": 1}')).version == "1"


@pytest.mark.parametrize("version", ["2", 2, 1.5, True])
def test_other_versions_are_still_refused(tmp_path: Path, version: object) -> None:
    message = errors_of(write(tmp_path, json.dumps({"version": version})))
    assert f"version: expected one of '1'; got {version!r}" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max", "3", "max: Input should be a valid number; got '3'"),
        (
            "max",
            3.5,
            "max: a count limit admits whole calls: expected a whole number (only a spend cap with "
            "increment_from may be fractional); got 3.5",
        ),
        ("max", True, "max: Input should be a valid number; got True"),
        ("refund_on_error", "yes", "refund_on_error: Input should be a valid boolean; got 'yes'"),
        ("refund_on_error", 1, "refund_on_error: Input should be a valid boolean; got 1"),
    ],
)
def test_numbers_and_booleans_are_not_coerced(tmp_path: Path, field: str, value: object, expected: str) -> None:
    limit: dict[str, object] = {"counter": "c", "window": "minute", "max": 3, field: value}
    doc = {"version": "1", "tools": {"t": {"limits": [limit]}}}
    message = errors_of(write(tmp_path, json.dumps(doc)))
    assert f"tools.t.limits[0].{expected}" in message


def test_a_spend_cap_may_be_fractional(tmp_path: Path) -> None:
    limit = {"counter": "spent", "window": "1h", "max": 99.5, "increment_from": "args.amount"}
    policy = load_policy(write(tmp_path, json.dumps({"version": "1", "tools": {"pay": {"limits": [limit]}}})))
    assert policy.tools["pay"].limits[0].max == 99.5
    whole = {"counter": "c", "window": "minute", "max": 30.0}
    assert load_policy(write(tmp_path, json.dumps({"version": "1", "all_tools": {"limits": [whole]}}))).all_tools


def test_errors_are_sorted_by_line(tmp_path: Path) -> None:
    # The model checks 'mode' before 'default' and 'tools' last; the report follows the file.
    text = (
        '{\n  "version": "1",\n  "tools": {"t": {"limits": [{"counter": "c", "window": "minute", "max": "3"}]}},\n'
        '  "default": "maybe",\n  "mode": "loud"\n}\n'
    )
    lines = errors_of(write(tmp_path, text)).splitlines()
    assert [line.split(":")[1] for line in lines] == ["3", "4", "5"], lines


def test_relative_within_directory_is_located(tmp_path: Path) -> None:
    text = (
        '{\n  "version": "1",\n  "tools": {\n    "read_file": {"require": [\n'
        '      {"path": "args.path", "op": "within",\n       "value": ["/srv/data", "notes"]}\n    ]}\n  }\n}\n'
    )
    message = errors_of(write(tmp_path, text))
    assert message == (
        f"{tmp_path / 'policy.json'}:6:31: tools.read_file.require[0].value[1]: directory 'notes' is not an "
        "absolute path; write it in full (/srv/data) or from the home directory (~/data)"
    )
