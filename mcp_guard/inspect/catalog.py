"""The built-in detectors, as data: families of RE2 patterns, each behind one short trigger.

How a family works (see :mod:`mcp_guard.inspect.scanner`): all enabled families' triggers are
joined into one RE2 alternation and the text is searched once (one DFA pass). Every finding of a
family contains a match of its trigger, so where no trigger matches nothing is reported and
nothing more runs. Where one does, the family's full patterns run only there:

* an *anchored* family's findings start where its trigger matches, so its patterns are tried
  anchored at that position (ending within ``ahead`` bytes);
* a *windowed* family's findings may start up to ``back`` bytes before the trigger (the local part
  of an e-mail address before its ``@``), so its patterns search the window around it.

Then each candidate goes through its check: boundaries, checksums, placeholders. The checks are
where precision comes from; they run only on candidates.

Patterns run on UTF-8 bytes. Each family also has a form of its trigger for raw JSON text
(``raw_trigger``, or the trigger itself when that already fits: no ``/``, ``"`` or ``\\``, and
what may stand before it written out with the JSON escapes that can take its place), which lets
:meth:`Scanner.frame_may_match` rule a whole frame out without parsing it.

Triggers are short on purpose. Choice of engine: RE2 (``google-re2``) for everything, built-ins
and user patterns alike, so every step is linear in the input. Measured on 1 MB of ordinary tool
output (2 vCPUs, shared): one pass of the combined trigger ≈ 2 ms; stdlib ``re`` over the same
triggers is far slower (see ``benchmarks/results_scan.py``). One alternation of the *full*
patterns, an ``re2.Set`` of them, or triggers with long counted repetitions (``{8,1000}``,
``{1,128}`` over broad classes) overflow RE2's DFA cache and fall back to its NFA: 0.5-3 s per
MB. Hence: short triggers in one DFA pass, full patterns and checks only where they hit.

Library evaluated: ``detect-secrets`` 1.5 (Yelp), run through its normal file scan (default
plugins and filters) on this package's test corpus. Not used, for all three reasons asked about:
speed (about 12 s per MB of ordinary output, and superlinear on long lines: one 20 KB base64
line takes 4 s, a 270 KB one did not finish in 13 minutes; this scanner takes milliseconds per
MB), precision (303 false positives: every ``sha512-`` lockfile integrity string as a "Base64 High
Entropy String", a ``ghp_xxxx`` placeholder, a bare PEM header, a URL template) and recall (46 of
61 planted secrets: no Google API key, Azure SAS or service-bus keys, DigitalOcean, Docker Hub,
Square, Braintree, Discord webhook, Groq, xAI, Replicate, Perplexity, nor passwords in URLs or
connection strings), and weight (it brings ``requests`` and ``pyyaml`` and ~0.2 s of imports).
It also has no card, IBAN, hidden-text or terminal-escape detectors and no CRC32 token checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp_guard.inspect import checks
from mcp_guard.inspect.engine import compile_regex

# A check gets the scanned UTF-8 bytes, the candidate's span and the pattern's kind; it returns
# the finding's span and kind (possibly narrowed or widened) or None to drop the candidate.
Hit = tuple[int, int, str]
Check = Callable[[bytes, int, int, str], "Hit | None"]

DETECTORS = ("secrets", "payment_cards", "ibans", "emails", "invisible_text", "terminal_escapes")


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    regex: str
    group: int = 0  # the group that is the finding (0: the whole match)
    check: Check | None = None


@dataclass(frozen=True, slots=True)
class Family:
    detector: str
    name: str
    trigger: str
    patterns: tuple[Pattern, ...]
    anchored: bool = True
    back: int = 0
    ahead: int = 256
    raw_trigger: str | None = None  # the trigger's form in raw JSON text, when it differs
    exclusive: bool = False  # at most one pattern can match at a position: stop at the first that does
    # The trigger at the very start of the text, for a trigger that begins by consuming the
    # character before the finding (there is none at the start; "^" would cost a backward scan).
    at_start: str | None = None


# --- character classes for boundary checks -------------------------------------------------------


def _bytes_of(spec: str) -> frozenset[int]:
    out: set[int] = set()
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.update(range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.add(ord(spec[i]))
            i += 1
    return frozenset(out)


WORD = _bytes_of("A-Za-z0-9_")
ALNUM = _bytes_of("A-Za-z0-9")
TOKEN = _bytes_of("A-Za-z0-9_-")
B64 = _bytes_of("A-Za-z0-9+/")
B64URL = _bytes_of("A-Za-z0-9_-")
DIGITS = _bytes_of("0-9")
SPACE = frozenset(b" \t\r\n\f\v\x00")

# In raw JSON, what can stand before a character that follows a non-word character in the
# decoded string: a literal non-word character, a short escape or a \uXXXX escape. (A string's
# content never starts a frame, so no "^": an RE2 search for "^" scans back to where it started.)
RAW_LEFT = r'(?:[^0-9A-Za-z_\\]|\\[bfnrt"/\\]|\\u[0-9a-fA-F]{4})'


def _before(data: bytes, pos: int) -> int:
    return data[pos - 1] if pos > 0 else 0


def _after(data: bytes, pos: int) -> int:
    return data[pos] if pos < len(data) else 0


def _bounded(data: bytes, start: int, end: int, cls: frozenset[int]) -> bool:
    return _before(data, start) not in cls and _after(data, end) not in cls


def _token_check(cls: frozenset[int], body_from: int = 0, *, random: bool = True, digit: bool = True) -> Check:
    """A prefixed token: not glued to more token characters, and (``random``) a generated body."""

    def check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
        if not _bounded(data, start, end, cls):
            return None
        body = data[start + body_from : end]
        if random and not (checks.looks_random(body, need_digit=digit) and checks.distinct_ok(body)):
            return None
        return start, end, kind

    return check


def _crc32_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _bounded(data, start, end, WORD) and checks.crc32_token_ok(data[start:end]):
        return start, end, kind
    return None


def _prefixed(detector: str, kind: str, regex: str, prefix_len: int, **check_args: bool) -> Family:
    """A token that starts with a fixed prefix: its own trigger, tried anchored."""
    return Family(detector, kind, regex, (Pattern(kind, regex, check=_token_check(TOKEN, prefix_len, **check_args)),))


# --- secrets: clouds ---------------------------------------------------------------------------

_AWS_ID = r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"


def _aws_id_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _bounded(data, start, end, ALNUM) and checks.distinct_ok(data[start + 4 : end], 6):
        return start, end, kind
    return None


def _aws_secret_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    value = data[start:end]
    if (
        checks.looks_random(value, need_digit=False)
        and checks.distinct_ok(value, 16)
        and _AWS_ID_RE.search(value) is None
    ):
        return start, end, kind
    return None


_AWS_ID_RE = compile_regex(_AWS_ID)

_AWS_PAIR = Family(
    "secrets",
    "aws_access_key",
    _AWS_ID,
    (
        Pattern("aws_access_key_id", r"\b" + _AWS_ID + r"\b", check=_aws_id_check),
        # A 40-character secret near an access key id is its secret access key.
        Pattern(
            "aws_secret_access_key",
            r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
            group=1,
            check=_aws_secret_check,
        ),
    ),
    anchored=False,
    back=330,
    ahead=360,
)

_AWS_KEYWORD = Family(
    "secrets",
    "aws_secret_keyword",
    r"(?i:secret_?access_?key|aws_?secret_?key)",
    (
        Pattern(
            "aws_secret_access_key",
            r"(?i:secret_?access_?key|aws_?secret_?key)[\"']?[ \t]*(?:=>|[:=])[ \t]*[\"']?"
            r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
            group=1,
            check=_aws_secret_check,
        ),
    ),
    ahead=128,
)

_AWS_SESSION = Family(
    "secrets",
    "aws_session_token",
    r"FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj",
    (
        Pattern(
            "aws_session_token",
            r"(?:FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{80,}",
            check=_token_check(B64, random=False),
        ),
    ),
    ahead=8192,
)

_GCP = (
    _prefixed("secrets", "gcp_api_key", r"AIza[0-9A-Za-z_-]{35}", 4, digit=False),
    _prefixed("secrets", "gcp_oauth_client_secret", r"GOCSPX-[A-Za-z0-9_-]{28}", 7, digit=False),
)


def _b64_value_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _after(data, end) in B64 or not checks.looks_random(data[start:end], need_digit=False):
        return None
    return start, end, kind


def _sas_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    # A SAS signature only counts inside a URL or connection string that also has its version.
    lo = start
    floor = max(0, start - 2048)
    while lo > floor and data[lo - 1] not in SPACE and data[lo - 1] not in (0x22, 0x27):
        lo -= 1
    context = data[lo:start]
    if b"sv=" not in context and b"sv%3D" not in context:
        return None
    return start, end, kind


_AZURE = (
    Family(
        "secrets",
        "azure_account_key",
        r"(?:Account|SharedAccess)Key=",
        (
            Pattern("azure_storage_account_key", r"AccountKey=([A-Za-z0-9+/]{86}==)", 1, _b64_value_check),
            Pattern("azure_shared_access_key", r"SharedAccessKey=([A-Za-z0-9+/]{42,43}=)", 1, _b64_value_check),
        ),
        ahead=128,
    ),
    Family(
        "secrets",
        "azure_sas_token",
        r"[?&]sig=",
        (
            Pattern(
                "azure_sas_token",
                r"[?&]sig=((?:[A-Za-z0-9+/]|%2[BbFf]){30,}(?:=|%3[Dd]){0,2})",
                1,
                _sas_check,
            ),
        ),
        ahead=260,
        raw_trigger=r"sig=",
    ),
    Family(
        "secrets",
        "azure_ad_client_secret",
        r"[0-9]Q~",
        (
            Pattern(
                "azure_ad_client_secret",
                r"[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}",
                check=_token_check(_bytes_of("A-Za-z0-9_~.-"), digit=False),
            ),
        ),
        anchored=False,
        back=4,
        ahead=44,
    ),
)

# --- secrets: code hosts and registries ------------------------------------------------------------

_CODE_HOSTS = (
    Family(
        "secrets",
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{36}",
        (Pattern("github_token", r"gh[pousr]_[A-Za-z0-9]{36}", check=_crc32_check),),
        ahead=48,
    ),
    _prefixed("secrets", "github_fine_grained_token", r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}", 11),
    Family(
        "secrets",
        "gitlab_token",
        r"gl(?:pat|dt|rt|ptt|cbt|imt|oas|soat|ffct|ft|agent)-[A-Za-z0-9_-]{20}",
        (
            Pattern(
                "gitlab_token",
                r"gl(?:pat|dt|rt|ptt|cbt|imt|oas|soat|ffct|ft|agent)-[A-Za-z0-9_-]{20,64}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?",
                check=_token_check(TOKEN, 4, digit=False),
            ),
        ),
        ahead=96,
    ),
    Family(
        "secrets",
        "npm_token",
        r"npm_[A-Za-z0-9]{36}",
        (Pattern("npm_token", r"npm_[A-Za-z0-9]{36}", check=_crc32_check),),
        ahead=48,
    ),
    Family(
        "secrets",
        "pypi_token",
        r"pypi-AgE",
        (
            Pattern(
                "pypi_token",
                r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}",
                check=_token_check(TOKEN, random=False),
            ),
        ),
        ahead=1100,
    ),
    _prefixed("secrets", "docker_hub_token", r"dckr_pat_[A-Za-z0-9_-]{27}", 9, digit=False),
    _prefixed("secrets", "digitalocean_token", r"do[opr]_v1_[a-f0-9]{64}", 7, random=False),
)

# --- secrets: payment providers -------------------------------------------------------------------

_STRIPE_KINDS = {b"s": "stripe_secret_key", b"r": "stripe_restricted_key", b"p": "stripe_publishable_key"}
_stripe_token = _token_check(TOKEN, 8)


def _stripe_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    hit = _stripe_token(data, start, end, kind)
    return None if hit is None else (start, end, _STRIPE_KINDS[data[start : start + 1]])


_PAYMENT_PROVIDERS = (
    Family(
        "secrets",
        "stripe",
        r"[spr]k_live_[A-Za-z0-9]{20}|whsec_[A-Za-z0-9+/=]{24}",
        (
            Pattern("stripe_secret_key", r"[spr]k_live_[A-Za-z0-9]{24,}", check=_stripe_check),
            Pattern(
                "stripe_webhook_secret", r"whsec_[A-Za-z0-9+/=]{32,}", check=_token_check(_bytes_of("A-Za-z0-9+/=_"), 6)
            ),
        ),
    ),
    _prefixed("secrets", "square_access_token", r"sq0atp-[0-9A-Za-z_-]{22}", 7, digit=False),
    _prefixed("secrets", "square_oauth_secret", r"sq0csp-[0-9A-Za-z_-]{43}", 7, digit=False),
    Family(
        "secrets",
        "braintree_access_token",
        r"access_token\$production\$",
        (
            Pattern(
                "braintree_access_token",
                r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}",
                check=_token_check(WORD, random=False),
            ),
        ),
        ahead=80,
    ),
)

# --- secrets: chat and AI providers ----------------------------------------------------------------


def _slack_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    # Real tokens carry numeric team/user ids; the docs' "xoxb-not-a-real-token" does not.
    if not _bounded(data, start, end, TOKEN) or checks.distinct_ok(data[start:end], 10) is False:
        return None
    return (start, end, kind) if _DIGIT_RUN.search(data[start:end]) else None


_DIGIT_RUN = compile_regex(r"[0-9]{4}")


def _discord_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _bounded(data, start, end, _bytes_of("A-Za-z0-9_.-")) and checks.discord_token_ok(data[start:end]):
        return start, end, kind
    return None


# Base64 of three ASCII digits: a Discord bot token starts with its user id (a snowflake) so encoded.
_DISCORD_ID_B64 = "[MNO][DTjz][AEIMQUYcgk][w-z0-5]"

_CHAT = (
    Family(
        "secrets",
        "slack_token",
        r"xox[abposre]-[0-9A-Za-z]|xapp-[0-9]-",
        (
            Pattern("slack_token", r"xox[abposre]-[0-9A-Za-z][0-9A-Za-z-]{9,}", check=_slack_check),
            Pattern("slack_app_token", r"xapp-[0-9]-[A-Z0-9]{6,}-[0-9]{6,}-[a-z0-9]{32,}", check=_slack_check),
        ),
        ahead=260,
    ),
    Family(
        "secrets",
        "slack_webhook_url",
        r"https?://hooks\.slack\.com/",
        (
            Pattern(
                "slack_webhook_url",
                r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_-]{6,}/[A-Za-z0-9_/-]{12,}",
                check=_token_check(TOKEN, random=False),
            ),
        ),
        raw_trigger=r"hooks\.slack\.com",
        ahead=260,
    ),
    Family(
        "secrets",
        "discord_webhook_url",
        r"https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/",
        (
            Pattern(
                "discord_webhook_url",
                r"https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v[0-9]{1,2})?/webhooks/[0-9]{17,20}/[A-Za-z0-9_-]{60,70}",
                check=_token_check(TOKEN, random=False),
            ),
        ),
        raw_trigger=r"discord(?:app)?\.com",
        ahead=200,
    ),
    Family(
        "secrets",
        "discord_bot_token",
        _DISCORD_ID_B64 * 2,
        (
            Pattern(
                "discord_bot_token",
                r"[MNO][A-Za-z0-9_-]{22,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}",
                check=_discord_check,
            ),
        ),
        ahead=80,
    ),
    Family(
        "secrets",
        "telegram_bot_token",
        r"[0-9]:AA[A-Za-z0-9_-]{4}",
        (
            Pattern(
                "telegram_bot_token",
                r"[0-9]{8,10}:AA[A-Za-z0-9_-]{33}",
                check=_token_check(_bytes_of("A-Za-z0-9_:-"), random=False),
            ),
        ),
        anchored=False,
        back=11,
        ahead=40,
    ),
)

_AI = (
    Family(
        "secrets",
        "sk_keys",
        r"sk-[A-Za-z0-9_-]{20}",
        (
            Pattern(
                "anthropic_api_key",
                r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_-]{20,}",
                check=_token_check(TOKEN, 14, digit=False),
            ),
            Pattern(
                "openai_api_key",
                r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}",
                check=_token_check(TOKEN, 8, digit=False),
            ),
            Pattern("openai_api_key", r"sk-[A-Za-z0-9]{48}", check=_token_check(TOKEN, 3)),
        ),
        ahead=320,
    ),
    _prefixed("secrets", "huggingface_token", r"hf_[A-Za-z0-9]{30,40}", 3, digit=False),
    _prefixed("secrets", "groq_api_key", r"gsk_[A-Za-z0-9]{52}", 4),
    _prefixed("secrets", "xai_api_key", r"xai-[A-Za-z0-9]{80}", 4),
    _prefixed("secrets", "replicate_api_token", r"r8_[A-Za-z0-9]{37}", 3),
    _prefixed("secrets", "perplexity_api_key", r"pplx-[A-Za-z0-9]{48}", 5),
    Family(
        "secrets",
        "sendgrid_api_key",
        r"SG\.[A-Za-z0-9_-]{22}\.",
        (
            Pattern(
                "sendgrid_api_key",
                r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
                check=_token_check(_bytes_of("A-Za-z0-9_.-"), 3, digit=False),
            ),
        ),
        ahead=80,
    ),
)

# --- secrets: key blocks, JWTs, passwords in URLs and connection strings ----------------------------

_PEM_END = compile_regex(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = compile_regex(r"(?:[A-Za-z0-9+/=\s]|\\[nr])+")
_NOT_B64 = bytes(b for b in range(256) if b not in B64 and b != 0x3D)
_PEM_MAX = 65536


def _pem_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    # The header alone (in code, docs) is not a key: a finding needs the base64 body, and
    # covers the block to its END line (or, cut off, to the end of the body).
    limit = min(len(data), end + _PEM_MAX)
    nul = data.find(b"\x00", end, limit)
    if nul >= 0:
        limit = nul
    closing = _PEM_END.search(data, end, limit)
    if closing is not None:
        body_end, block_end = closing.start(), closing.end()
    else:
        body = _PEM_BODY.match(data, end, limit)
        if body is None:
            return None
        body_end = block_end = body.end()
        while block_end > end and data[block_end - 1] in SPACE:
            block_end -= 1
    if len(data[end:body_end].translate(None, _NOT_B64)) < 64:
        return None
    return start, block_end, kind


def _jwt_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _before(data, start) in _bytes_of("A-Za-z0-9_.-") or _after(data, end) in _bytes_of("A-Za-z0-9_=-"):
        return None
    return (start, end, kind) if checks.jwt_header_ok(data[start:end]) else None


_PLACEHOLDERS = frozenset(
    b"password passwd pass pwd secret changeme changeit redacted mypassword yourpassword your_password "
    b"my_password db_password".split()
)


def _placeholder(value: bytes) -> bool:
    """A value that stands for a password rather than being one (docs, templates, masked output)."""
    lowered = value.lower().strip()
    if lowered in _PLACEHOLDERS or not lowered:
        return True
    if lowered[:1] in (b"$", b"{", b"<", b"%", b"[", b"(") or b"redacted" in lowered:
        return True
    return len(set(lowered)) == 1 or set(lowered) <= set(b"*x.\xe2\x80\xa2")


def _url_password_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    return None if _placeholder(data[start:end]) else (start, end, kind)


_CONN_KEYS = compile_regex(
    r"(?i)(?:^|[;\s\"'])(?:server|data source|host|hostname|address|addr|network address|user id|uid|"
    r"username|user|database|initial catalog|dsn|driver|provider|port)[ \t]*="
)


def _conn_password_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    value_end = end
    while value_end > start and data[value_end - 1] in SPACE:
        value_end -= 1
    if value_end == start or _placeholder(data[start:value_end]):
        return None
    # Only inside a connection string: key=value pairs separated by ';' on the same line,
    # one of them naming the server, the user or the database.
    floor = max(0, start - 512)
    line_start = max(data.rfind(b"\n", floor, start), data.rfind(b"\x00", floor, start)) + 1
    line_start = max(line_start, floor)
    nl = data.find(b"\n", end, end + 512)
    line_end = nl if nl >= 0 else min(len(data), end + 512)
    line = data[line_start:line_end]
    if b";" not in line or _CONN_KEYS.search(line) is None:
        return None
    return start, value_end, kind


def _password_key_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _before(data, _key_start(data, start)) in WORD:
        return None
    return _conn_password_check(data, start, end, kind)


def _key_start(data: bytes, value_start: int) -> int:
    # Walk back over "=", blanks and the key word to where the key begins.
    i = value_start
    while i > 0 and data[i - 1] in b" \t=":
        i -= 1
    while i > 0 and data[i - 1] in ALNUM:
        i -= 1
    return i


_SECRETS_STRUCTURAL = (
    Family(
        "secrets",
        "private_key",
        r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY",
        (Pattern("private_key", r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----", check=_pem_check),),
        ahead=80,
    ),
    Family(
        "secrets",
        "jwt",
        r"eyJ[A-Za-z0-9_-]{8}",
        (
            Pattern(
                "jwt",
                r"eyJ[A-Za-z0-9_-]{8,}={0,2}\.[A-Za-z0-9_-]{2,}={0,2}\.[A-Za-z0-9_-]*",
                check=_jwt_check,
            ),
        ),
        ahead=17100,
        raw_trigger=r"eyJ[A-Za-z0-9_-]{8,}={0,2}\.",
    ),
    Family(
        "secrets",
        "url_password",
        r"[^\s/?#\"'<>\x00]@[^\s/?#\"'<>\x00@]",
        (
            # scheme://user:password@host — the finding is the password, so the URL stays readable.
            Pattern(
                "url_password",
                r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s/?#@:\"'<>\x00]*:([^\s/?#\"'<>\x00]+)@[^\s/?#@\"'<>\x00]+",
                group=1,
                check=_url_password_check,
            ),
        ),
        anchored=False,
        back=560,
        ahead=300,
        raw_trigger=r":[^\s/?#\"'<>\x00]*@",
    ),
    Family(
        "secrets",
        "query_password",
        r"[?&](?i:passw(?:or)?d|pwd|pass)=",
        (
            Pattern(
                "url_password",
                r"[?&](?i:passw(?:or)?d|pwd|pass)=([^&#\s\"'<>\x00]+)",
                group=1,
                check=_url_password_check,
            ),
        ),
        raw_trigger=r"(?i:passw(?:or)?d|pwd|pass)=",
        ahead=280,
    ),
    Family(
        "secrets",
        "connection_string_password",
        r"(?i:password|pwd)[ \t]*=",
        (
            Pattern(
                "connection_string_password",
                r"(?i:password|pwd)[ \t]*=[ \t]*([^;\"'\r\n\x00]+)",
                group=1,
                check=_password_key_check,
            ),
        ),
        raw_trigger=r"(?i:password|pwd)(?:[ \t]|\\t)*=",
        ahead=280,
    ),
)

# --- payment cards -------------------------------------------------------------------------------

_NOT_DIGIT = bytes(b for b in range(256) if b not in DIGITS)
# The first 13 digits of a card, contiguous or grouped 4-4-4 or 4-6-4. Not after a letter, digit,
# "_", ".", "+" or "-": the fraction of a float, an id suffix, a phone number.
_CARD_START = r"[2-68][0-9]{3}(?:[0-9]{9}|[ -][0-9]{4}[ -][0-9]{4}|[ -][0-9]{6}[ -][0-9]{4})"


def _is_group(chunk: bytes) -> bool:
    """Four letters or digits, at least one a digit: a group of a grouped number or an IBAN."""
    return len(chunk) == 4 and chunk.isalnum() and any(48 <= b <= 57 for b in chunk)


def _full_group_after(data: bytes, i: int) -> bool:
    """A group at ``i``: the card-like digits continue a longer grouped run (more digits, an IBAN)
    rather than ending before an expiry date like "12/25" or a word."""
    return _is_group(data[i : i + 4]) and _after(data, i + 4) not in ALNUM


def _full_group_before(data: bytes, i: int) -> bool:
    """A group ending before byte ``i`` ("1234 4111 ...", "CH41 5554 ..."; not "Visa 4111 ...")."""
    return i >= 4 and _is_group(data[i - 4 : i]) and _before(data, i - 4) not in ALNUM


def _card_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    before = _before(data, start)
    if before in WORD or before in b".+-":  # 0.4111..., +49 ..., ORD-4111...
        return None
    stops = [end]
    sep = 0
    if not data[start:end].isdigit():
        sep = data[start + 4]
        if before == sep and _full_group_before(data, start - 1):
            return None  # one group of a longer run of grouped digits
        last = data.rfind(bytes([sep]), start, end)
        if end - last - 1 < 4:
            stops.append(last)  # "4111 1111 1111 1111 12/25": the "12" may be the expiry, not digits 17-18
    for stop in stops:
        after = _after(data, stop)
        if after in WORD or (after in b".,-" and _after(data, stop + 1) in DIGITS):  # 4111....5
            continue
        if sep and after == sep and _full_group_after(data, stop + 1):
            continue
        digits = data[start:stop].translate(None, _NOT_DIGIT)
        brand = checks.card_brand(digits)
        if brand is not None and checks.luhn_ok(digits):
            return start, stop, brand
    return None


_CARDS = Family(
    "payment_cards",
    "payment_card",
    r"[^0-9A-Za-z_.+-]" + _CARD_START,
    (
        Pattern(
            "card",
            r"\b(?:[2-68][0-9]{12,18}"
            r"|[2-68][0-9]{3}(?: [0-9]{4}){2,3}(?: [0-9]{1,3})?"
            r"|[2-68][0-9]{3}(?:-[0-9]{4}){2,3}(?:-[0-9]{1,3})?"
            r"|3[0-9]{3} [0-9]{6} [0-9]{4,5}"
            r"|3[0-9]{3}-[0-9]{6}-[0-9]{4,5})\b",
            check=_card_check,
        ),
    ),
    ahead=32,
    anchored=False,
    back=1,
    raw_trigger=r'(?:[^0-9A-Za-z_\\.+-]|\\[bfnrt"/\\]|\\u[0-9a-fA-F]{4})' + _CARD_START,
    at_start=_CARD_START,
)

# --- IBANs --------------------------------------------------------------------------------------


_IBAN_COUNTRY = "(?:" + "|".join(sorted(checks.IBAN_LENGTHS)) + ")"


def _iban_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    if _before(data, start) in WORD:
        return None
    length = checks.IBAN_LENGTHS.get(data[start : start + 2].decode("latin-1"))
    if length is None:
        return None
    # Take exactly the country's length; a grouped IBAN may be followed by a word the regex took.
    count = 0
    stop = start
    while stop < end and count < length:
        if data[stop] != 0x20:
            count += 1
        stop += 1
    if count != length or _after(data, stop) in ALNUM:
        return None
    compact = data[start:stop].replace(b" ", b"")
    if len(compact[4:].translate(None, _NOT_DIGIT)) < 8 or not checks.iban_ok(compact):
        return None
    return start, stop, kind


_IBANS = Family(
    "ibans",
    "iban",
    r"\b" + _IBAN_COUNTRY + r"[0-9]{2} ?[A-Z0-9]{4}",
    (
        Pattern(
            "iban",
            r"\b[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b",
            check=_iban_check,
        ),
    ),
    ahead=48,
    raw_trigger=RAW_LEFT + _IBAN_COUNTRY + r"[0-9]{2} ?[A-Z0-9]{4}",
)

# --- e-mail addresses ---------------------------------------------------------------------------

_LOCAL = _bytes_of("A-Za-z0-9._%+-")


def _email_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    at = data.index(b"@", start, end)
    local = data[start:at]
    if _before(data, start) in _LOCAL or local[:1] == b"." or local[-1:] == b"." or b".." in local:
        return None
    tld = data[data.rindex(b".", at, end) + 1 : end].lower()
    if tld not in checks.TLDS:
        return None
    after = _after(data, end)
    if after == 0x3A and end + 1 < len(data) and data[end + 1] not in SPACE and data[end + 1] not in DIGITS:
        return None  # git@github.com:owner/repo.git — an ssh remote, not an address
    # user@host inside scheme://user@host or scheme://user:pass@host is part of a URL.
    i = start
    floor = max(0, start - 300)
    while i > floor and data[i - 1] not in SPACE and data[i - 1] not in b"\"'<>(),;":
        i -= 1
    if b"://" in data[i:start]:
        return None
    return start, end, kind


_EMAILS = Family(
    "emails",
    "email",
    r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+\.[A-Za-z]{2}",
    (
        Pattern(
            "email",
            r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b",
            check=_email_check,
        ),
    ),
    anchored=False,
    back=66,
    ahead=300,
)

# --- hidden text --------------------------------------------------------------------------------

_TAGS = r"\x{E0000}-\x{E007F}"
_BIDI = r"\x{202A}-\x{202E}\x{2066}-\x{2069}"
_ZERO_WIDTH = r"\x{200B}-\x{200D}\x{2060}-\x{2064}\x{FEFF}\x{180E}"
_VS = r"\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}"


def _char_before(data: bytes, pos: int) -> int:
    """The code point that ends at byte ``pos`` (0 at the start)."""
    i = pos - 1
    while i > 0 and 0x80 <= data[i] < 0xC0:
        i -= 1
    return ord(data[i:pos].decode("utf-8", "replace")) if i >= 0 and pos > 0 else 0


def _char_after(data: bytes, pos: int) -> int:
    """The code point that starts at byte ``pos`` (0 at the end)."""
    if pos >= len(data):
        return 0
    j = pos + 1
    while j < len(data) and 0x80 <= data[j] < 0xC0:
        j += 1
    return ord(data[pos:j].decode("utf-8", "replace"))


def _emoji(cp: int) -> bool:
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2300 <= cp <= 0x23FF
        or 0x2B00 <= cp <= 0x2BFF
        or cp in (0xFE0F, 0x20E3, 0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D)
    )


def _joining_script(cp: int) -> bool:
    # Scripts where ZWJ/ZWNJ shape letters (Arabic, Syriac, N'Ko, Indic, Sinhala, Myanmar, Khmer,
    # Mongolian, presentation forms) and scripts written without spaces that use ZWSP to break lines.
    return (
        0x0600 <= cp <= 0x08FF
        or 0x0900 <= cp <= 0x0DFF
        or 0x0E00 <= cp <= 0x0EFF
        or 0x1000 <= cp <= 0x109F
        or 0x1780 <= cp <= 0x18AF
        or 0x3040 <= cp <= 0x30FF
        or 0x3400 <= cp <= 0x9FFF
        or 0xA8E0 <= cp <= 0xA8FF
        or 0xFB50 <= cp <= 0xFDFF
        or 0xFE70 <= cp <= 0xFEFC
    )


def _cjk(cp: int) -> bool:
    return 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3FFFF


def _zero_width_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    run = data[start:end].decode("utf-8") if end - start <= 4 else ""  # only a lone character may be benign
    if len(run) == 1:
        cp = ord(run)
        before, after = _char_before(data, start), _char_after(data, end)
        if cp == 0xFEFF and (start == 0 or data[start - 1] in b"\n\r\x00"):
            return None  # a byte order mark at the start of a text or line (files read one after another)
        if cp == 0x200D and _emoji(before) and _emoji(after):
            return None  # an emoji ZWJ sequence (family, profession, flag emoji)
        if cp in (0x200B, 0x200C, 0x200D) and (_joining_script(before) or _joining_script(after)):
            return None  # shaping or line breaking in a script that needs it
    return start, end, kind


def _tag_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    # The only legitimate use of tag characters: subdivision flags, U+1F3F4 + lowercase tags + CANCEL TAG.
    run = data[start:end].decode("utf-8") if end - start <= 32 else ""
    if (
        _char_before(data, start) == 0x1F3F4
        and 2 <= len(run) <= 8
        and run[-1] == "\U000e007f"
        and all(0xE0061 <= ord(c) <= 0xE007A or 0xE0030 <= ord(c) <= 0xE0039 for c in run[:-1])
    ):
        return None
    return start, end, kind


def _vs_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    run = data[start:end].decode("utf-8") if end - start <= 4 else ""
    if len(run) == 1 and (ord(run) < 0xE0100 or _cjk(_char_before(data, start))):
        return None  # one selector after its base character: emoji presentation, CJK variants
    return start, end, kind


_INVISIBLE = Family(
    "invisible_text",
    "invisible",
    f"[{_TAGS}{_BIDI}{_ZERO_WIDTH}\\x{{E0100}}-\\x{{E01EF}}]|[\\x{{FE00}}-\\x{{FE0F}}]{{2}}",
    (
        Pattern("tag_characters", f"[{_TAGS}]+", check=_tag_check),
        Pattern("bidi_control", f"[{_BIDI}]+"),
        Pattern("zero_width", f"[{_ZERO_WIDTH}]+", check=_zero_width_check),
        Pattern("variation_selectors", f"[{_VS}]+", check=_vs_check),
    ),
    ahead=1 << 20,
    exclusive=True,
    raw_trigger=(
        f"[{_TAGS}{_BIDI}{_ZERO_WIDTH}\\x{{E0100}}-\\x{{E01EF}}]|[\\x{{FE00}}-\\x{{FE0F}}]{{2}}"
        r"|\\u(?:200[b-dB-D]|206[0-4]|202[a-eA-E]|206[6-9]|[fF][eE][fF][fF]|180[eE]|[dD][bB]40|[fF][eE]0[0-9a-fA-F])"
    ),
)

# --- terminal escapes ---------------------------------------------------------------------------


def _terminal_check(data: bytes, start: int, end: int, kind: str) -> Hit | None:
    head = data[start : start + 2]
    if head[:1] == b"\x1b":
        second = head[1:2]
        if second == b"[":
            kind = "sgr" if data[end - 1 : end] == b"m" else "csi"
        elif second == b"]":
            kind = "osc"
        elif second in (b"P", b"X", b"^", b"_"):
            kind = "dcs"
        else:
            kind = "esc"
    else:
        c1 = data[start + 1] if len(head) == 2 else 0
        kind = {0x9B: "csi", 0x9D: "osc", 0x90: "dcs", 0x98: "dcs", 0x9E: "dcs", 0x9F: "dcs"}.get(c1, "c1_control")
        if kind == "csi" and data[end - 1 : end] == b"m":
            kind = "sgr"
    return start, end, kind


_C1 = r"\x{80}-\x{9F}"
_TERMINAL = Family(
    "terminal_escapes",
    "terminal",
    f"\\x1b|[{_C1}]",
    (
        Pattern(
            "escape",
            # CSI, OSC (to BEL or ST), DCS/SOS/PM/APC strings, other ESC sequences, a lone ESC,
            # then C1 controls: their 8-bit CSI/OSC/DCS forms first.
            r"(?:\x1b\[|\x{9B})[0-?]{0,64}[ -/]{0,8}[@-~]?"
            r"|(?:\x1b\]|\x{9D})[^\x07\x1b\x{9C}\n]*(?:\x07|\x1b\\|\x{9C})?"
            r"|(?:\x1b[PX^_]|[\x{90}\x{98}\x{9E}\x{9F}])[^\x1b\x{9C}]*(?:\x1b\\|\x{9C})?"
            r"|\x1b[ -/]{0,8}[0-~]?"
            f"|[{_C1}]",
            check=_terminal_check,
        ),
    ),
    ahead=4200,
    raw_trigger=f"\\x1b|[{_C1}]" + r"|\\u001[bB]|\\u00[89][0-9a-fA-F]",
)

# --- the catalog --------------------------------------------------------------------------------

FAMILIES: tuple[Family, ...] = (
    _AWS_PAIR,
    _AWS_KEYWORD,
    _AWS_SESSION,
    *_GCP,
    *_AZURE,
    *_CODE_HOSTS,
    *_PAYMENT_PROVIDERS,
    *_CHAT,
    *_AI,
    *_SECRETS_STRUCTURAL,
    _CARDS,
    _IBANS,
    _EMAILS,
    _INVISIBLE,
    _TERMINAL,
)

# Which detector wins where two overlap in one place (a token inside an address, say).
PRIORITY = {name: rank for rank, name in enumerate(DETECTORS)}


def families_for(detectors: frozenset[str]) -> tuple[Family, ...]:
    return tuple(f for f in FAMILIES if f.detector in detectors)
