"""The ``within`` condition: does a path argument lie inside some directories? Compared as paths.

A regex on the raw string is not enough: ``/srv/data/../etc/passwd`` matches ``/srv/data/.*``.
Here the argument is made absolute and normalised, then compared component by component with
each directory, so ``/srv/data2`` is not within ``/srv/data`` and ``/srv/data`` itself is.

What is read as a path (POSIX; Windows below):

* an absolute path; ``.``, ``..`` (never above the root) and repeated separators are resolved
  lexically, and a leading ``//`` is ``/`` (as Linux and macOS read it);
* ``~`` or ``~/…``: the home directory of the guard's user (``$HOME``), which is the server's too
  unless its launcher changes ``HOME``. ``~user/…`` is refused: the reference filesystem server and
  Node do not expand it while shells and Python do, so readers disagree on what it names;
* a ``file:`` URL: ``file:///p``, ``file://localhost/p`` or ``file:/p``, percent-decoded; any other
  host, a query or fragment, control characters, or another form (``file:p``) is refused;
* a list of such strings (``read_multiple_files``' ``paths``): within when every one is, not within
  when none is.

Anything else cannot be normalised and raises :class:`PathProblem`, which the engine turns
into a refusal whatever the rule says (``require``, ``deny_if``, ``approve_if``, with or without
``not``): a relative path (the guard cannot know what the server resolves it against; the
reference filesystem server tries each of its roots), a string with a NUL (C-based readers stop at
it, others fail), a Windows drive path on POSIX, an empty string, a non-string, a path longer than
:data:`MAX_PATH_CHARS`, and a list holding paths both inside and outside, or none.

Fail closed where readers disagree. One string may name different paths to different readers:
a plain path with ``%2e%2e`` is a literal file name to the reference filesystem server and to
``open()``, but ``..`` to a server that URL-decodes its input; a backslash is a literal character
on POSIX, but a separator to a WHATWG URL parser (``file:`` URLs) and to servers that accept
Windows-style input; macOS volumes may ignore letter case or not. So every reading is computed
(as written; percent-decoded, repeatedly, up to :data:`DECODE_ROUNDS` times; with backslashes as
separators on POSIX; on macOS both as written and with case and Unicode normalisation folded), and
the answer is given only when they all agree; when they do not, the call is refused. A ``file:``
URL is always decoded once (that is what it means), so ``%20`` in one is a space. On Windows, whose
file systems ignore case, names are compared folded. Ordinary paths have one reading and cost a
split and a tuple comparison (about a microsecond).

It is lexical: the guard does not look at the file system, so a symbolic link inside a
directory that points outside it is not seen (the server may run elsewhere, or the link may
change between the check and the use). Keep the server's own root restrictions
(server-filesystem's allowed directories, which resolve links) as the first fence; ``within``
stops the model's attempts to step out of them by spelling.

Windows (drive paths ``C:\\…`` or ``C:/…`` and UNC ``\\\\server\\share\\…``): ``/`` and ``\\`` are both
separators; a drive-relative ``C:x`` or rooted ``\\x`` path is relative; device paths (``\\\\?\\``,
``\\\\.\\``), components ending in a dot or space (Win32 strips them), containing ``:`` (alternate
data streams), reserved device names (``CON``, ``NUL``, ``COM1``…) and possible 8.3 short names
(``PROGRA~1``) are refused, since they name something other than what they spell.
"""

from __future__ import annotations

import ntpath
import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

MAX_PATH_CHARS = 32_768
"""Longer strings are refused (Windows' extended limit is 32 767 characters; Linux's PATH_MAX is 4 096 bytes)."""
DECODE_ROUNDS = 3
"""Percent-decoding readings computed; a string that still decodes further after them is refused."""

Key = tuple[str, ...]
"""A normalised absolute path: its components (on Windows, the first is the drive or UNC share)."""


class PathProblem(ValueError):
    """A value that cannot be read as one absolute path; ``message`` says why."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True)
class Flavour:
    """How the server's platform reads paths: its separators, and how its file systems treat letter case.

    ``exact``: names are compared as written (case-sensitive file systems); ``folded``: with case and
    Unicode normalisation folded. With both (macOS, whose volumes may be either), they must agree.
    """

    windows: bool
    exact: bool
    folded: bool


POSIX = Flavour(windows=False, exact=True, folded=False)
MACOS = Flavour(windows=False, exact=True, folded=True)
WINDOWS = Flavour(windows=True, exact=False, folded=True)
HOST = WINDOWS if os.name == "nt" else MACOS if sys.platform == "darwin" else POSIX
"""The guard's own platform, which is the server's: the guard spawns it on the same machine."""

_ODD = re.compile(r"[%\\\x00]")  # a plain POSIX path without these has exactly one reading
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")
_URL_DRIVE = re.compile(r"/[A-Za-z][:|](?:/|$)")
_SHORT_NAME = re.compile(r"(?=[^.]*~[0-9])[^.]{1,8}(?:\.[^.]{0,3})?")  # 8.3 names: PROGRA~1, REPORT~2.DOC
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{name}{digit}" for name in ("COM", "LPT") for digit in "0123456789¹²³"}
)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"… ({len(text)} characters)"


def _components_posix(path: str) -> Key:
    if not path.startswith("/"):
        raise PathProblem(f"{_shown(path)} is not an absolute path")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return tuple(out)


def _components_windows(path: str) -> Key:
    flat = path.replace("/", "\\")
    if flat.startswith(("\\\\?\\", "\\\\.\\", "\\??\\")):
        raise PathProblem(f"{_shown(path)} is a Windows device path")
    drive, rest = ntpath.splitdrive(flat)
    unc = drive.startswith("\\\\")
    if not drive or not (rest.startswith("\\") or (unc and not rest)):  # \\server\share is its own root
        raise PathProblem(f"{_shown(path)} is not an absolute path (a drive and a root, or \\\\server\\share\\)")
    if unc:
        server, _, share = drive[2:].partition("\\")
        if not server or not share:
            raise PathProblem(f"{_shown(path)} names no share")
    elif not _WINDOWS_DRIVE.fullmatch(drive):
        raise PathProblem(f"{_shown(path)} has an unusual drive")
    out: list[str] = [drive.casefold()]  # drive letters and server names never depend on case
    for part in rest.split("\\"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(out) > 1:
                out.pop()
            continue
        if part.endswith((".", " ")) or ":" in part or _SHORT_NAME.fullmatch(part):
            raise PathProblem(f"{_shown(path)} has a component Windows reads as another name: {part!r}")
        if part.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
            raise PathProblem(f"{_shown(path)} names a Windows device: {part!r}")
        out.append(part)
    return tuple(out)


def _components(path: str, flavour: Flavour) -> Key:
    if "\x00" in path:
        raise PathProblem(f"{_shown(path)} contains a NUL character")
    return _components_windows(path) if flavour.windows else _components_posix(path)


def _fold(key: Key) -> Key:
    return tuple(unicodedata.normalize("NFC", part).casefold() for part in key)


def _is_home(text: str, flavour: Flavour) -> bool:
    """``~`` alone or followed by a separator (not ``~user``)."""
    if not text.startswith("~"):
        return False
    return text == "~" or text[1] == "/" or (flavour.windows and text[1] == "\\")


def _home(home: str | None, flavour: Flavour) -> str:
    found = os.path.expanduser("~") if home is None else home
    try:
        _components(found, flavour)
    except PathProblem:
        raise PathProblem("'~' cannot be expanded: the guard's home directory is not an absolute path") from None
    return found


def _decodings(text: str) -> list[str]:
    """``text`` and what each round of percent-decoding makes of it."""
    out = [text]
    current = text
    for _ in range(DECODE_ROUNDS):
        if "%" not in current:
            return out
        decoded = unquote(current, errors="surrogateescape")
        if decoded == current:
            return out
        out.append(decoded)
        current = decoded
    if "%" in current and unquote(current, errors="surrogateescape") != current:
        raise PathProblem(f"{_shown(text)} is percent-encoded more than {DECODE_ROUNDS} times over")
    return out


def _file_url(text: str, flavour: Flavour) -> str:
    """The path part of a ``file:`` URL, still percent-encoded; PathProblem for forms readers disagree on."""
    rest = text[5:]
    if _CONTROL.search(rest) or rest != rest.strip():
        # WHATWG parsers drop tabs and newlines and trim spaces; other readers keep them.
        raise PathProblem(f"{_shown(text)} is a file URL with control characters or surrounding spaces")
    if "?" in rest or "#" in rest:
        raise PathProblem(f"{_shown(text)} is a file URL with a query or fragment")
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        path = slash + path if slash else "/"
        if host.casefold() not in ("", "localhost"):
            if not flavour.windows:
                raise PathProblem(f"{_shown(text)} is a file URL on another host ({host!r})")
            return f"//{host}{path}"  # a UNC path
    elif rest.startswith("/"):
        path = rest
    else:
        raise PathProblem(f"{_shown(text)} is not a file URL of the form file:///path")
    if flavour.windows and _URL_DRIVE.match(path):
        path = f"{path[1]}:{path[3:]}"  # /C:/x or /C|/x
    return path


def _readings(text: str, flavour: Flavour, home: str | None) -> list[str]:
    """Every absolute path a reader might take ``text`` for, before normalisation."""
    if len(text) > MAX_PATH_CHARS:
        raise PathProblem(f"a path of {len(text)} characters is longer than {MAX_PATH_CHARS}")
    if "\x00" in text:
        raise PathProblem(f"{_shown(text)} contains a NUL character")
    if not text:
        raise PathProblem("an empty string is not a path")
    variants = [text]
    if not flavour.windows and "\\" in text:
        variants.append(text.replace("\\", "/"))  # WHATWG file URLs and Windows-minded servers
    out: list[str] = []
    for variant in variants:
        prefix = ""
        is_url = variant[:5].casefold() == "file:"
        if is_url:
            rest = _file_url(variant, flavour)
        elif variant.startswith("~"):
            if not _is_home(variant, flavour):
                raise PathProblem(f"{_shown(text)} starts with '~user', which servers expand differently")
            prefix, rest = _home(home, flavour), variant[1:]
        else:
            rest = variant
        readings = _decodings(rest)
        if is_url and len(readings) > 1:
            readings = readings[1:]  # a URL is percent-decoded by definition; further rounds are readings too
        out.extend(prefix + reading for reading in readings)
    return out


def _inside(key: Key, roots: Sequence[Key]) -> bool:
    for root in roots:  # noqa: SIM110 - a loop, not any() over a generator: this runs per call
        if key[: len(root)] == root:
            return True
    return False


@dataclass(frozen=True)
class Directories:
    """The directories of one ``within`` condition, normalised once when the policy loads."""

    flavour: Flavour
    exact: tuple[Key, ...]
    folded: tuple[Key, ...]

    def answer(self, value: Any, home: str | None = None) -> bool:
        """Whether ``value`` (a path string or a list of them) lies within; PathProblem when that cannot be known."""
        if isinstance(value, str):
            return self._one(value, home)
        if isinstance(value, list):
            if not value:
                raise PathProblem("an empty list names no path")
            answers = set()
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise PathProblem(f"item {i} is not a path string", i)
                try:
                    answers.add(self._one(item, home))
                except PathProblem as exc:
                    raise PathProblem(f"item {i}: {exc.message}", i) from None
            if len(answers) > 1:
                raise PathProblem("the list holds paths both inside and outside the directories")
            return answers.pop()
        raise PathProblem("expected a path string or a list of them")

    def _one(self, text: str, home: str | None) -> bool:
        if not self.flavour.windows and text[:1] == "/" and len(text) <= MAX_PATH_CHARS and not _ODD.search(text):
            key = _components_posix(text)  # the common case: one reading
            if not self.flavour.folded:
                return _inside(key, self.exact)
            keys = [key]
        else:
            keys = [_components(reading, self.flavour) for reading in _readings(text, self.flavour, home)]
        answers: set[bool] = set()
        if self.flavour.exact:
            answers.update(_inside(key, self.exact) for key in keys)
        if self.flavour.folded:
            answers.update(_inside(_fold(key), self.folded) for key in keys)
        if len(answers) > 1:
            raise PathProblem(
                f"{_shown(text)} can be read as different paths (percent-encoding, backslashes or letter case), "
                "some inside the directories and some not"
            )
        return answers.pop()


def directories(value: Any, flavour: Flavour = HOST, home: str | None = None) -> Directories:
    """Compile a condition's value: one directory or a list; each absolute after ``~`` expansion.

    PathProblem (with ``index`` for an item of a list) when one is relative, empty or not a string.
    """
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PathProblem("'within' needs at least one directory")
    keys: list[Key] = []
    for i, item in enumerate(items):
        index = i if isinstance(value, list) else None
        if not isinstance(item, str) or not item:
            raise PathProblem("'within' needs a directory (an absolute path string) or a list of them", index)
        path = item
        if _is_home(item, flavour):
            path = _home(home, flavour) + item[1:]
        elif item.startswith("~"):
            path = os.path.expanduser(item)
            if path == item:
                raise PathProblem(f"{item!r}: no such user to expand '~user' for", index)
        try:
            keys.append(_components(path, flavour))
        except PathProblem as exc:
            hint = (
                "; write it in full (/srv/data) or from the home directory (~/data)"
                if "absolute" in exc.message
                else ""
            )
            raise PathProblem(f"directory {exc.message}{hint}", index) from None
    exact = tuple(keys)
    return Directories(flavour, exact, tuple(_fold(k) for k in exact))
