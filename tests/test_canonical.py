"""One canonical JSON for every digest: sorted keys, compact, UTF-8, and lone surrogates written as
``\\udXXX`` escapes (never an exception), so the audit log, approvals and fingerprints agree."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.approval.flow import StateSigner
from mcp_guard.approval.request import call_fingerprint
from mcp_guard.audit import arguments_sha256, canonical_arguments
from mcp_guard.canonical import canonical_json, compact_json, keyed_digest, sha256_hex
from mcp_guard.integrity.fingerprint import keyed_fingerprint

KEY = b"k" * 32
LONE = {"\ud800key": "value\udfff", "list": ["\udc80", {"nested\ud83d": 1}], "ok": "é"}


def test_lone_surrogates_are_escaped_by_every_canonical_function() -> None:
    expected = b'{"list":["\\udc80",{"nested\\ud83d":1}],"ok":"\xc3\xa9","\\ud800key":"value\\udfff"}'
    assert canonical_json(LONE) == expected
    assert canonical_arguments(LONE) == expected
    assert arguments_sha256(LONE) == hashlib.sha256(expected).hexdigest() == sha256_hex(LONE)
    assert keyed_fingerprint(LONE, KEY) == hmac.new(KEY, expected, hashlib.sha256).hexdigest()
    assert keyed_digest(LONE, KEY) == keyed_fingerprint(LONE, KEY)
    assert json.loads(expected) == LONE  # the escape reads back as the same lone surrogate


def test_valid_text_is_unchanged_utf8_so_existing_digests_stay() -> None:
    assert canonical_json({"b": [1, "é", "😀"], "a": None}) == '{"a":null,"b":[1,"é","😀"]}'.encode()
    assert canonical_json("x") == b'"x"'


def test_an_escape_never_collides_with_the_same_text_written_out() -> None:
    assert canonical_json({"a": "\ud800"}) != canonical_json({"a": "\\ud800"})
    assert canonical_json({"a": "\ud83d\ude00"}) != canonical_json({"a": "\U0001f600"})


def test_compact_json_keeps_key_order_and_is_always_utf8() -> None:
    text = compact_json({"b": "\ud800", "a": 1})
    assert text == '{"b":"\\ud800","a":1}'
    text.encode("utf-8")  # no lone surrogate left to fail on


def test_call_fingerprint_takes_surrogates_anywhere() -> None:
    one = call_fingerprint("srv\ud800", "tool\udc00", LONE)
    assert one != call_fingerprint("srv\\ud800", "tool\udc00", LONE)
    assert one != call_fingerprint("srv\ud800", "tool\\udc00", LONE)


def test_approval_state_tokens_work_with_surrogate_arguments() -> None:
    signer = StateSigner(KEY)
    token = signer.issue("pay", LONE, approved=True)
    body, why = signer.redeem(token, "pay", LONE)
    assert body is not None and why == ""


json_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | json_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(value=json_values)
def test_any_json_value_has_one_canonical_text_that_reads_back(value: Any) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert canonical_arguments(value) == text
    assert keyed_fingerprint(value, KEY) == hmac.new(KEY, text, hashlib.sha256).hexdigest()


def test_arguments_with_a_long_string_get_the_same_keyed_digest_fed_in_slices() -> None:
    import hashlib
    import hmac

    from mcp_guard.canonical import _LONG, KeyedDigest, canonical_json

    key = b"k" * 32
    digest = KeyedDigest(key)
    # Slice edges fall inside escapes, multi-byte characters and next to a lone surrogate.
    long_text = ('a"\\\n' + "é" * 3 + "\ud800" + "x" * 5) * (_LONG // 7)
    for value in (
        {"pad": long_text},
        {"b": 1, "a": long_text, "c": {"z": [long_text[:10], None, 2.5]}},
        {"pad": "€" * (_LONG + 1), "n": -0.0},
        {"z": long_text, "a": "\u2028" * (_LONG + 3), "m": "mcp-guard-"},
    ):
        expected = hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()
        assert digest(value) == expected
