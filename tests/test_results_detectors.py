"""The result detectors: every planted fake is found, ordinary tool output gives nothing.

The quality test prints precision and recall per detector (``pytest -s`` shows the table) and
asserts both are 1.0 on the corpus: fakes are generated here with valid formats and checksums
(``results_fakes.py``), ordinary output is generated or read from ``tests/results_corpus/``.
"""

from __future__ import annotations

import json
import random
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from results_fakes import (
    Planted,
    card_number,
    crc32_token,
    iban,
    jwt,
    luhn_complete,
    ordinary_texts,
    pem_block,
    positives,
)

from mcp_guard.inspect import (
    DETECTORS,
    DetectorError,
    Finding,
    RulesError,
    block_result,
    checks,
    combine_rules,
    compile_scanner,
    format_path,
    inspect_result,
    inspect_value,
    judge_result,
    pattern_problem,
    redact,
    scan,
    scanner_for,
    text_slots,
)
from mcp_guard.inspect.scanner import DENSE

ALL = compile_scanner(DETECTORS)
SEEDS = (1, 2, 3)


def kinds(text: str) -> list[tuple[str, str, str]]:
    return [(f.detector, f.kind, text[f.start : f.end]) for f in ALL.scan(text)]


def _covers(found: list[Finding], planted: Planted) -> bool:
    start, end = planted.span
    return any(
        f.detector == planted.detector
        and (not planted.kind or f.kind == planted.kind)
        and f.start <= start
        and end <= f.end
        for f in found
    )


# --- quality: precision and recall per detector ------------------------------------------------


def test_precision_and_recall_per_detector(capsys: pytest.CaptureFixture[str]) -> None:
    tp = dict.fromkeys(DETECTORS, 0)
    fn: dict[str, list[str]] = {d: [] for d in DETECTORS}
    fp: dict[str, list[str]] = {d: [] for d in DETECTORS}
    for seed in SEEDS:
        rng = random.Random(seed)
        by_context: dict[str, list[Planted]] = {}
        for planted in positives(rng):
            by_context.setdefault(planted.context, []).append(planted)
        for context, planted_here in by_context.items():
            found = ALL.scan(context)
            for planted in planted_here:
                if _covers(found, planted):
                    tp[planted.detector] += 1
                else:
                    fn[planted.detector].append(f"{planted.kind}: {context!r} -> {found}")
            for f in found:  # a finding that covers nothing planted is a false positive
                if not any(_covers([f], p) for p in planted_here):
                    fp[f.detector].append(f"{f.kind} {context[f.start : f.end]!r} in {context!r}")
        for name, text in ordinary_texts(rng).items():
            for f in ALL.scan(text):
                fp[f.detector].append(f"{name}: {f.kind} {text[max(0, f.start - 20) : f.end + 20]!r}")
    lines = ["", "detector          found  missed  false+  precision  recall"]
    for d in DETECTORS:
        found, missed, false = tp[d], len(fn[d]), len(fp[d])
        precision = found / (found + false) if found + false else 1.0
        recall = found / (found + missed) if found + missed else 1.0
        lines.append(f"{d:17} {found:6} {missed:7} {false:7} {precision:10.3f} {recall:7.3f}")
    with capsys.disabled():
        print("\n".join(lines))
    assert {d: v for d, v in fn.items() if v} == {}
    assert {d: v for d, v in fp.items() if v} == {}
    assert all(tp[d] > 0 for d in DETECTORS)


def test_planted_values_inside_ordinary_output_are_found_exactly_once() -> None:
    rng = random.Random(7)
    ordinary = ordinary_texts(rng)
    filler = ordinary["app.log"] + "\n" + ordinary["lorem.txt"] + "\n"
    for planted in positives(rng):
        text = filler + planted.context + "\n" + ordinary["lockfile_and_tools.txt"]
        found = ALL.scan(text)
        shifted = Planted(planted.detector, planted.kind, text, planted.value)
        assert _covers(found, shifted), planted
        assert len([f for f in found if f.detector == planted.detector]) >= 1


# --- checks --------------------------------------------------------------------------------------


def test_crc32_tokens() -> None:
    rng = random.Random(0)
    token = crc32_token(rng, "ghp_")
    assert checks.crc32_token_ok(token.encode())
    broken = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not checks.crc32_token_ok(broken.encode())
    assert kinds(f"x {token} y") == [("secrets", "github_token", token)]
    assert kinds(f"x {broken} y") == []
    assert kinds("ghp_" + "a" * 36) == []


def test_base62_matches_the_published_alphabet() -> None:
    assert checks.base62(0, 6) == b"000000"
    assert checks.base62(61, 1) == b"z"
    assert checks.base62(62, 2) == b"10"
    assert checks.base62(zlib.crc32(b""), 6) == b"000000"


def test_luhn_and_brands() -> None:
    assert checks.luhn_ok(b"4111111111111111")
    assert not checks.luhn_ok(b"4111111111111112")
    assert checks.card_brand(b"4111111111111111") == "visa"
    assert checks.card_brand(b"378282246310005") == "amex"
    assert checks.card_brand(b"2223003122003222") == "mastercard"
    assert checks.card_brand(b"6011111111111117") == "discover"
    assert checks.card_brand(b"3530111333300000") == "jcb"
    assert checks.card_brand(b"30569309025904") == "diners"
    assert checks.card_brand(b"1234567890123452") is None  # no issuer starts with 1
    assert checks.card_brand(b"41111111111111111") is None  # visa has no 17-digit numbers


def test_iban_checks() -> None:
    assert checks.iban_ok(b"DE89370400440532013000")
    assert checks.iban_ok(b"GB82WEST12345698765432")
    assert not checks.iban_ok(b"DE89370400440532013001")  # checksum
    assert not checks.iban_ok(b"DE8937040044053201300")  # length
    assert not checks.iban_ok(b"US89370400440532013000")  # no IBANs in the US
    rng = random.Random(3)
    for country in checks.IBAN_LENGTHS:
        assert checks.iban_ok(iban(rng, country).encode()), country


def test_jwt_needs_a_json_header_with_alg() -> None:
    rng = random.Random(4)
    token = jwt(rng)
    assert kinds(token) == [("secrets", "jwt", token)]
    no_alg = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"  # {"typ":"JWT"}
    assert kinds(no_alg) == []
    not_json = "eyJub3QganNvbg.eyJzdWIiOiIxIn0.c2ln"
    assert kinds(not_json) == []


# --- boundaries and look-alikes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "+49 4111111111111",  # phone number that passes Luhn
        "0.4111111111111111",
        "4111111111111111.25",
        "ORD-4111111111111111",
        "ref_4111111111111111",
        "4111111111111112",  # Luhn fails
        "1234 4111 1111 1111 1111",  # one window of a longer grouped run
        "4111 1111 1111 1111 2222",
        "1733212345678901",
        "DE89370400440532013001",
        "DE89 3704 0044 0532 0130 01",
        "XDE89370400440532013000",
        "git@github.com:acme/api.git",
        "icon@2x.png",
        "x@self.weight",
        "nginx@sha256:a484819eb60211f5299034ac80f6a681b06f89e65866ce91f356ed7c72af059c",
        "ssh://git@example.com/repo.git",
        "postgres://user:password@localhost/db",
        "postgres://user:${DB_PASSWORD}@localhost/db",
        "https://user:****@example.com/",
        "-----BEGIN RSA PRIVATE KEY-----",
        "AKIAAAAAAAAAAAAAAAAA",
        "xoxb-not-a-real-token-this-will-not-work",
        "sk-your-key-here",
        "password=hunter2 in a sentence without a connection string",
        "\ufeffstarts with a byte order mark",
        "first file\n\ufeffsecond file, read after it",
        "👨\u200d👩\u200d👧",
        "می\u200cخواهم",
        "葛\U000e0100城",
        "❤\ufe0f",
    ],
)
def test_look_alikes_give_nothing(text: str) -> None:
    assert kinds(text) == []


def test_grouped_and_known_numbers() -> None:
    assert kinds("Card: 4111 1111 1111 1111.") == [("payment_cards", "visa", "4111 1111 1111 1111")]
    assert kinds("amex 3782-822463-10005 ok") == [("payment_cards", "amex", "3782-822463-10005")]
    assert kinds("Visa 4111 1111 1111 1111 12/25 123") == [("payment_cards", "visa", "4111 1111 1111 1111")]
    assert kinds("3782 8224 6310 005 ok") == [("payment_cards", "amex", "3782 8224 6310 005")]
    assert kinds("IBAN DE89 3704 0044 0532 0130 00 TODAY") == [("ibans", "iban", "DE89 3704 0044 0532 0130 00")]
    assert kinds("BE68 5390 0754 7034 CODE") == [("ibans", "iban", "BE68 5390 0754 7034")]


def test_url_password_redacts_only_the_password() -> None:
    text = "DATABASE_URL=postgres://app:Xq7pLm2vR9@db.internal:5432/app"
    found = ALL.scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [("url_password", "Xq7pLm2vR9")]
    assert redact(text, found) == "DATABASE_URL=postgres://app:[redacted: secrets/url_password]@db.internal:5432/app"


def test_private_key_block_is_covered_to_its_end_line() -> None:
    rng = random.Random(5)
    block = pem_block(rng, "RSA PRIVATE KEY")
    text = f"before\n{block}\nafter"
    assert kinds(text) == [("secrets", "private_key", block)]
    as_json = json.dumps({"private_key": block})  # \n escaped: what a file read of a JSON key returns
    found = kinds(as_json)
    assert [k for _, k, _ in found] == ["private_key"]
    assert found[0][2].endswith("-----END RSA PRIVATE KEY-----")


def test_truncated_private_key_is_still_found() -> None:
    rng = random.Random(6)
    block = pem_block(rng).split("-----END")[0]
    assert [k for _, k, _ in kinds(block + "\n")] == ["private_key"]


def test_invisible_runs_and_offsets_in_non_ascii_text() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "run rm -rf")
    text = f"Grüße 👋 {hidden} Ende"
    found = ALL.scan(text)
    assert [(f.detector, f.kind, text[f.start : f.end]) for f in found] == [
        ("invisible_text", "tag_characters", hidden)
    ]
    assert redact(text, found) == "Grüße 👋 [redacted: invisible_text/tag_characters] Ende"


def test_terminal_escape_kinds() -> None:
    text = "\x1b[1;31mred\x1b[0m \x1b]8;;http://x/\x07link\x1b]8;;\x07 \x9b2J \x1b7"
    assert [k for _, k, _ in kinds(text)] == ["sgr", "sgr", "osc", "osc", "csi", "esc"]


def test_redact_replaces_each_finding_and_merges_overlaps() -> None:
    text = "a SECRET b CARD c"
    findings = [Finding("secrets", "x", 2, 8), Finding("payment_cards", "visa", 11, 15)]
    assert redact(text, findings) == "a [redacted: secrets/x] b [redacted: payment_cards/visa] c"
    overlapping = [Finding("secrets", "x", 2, 8), Finding("emails", "email", 4, 10)]
    assert redact(text, overlapping) == "a [redacted: secrets/x] CARD c"
    assert redact(text, []) == text


# --- user patterns --------------------------------------------------------------------------------


def test_user_patterns_are_re2() -> None:
    scanner = compile_scanner(["employee_id", "secrets"], [("employee_id", "EMP-[0-9]{6}")])
    found = scanner.scan("badge EMP-123456 and EMP-12 and EMP-654321")
    assert [(f.detector, f.kind, f.start, f.end) for f in found] == [
        ("employee_id", "pattern", 6, 16),
        ("employee_id", "pattern", 32, 42),
    ]
    assert pattern_problem("(a+)+$") is None  # fine in RE2: no backtracking
    assert pattern_problem(r"(\w)\1") is not None  # backreference
    assert pattern_problem("(?=x)") is not None  # lookahead
    assert pattern_problem("a*") == "matches the empty string"
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        compile_scanner(["nope"])
    with pytest.raises(DetectorError, match="pattern 'bad'"):
        compile_scanner(["bad"], [("bad", "(")])


def test_overlapping_user_patterns_first_listed_wins_per_span() -> None:
    scanner = compile_scanner(["a_id", "b_id"], [("a_id", "ID-[0-9]+"), ("b_id", "ID-[0-9]{3}")])
    found = scanner.scan("ID-123")
    assert [(f.detector, f.end) for f in found] == [("a_id", 6)]


def test_scan_accepts_names_or_a_scanner() -> None:
    assert scan("mail bob@example.com", ["emails"]) == [Finding("emails", "email", 5, 20)]
    assert scan("mail bob@example.com", ["secrets"]) == []
    assert scan("mail bob@example.com", compile_scanner(["emails"])) == [Finding("emails", "email", 5, 20)]


def test_compile_is_cached() -> None:
    assert compile_scanner(["emails", "secrets"]) is compile_scanner(("secrets", "emails"))


# --- linear time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    [
        "@a.",  # e-mail trigger at every third byte
        "eyJaaaaaaaaa.",
        "sk-" + "a" * 20,
        "4111111111111111 ",
        "\x1b[",
        "\u200b",
        ":a@",
        "AKIAAAAAAAAAAAAAAAAA ",
        "DE89 3704 ",
    ],
)
def test_hostile_inputs_stay_linear(unit: str) -> None:
    def cost(n: int) -> float:
        text = unit * (n // len(unit))
        best = float("inf")  # CPU time of this thread: a loaded machine does not inflate it
        for _ in range(5):
            t = time.thread_time()
            ALL.scan(text)
            best = min(best, time.thread_time() - t)
        return best

    small, large = cost(250_000), cost(1_000_000)
    assert large < 5.0
    # 4x the input: linear work takes ~4x (10000 findings cap the dense cases sooner; page faults
    # on multi-megabyte buffers add some), quadratic work 16x. The margin is for a shared machine.
    assert large < max(small, 0.005) * 10


def test_dense_family_switches_to_one_pass() -> None:
    emails = " ".join(f"user{i}@example.com" for i in range(DENSE * 10))
    found = ALL.scan(emails)
    assert len(found) == DENSE * 10
    assert all(f.kind == "email" for f in found)


# --- the walker, rules and verdicts ------------------------------------------------------------


def test_text_slots_cover_every_shape() -> None:
    result = {
        "content": [
            {"type": "text", "text": "t0"},
            {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "t2"}},
            {"type": "resource_link", "uri": "file:///b", "name": "b", "description": "d3"},
        ],
        "structuredContent": {"rows": [{"e-mail": "s0", "n": 1}], "note": "s1"},
        "contents": [{"uri": "file:///c", "text": "c0"}, {"uri": "file:///d", "blob": "AAAA"}],
        "description": "p",
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "m0"}},
            {"role": "assistant", "content": [{"type": "text", "text": "m1"}]},
        ],
    }
    assert [(format_path(p), t) for p, t in text_slots(result)] == [
        ("content[0].text", "t0"),
        ("content[2].resource.text", "t2"),
        ("content[3].uri", "file:///b"),
        ("content[3].name", "b"),
        ("content[3].description", "d3"),
        ("structuredContent.rows{key}", "rows"),  # keys are text too
        ('structuredContent.rows[0]["e-mail"]{key}', "e-mail"),
        ('structuredContent.rows[0]["e-mail"]', "s0"),
        ("structuredContent.rows[0].n{key}", "n"),
        ("structuredContent.note{key}", "note"),
        ("structuredContent.note", "s1"),
        ("contents[0].text", "c0"),
        ("description", "p"),
        ("messages[0].content.text", "m0"),
        ("messages[1].content[0].text", "m1"),
    ]


def test_inspect_and_redact_a_result_without_touching_it() -> None:
    rng = random.Random(9)
    card = card_number(rng, "4", 16)
    result = {
        "content": [{"type": "text", "text": f"card {card}"}, {"type": "text", "text": "nothing here"}],
        "structuredContent": {"customer": {"email": "ann@example.com", "card": card}, "ok": True},
        "isError": False,
    }
    before = json.dumps(result)
    inspection = inspect_result(result, ALL)
    assert [(f.path, f.detector) for f in inspection.findings] == [
        ("content[0].text", "payment_cards"),
        ("structuredContent.customer.email", "emails"),
        ("structuredContent.customer.card", "payment_cards"),
    ]
    redacted = inspection.redacted(result)
    assert json.dumps(result) == before
    assert isinstance(redacted, dict)
    assert redacted["content"][0]["text"] == "card [redacted: payment_cards/visa]"
    assert redacted["content"][1] is result["content"][1]  # unchanged parts are shared
    assert redacted["structuredContent"]["customer"] == {
        "email": "[redacted: emails/email]",
        "card": "[redacted: payment_cards/visa]",
    }
    assert card not in json.dumps(redacted)


def test_combine_rules_strictest_wins() -> None:
    rules = combine_rules(
        {"redact": ["secrets", "payment_cards"], "block": ["invisible_text"], "warn": ["emails"]},
        {"block": ["secrets"], "warn": ["payment_cards", "employee_id"], "patterns": {"employee_id": "EMP-[0-9]{6}"}},
    )
    assert dict(rules.actions) == {
        "secrets": "block",
        "payment_cards": "redact",
        "invisible_text": "block",
        "emails": "warn",
        "employee_id": "warn",
    }
    assert rules.patterns == (("employee_id", "EMP-[0-9]{6}"),)
    assert not combine_rules(None, {})
    with pytest.raises(RulesError, match="unknown detector 'nope'"):
        combine_rules({"warn": ["nope"]})
    with pytest.raises(RulesError, match="built-in"):
        combine_rules({"patterns": {"secrets": "x"}})


def test_judge_result_outcomes() -> None:
    rng = random.Random(10)
    token = crc32_token(rng, "ghp_")
    result = {"content": [{"type": "text", "text": f"token {token} from ann@example.com"}]}

    warn = judge_result(result, combine_rules({"warn": ["secrets", "emails"]}))
    assert (warn.outcome, warn.result, sorted(warn.labels)) == ("warn", None, ["emails", "secrets"])

    red = judge_result(result, combine_rules({"redact": ["secrets"], "warn": ["emails"]}))
    assert red.outcome == "redact"
    assert red.result == {
        "content": [{"type": "text", "text": "token [redacted: secrets/github_token] from ann@example.com"}]
    }

    blocked = judge_result(result, combine_rules({"block": ["secrets"], "redact": ["emails"]}), complete=True)
    assert blocked.outcome == "block"
    assert isinstance(blocked.result, dict)
    assert blocked.result["isError"] is True
    assert blocked.result["resultType"] == "complete"
    text = blocked.result["content"][0]["text"]
    assert "server did run it" in text
    assert "1 secret (github_token) and 1 email address (email)" in text
    assert token not in json.dumps(blocked.result)
    assert "ann@example.com" not in json.dumps(blocked.result)
    assert blocked.audit() == [
        {"detector": "secrets", "kind": "github_token", "count": 1, "paths": ["content[0].text"], "action": "block"},
        {"detector": "emails", "kind": "email", "count": 1, "paths": ["content[0].text"], "action": "redact"},
    ]

    nothing = judge_result({"content": [{"type": "text", "text": "fine"}]}, combine_rules({"block": ["secrets"]}))
    assert (nothing.outcome, nothing.result) == ("forward", None)

    resource = judge_result(
        {"contents": [{"uri": "x", "text": token}]}, combine_rules({"block": ["secrets"]}), method="resources/read"
    )
    assert (resource.outcome, resource.result) == ("block", None)


def test_block_result_never_names_values() -> None:
    result = block_result([Finding("payment_cards", "visa", 0, 16, "content[0].text")] * 2)
    assert result["content"] == [
        {
            "type": "text",
            "text": "mcp-guard withheld the result of this call: the server did run it, but the result contained "
            "2 payment card numbers (visa), which the policy does not let through. The values are not shown.",
        }
    ]
    assert "resultType" not in result


# --- the raw-frame prefilter ---------------------------------------------------------------------


def _encodings(result: dict[str, object]) -> list[bytes]:
    plain = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}, ensure_ascii=False)
    ascii_only = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result})
    go_style = ascii_only.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    php_style = ascii_only.replace("/", "\\/")
    return [s.encode() for s in (plain, ascii_only, go_style, php_style)]


def test_frame_prefilter_never_misses_a_planted_value() -> None:
    rng = random.Random(11)
    for planted in positives(rng):
        result = {"content": [{"type": "text", "text": planted.context}]}
        assert inspect_result(result, ALL), planted
        for frame in _encodings(result):
            assert ALL.frame_may_match(frame), (planted, frame[:200])


def test_frame_prefilter_passes_ordinary_output() -> None:
    rng = random.Random(12)
    passed = 0
    texts = ordinary_texts(rng)
    for text in texts.values():
        frame = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}})
        passed += not ALL.frame_may_match(frame.encode("utf-8"))
    assert passed >= len(texts) // 2  # most ordinary output is forwarded without being parsed


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), st.integers(0, 10_000))
def test_frame_prefilter_is_sound(noise: str, seed: int) -> None:
    rng = random.Random(seed)
    planted = rng.choice(positives(rng))
    text = noise + " " + planted.context + " " + noise
    result = {"content": [{"type": "text", "text": text}], "structuredContent": {"v": noise}}
    if inspect_result(result, ALL):
        for frame in _encodings(result):
            assert ALL.frame_may_match(frame)


def test_frame_prefilter_with_user_patterns() -> None:
    scanner = compile_scanner(["employee_id"], [("employee_id", "EMP-[0-9]{6}")])
    assert scanner.frame_may_match(b'{"result":{"content":[{"type":"text","text":"EMP-123456"}]}}')
    assert not scanner.frame_may_match(b'{"result":{"content":[{"type":"text","text":"nothing"}]}}')
    assert scanner.frame_may_match(b'{"result":{"content":[{"type":"text","text":"EMP-\\u0031"}]}}')
    anchored = compile_scanner(["start"], [("start", "^EMP")])
    assert anchored.frame_may_match(b'{"text":"x"}')  # context-dependent: always parse


def test_luhn_generator_is_valid() -> None:
    rng = random.Random(13)
    for _ in range(50):
        assert checks.luhn_ok(luhn_complete(rng, "4", 16).encode())


def test_scanner_for_rules_uses_the_cache() -> None:
    rules = combine_rules({"redact": ["secrets"]})
    assert scanner_for(rules) is compile_scanner(["secrets"])


def test_a_megabyte_of_ordinary_output_scans_in_one_fast_pass() -> None:
    # Guards the trigger design: one alternation of long counted repetitions (say a JWT trigger
    # up to 1000 characters) overflows RE2's DFA cache and made this take over a second.
    rng = random.Random(14)
    pieces = list(ordinary_texts(rng).values())
    text = "\n".join(pieces).replace("\ufeff", "")
    text = (text * (1_000_000 // len(text) + 1))[:1_000_000]
    quiet = "\n".join(ordinary_texts(rng)[name] for name in ("random_hex", "uuids", "git_log", "lorem.txt"))
    quiet = (quiet * (1_000_000 // len(quiet) + 1))[:1_000_000]
    frame = json.dumps({"result": {"content": [{"type": "text", "text": quiet}]}}).encode()
    best_scan = best_frame = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        found = ALL.scan(text)
        best_scan = min(best_scan, time.perf_counter() - t)
        t = time.perf_counter()
        may = ALL.frame_may_match(frame)  # no trigger anywhere: one whole pass
        best_frame = min(best_frame, time.perf_counter() - t)
    assert found == []
    assert may is False
    assert best_scan < 0.25  # ~10 ms on an idle 2-vCPU machine
    assert best_frame < 0.1  # ~2 ms


def test_inspect_value_walks_a_tool_definition() -> None:
    tool = {
        "name": "fetch",
        "description": "Fetches a URL.\U000e0049\U000e0067\U000e006e",
        "inputSchema": {"type": "object", "properties": {"url": {"type": "string", "description": "\x1b[8mhidden"}}},
    }
    scanner = compile_scanner(["invisible_text", "terminal_escapes"])
    found = inspect_value(tool, scanner, ("tools", 2)).findings
    assert [(f.path, f.detector, f.kind) for f in found] == [
        ("tools[2].description", "invisible_text", "tag_characters"),
        ("tools[2].inputSchema.properties.url.description", "terminal_escapes", "sgr"),
    ]
    assert not inspect_value({"name": "plain", "description": "Adds two numbers."}, scanner)


def test_a_card_at_the_very_start_of_a_text() -> None:
    assert kinds("4111111111111111") == [("payment_cards", "visa", "4111111111111111")]
    assert kinds("4111 1111 1111 1111 is on file") == [("payment_cards", "visa", "4111 1111 1111 1111")]
    found = ALL.scan_many(["4111111111111111", "x", "5555555555554444 y"])
    assert [[(f.kind, f.start, f.end) for f in items] for items in found] == [
        [("visa", 0, 16)],
        [],
        [("mastercard", 0, 16)],
    ]
