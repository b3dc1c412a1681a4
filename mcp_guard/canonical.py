"""Canonical JSON, and the digests made from it: one text per JSON value, one rule for lone surrogates.

Every digest the guard makes of a JSON value (the audit log's keyed fingerprint of the
arguments, the approval store's call fingerprint, pins of tool definitions, schema caches)
starts from :func:`canonical_json`: keys sorted, no whitespace, non-ASCII text as UTF-8.

JSON lets a string hold an unpaired surrogate (``"\\ud800"``), and Python reads it as one,
but UTF-8 cannot encode it. The rule, here and only here: such a code point is written as its
JSON escape (``\\ud800``, lower-case hex), never raised as an error. The result is valid JSON
that reads back as the same value, and it is unambiguous: a backslash that was in the text is
itself escaped (``\\\\``), so no other value has the same canonical text. Text without lone
surrogates is unchanged, so digests made before this rule stay valid.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

_CANONICAL_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_CANONICAL: Callable[[Any], str] = _CANONICAL_ENCODER.encode
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reusable_encoder() -> Callable[[Any], str] | None:
    """The C encoder behind ``_CANONICAL``, built once (``encode`` builds one per call: 2.5x the cost for
    the small values the audit log fingerprints per call). Without a circular-reference check: values
    read from JSON have no cycles. None where CPython's ``_json`` is not there; then ``encode`` is used."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        iterencode = make(
            None, _CANONICAL_ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, True
        )
    except TypeError:  # another signature than CPython's
        return None

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    probe = {"b": [1, 2.5, None, True, "é\ud800"], "a": {"y": "x", "x": -0.0}}
    return encode if encode(probe) == _CANONICAL(probe) else None


_CANONICAL = _reusable_encoder() or _CANONICAL

# Past this many characters a string argument is digested in slices (see KeyedDigest).
_LONG = 1 << 20


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as ``\\udXXX``: always encodable as UTF-8.

    Inside JSON text this is the JSON escape, so nothing is lost; in plain text (a name to store
    or show) it is only a spelling, and ``"\\ud800"`` written out reads the same.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def utf8(json_text: str) -> bytes:
    """JSON text as UTF-8, its lone surrogates written as ``\\udXXX`` escapes (they can only be inside strings)."""
    # The error handler runs only when there is a surrogate, so the common case costs one encode.
    return json_text.encode("utf-8", "backslashreplace")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, lone surrogates escaped: the one text every digest starts from."""
    return utf8(_CANONICAL(value))


def compact_json(value: Any) -> str:
    """Compact JSON in the value's own key order, with lone surrogates escaped: always encodable as UTF-8."""
    return escape_surrogates(_COMPACT(value))


def sha256_hex(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def keyed_digest(value: Any, key: bytes) -> str:
    """HMAC-SHA-256 (hex) of the canonical JSON of ``value`` under ``key``."""
    return hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()


class KeyedDigest:
    """:func:`keyed_digest` under one key, for many values: HMAC (RFC 2104) with its two padded-key
    hashes computed once, half the cost of ``hmac.new`` per value (the audit log makes one per call)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # SHA-256's block size
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, value: Any) -> str:
        inner = self._inner.copy()
        if not (isinstance(value, dict) and _feed_sliced(inner.update, value)):
            inner.update(canonical_json(value))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _feed_sliced(update: Callable[[bytes], object], arguments: dict[str, Any]) -> bool:
    """Feed the canonical text of ``arguments`` to ``update`` with each string of megabytes among its values
    escaped a slice at a time; False (nothing fed) when it holds none.

    Encoding such arguments whole makes three more copies of the string (escaped, joined, UTF-8): the
    largest part of a judged 20 MB call's peak memory. JSON escapes character by character, so the
    escaped slices are the slices of the escaped string: the bytes fed are the canonical text's exactly.
    Each long string is replaced by a random marker to encode the rest; a marker found other than once
    (never, in practice) falls back to the whole text.
    """
    long_keys = [k for k, v in arguments.items() if type(v) is str and len(v) > _LONG]
    if not long_keys:
        return False
    markers = {k: f"mcp-guard-{secrets.token_hex(16)}-{i}" for i, k in enumerate(long_keys)}
    text = _CANONICAL({k: markers.get(k, v) for k, v in arguments.items()})
    spots = sorted((text.find(f'"{markers[k]}"'), k) for k in long_keys)
    if any(at < 0 or text.count(markers[k]) != 1 for at, k in spots):
        return False
    done = 0
    for at, k in spots:
        update(utf8(text[done:at]))
        long_text: str = arguments[k]
        update(b'"')
        for start in range(0, len(long_text), _LONG):
            update(utf8(json.encoder.encode_basestring(long_text[start : start + _LONG])[1:-1]))
        update(b'"')
        done = at + len(markers[k]) + 2
    update(utf8(text[done:]))
    return True
