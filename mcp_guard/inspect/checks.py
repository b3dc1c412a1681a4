"""Checksums and format checks that turn a regex candidate into a finding.

Each check is a pure function over bytes (the scanner works on UTF-8) and runs only on the few
candidates a trigger found, so plain Python is fast enough here. Where a format carries its own
checksum (GitHub and npm tokens: CRC32; cards: Luhn; IBANs: mod 97) the checksum decides, which is
what keeps random-looking ordinary output (hashes, ids, base64) from being reported.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

# --- CRC32 tokens (GitHub ghp_/gho_/ghu_/ghs_/ghr_, npm npm_) ------------------------------------

_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> bytes:
    """``number`` in base 62 (digits, then A-Z, then a-z), left-padded with ``0`` to ``width``."""
    out = bytearray()
    while number:
        number, digit = divmod(number, 62)
        out.append(_BASE62[digit])
    return bytes(out[::-1]).rjust(width, b"0")


def crc32_token_ok(token: bytes) -> bool:
    """A 40-character ``xxx_`` token whose last 6 characters are the base62 CRC32 of the 30 before them.

    The format GitHub introduced in 2021 (and npm copied): 4-character prefix, 30 random
    characters, 6-character checksum. A random string passes with probability 62^-6.
    """
    if len(token) != 40:
        return False
    return base62(zlib.crc32(token[4:34]), 6) == token[34:]


# --- payment cards ----------------------------------------------------------------------------

# (first digits low, first digits high, brand, allowed lengths). Lengths are the ones issued in
# practice: 17- and 18-digit numbers are left out on purpose, as that is where numeric ids
# (snowflakes, nanosecond timestamps) live. The longest matching prefix decides.
_IIN: tuple[tuple[str, str, str, frozenset[int]], ...] = (
    ("4", "4", "visa", frozenset({13, 16, 19})),
    ("51", "55", "mastercard", frozenset({16})),
    ("2221", "2720", "mastercard", frozenset({16})),
    ("34", "34", "amex", frozenset({15})),
    ("37", "37", "amex", frozenset({15})),
    ("6011", "6011", "discover", frozenset({16, 19})),
    ("644", "649", "discover", frozenset({16, 19})),
    ("65", "65", "discover", frozenset({16, 19})),
    ("622126", "622925", "discover", frozenset({16, 19})),
    ("3528", "3589", "jcb", frozenset({16, 19})),
    ("300", "305", "diners", frozenset({14, 16})),
    ("3095", "3095", "diners", frozenset({14, 16})),
    ("36", "36", "diners", frozenset({14})),
    ("38", "39", "diners", frozenset({14, 16})),
    ("62", "62", "unionpay", frozenset({16, 19})),
    ("81", "81", "unionpay", frozenset({16})),
    ("5018", "5018", "maestro", frozenset({16, 18, 19})),
    ("5020", "5020", "maestro", frozenset({16, 18, 19})),
    ("5038", "5038", "maestro", frozenset({16, 18, 19})),
    ("5893", "5893", "maestro", frozenset({16, 18, 19})),
    ("6304", "6304", "maestro", frozenset({16, 18, 19})),
    ("6759", "6759", "maestro", frozenset({16, 18, 19})),
    ("6761", "6763", "maestro", frozenset({16, 18, 19})),
    ("2200", "2204", "mir", frozenset({16})),
)


def luhn_ok(digits: bytes) -> bool:
    """The Luhn (mod 10) check over ASCII digits."""
    total = 0
    double = False
    for byte in reversed(digits):
        value = byte - 48
        if double:
            value *= 2
            if value > 9:
                value -= 9
        total += value
        double = not double
    return total % 10 == 0


def _expand_iin() -> dict[str, tuple[str, frozenset[int]]]:
    table: dict[str, tuple[str, frozenset[int]]] = {}
    for low, high, brand, lengths in _IIN:
        for prefix in range(int(low), int(high) + 1):
            table[str(prefix)] = (brand, lengths)
    return table


_IIN_TABLE = _expand_iin()
_IIN_WIDTHS = sorted({len(k) for k in _IIN_TABLE}, reverse=True)


def card_brand(digits: bytes) -> str | None:
    """The brand whose IIN range (longest prefix first) and lengths fit ``digits``, or None."""
    text = digits.decode("ascii")
    for width in _IIN_WIDTHS:
        entry = _IIN_TABLE.get(text[:width])
        if entry is not None:
            return entry[0] if len(digits) in entry[1] else None
    return None


# --- IBANs ------------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry, plus the countries that issue IBANs outside it.
_IBAN_TABLE = (
    "AD24 AE23 AL28 AO25 AT20 AZ28 BA20 BE16 BF28 BG22 BH22 BI27 BJ28 BR29 BY28 CF27 CG27 CH21 CI28 CM27 "
    "CR22 CV25 CY28 CZ24 DE22 DJ27 DK18 DO28 DZ26 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GA27 GB22 GE22 GI23 "
    "GL18 GQ27 GR27 GT28 GW25 HN28 HR21 HU28 IE22 IL23 IQ23 IR26 IS26 IT27 JO30 KM27 KW30 KZ20 LB28 LC32 "
    "LI21 LT20 LU20 LV21 LY25 MA28 MC27 MD24 ME22 MG27 MK19 ML28 MN20 MR27 MT31 MU30 MZ25 NE28 NI28 NL18 "
    "NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SN28 SO23 ST25 "
    "SV28 TD27 TG28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
IBAN_LENGTHS: dict[str, int] = {entry[:2]: int(entry[2:]) for entry in _IBAN_TABLE.split()}


def iban_ok(compact: bytes) -> bool:
    """Country length, check digits in 02..98, and the ISO 7064 mod-97 check."""
    if len(compact) < 15 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    if IBAN_LENGTHS.get(compact[:2].decode("ascii")) != len(compact):
        return False
    if not 2 <= int(compact[2:4]) <= 98:
        return False
    rearranged = (compact[4:] + compact[:4]).decode("ascii")
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


# --- JWTs and other base64 -------------------------------------------------------------------


def b64url_decode(segment: bytes) -> bytes | None:
    """Decode unpadded or padded base64url; None when it is not."""
    core = segment.rstrip(b"=")
    try:
        return base64.urlsafe_b64decode(core + b"=" * (-len(core) % 4))
    except (binascii.Error, ValueError):
        return None


def jwt_header_ok(token: bytes) -> bool:
    """The first of three dot-separated parts decodes to a JSON object with a string ``alg``."""
    header = token.split(b".", 1)[0]
    if len(header) > 4096:
        return False
    raw = b64url_decode(header)
    if raw is None:
        return False
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("alg"), str)


def discord_token_ok(token: bytes) -> bool:
    """A Discord bot token's first part is the bot's user id (a 17-20 digit snowflake) in base64."""
    raw = b64url_decode(token.split(b".", 1)[0])
    return raw is not None and 17 <= len(raw) <= 20 and raw.isdigit() and raw[:1] != b"0"


# --- randomness -------------------------------------------------------------------------------


def looks_random(value: bytes, *, need_digit: bool = True) -> bool:
    """Upper and lower case letters (and a digit): what generated keys have and placeholders lack.

    ``xxxxxxxx``, ``your_api_key_here``, ``EXAMPLEKEYEXAMPLEKEY`` and snake_case identifiers fail.
    """
    has_upper = has_lower = has_digit = False
    for byte in value:
        if 65 <= byte <= 90:
            has_upper = True
        elif 97 <= byte <= 122:
            has_lower = True
        elif 48 <= byte <= 57:
            has_digit = True
    return has_upper and has_lower and (has_digit or not need_digit)


def distinct_ok(value: bytes, minimum: int = 8) -> bool:
    """At least ``minimum`` distinct characters: rules out ``aaaa...`` and ``1234...`` fillers."""
    return len(set(value)) >= minimum


# --- emails -----------------------------------------------------------------------------------

# ISO 3166 country codes delegated as ccTLDs, plus uk/eu/ac/su.
_CC = (
    "ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo bq br bs bt bw by bz "
    "ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu fi fj fk fm "
    "fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is "
    "it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm "
    "mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr "
    "ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th "
    "tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw"
)
# Generic TLDs seen in real addresses. A closed list, because file names (icon@2x.png) and code
# (x@self.weight) look like addresses to a regex; the cost is missing addresses at rare new gTLDs.
_GENERIC = (
    "com org net edu gov mil int info biz name pro aero asia cat coop jobs mobi museum post tel travel xxx "
    "app dev page cloud email online site website tech store shop blog xyz top club live news life world today "
    "space fun icu vip work art design studio agency company solutions services digital media network systems "
    "group global team zone center academy school university consulting finance bank insurance legal law health "
    "care link click one host social chat mail inc ltd llc gmbh family love city london berlin paris nyc tokyo "
    "amsterdam wien swiss africa lat ninja guru rocks expert support software codes tools run sh hosting"
)
TLDS: frozenset[bytes] = frozenset(t.encode() for t in (_CC + " " + _GENERIC).split())
