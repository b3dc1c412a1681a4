"""Arguments that name the guard's own files and folders: its policy, lock file, stores, audit log, secret.

A tool that reads or writes files (or runs shell commands) could be asked to rewrite the
policy that constrains it. :class:`ProtectedPaths` reads every string of a call's arguments,
at any depth (object keys included), for a reference to a protected
file or to a sibling the guard writes beside it (``NAME.1``, ``NAME.lock``, ``NAME-wal``,
``.NAME.*.tmp``), or to a protected folder or anything inside it, written as:

* an absolute path, a ``~`` or ``~user`` path, or one through an environment variable
  (``$HOME``, ``${XDG_CONFIG_HOME}``: the values the server inherited from the guard);
* a ``file:`` URI (``file:///…``, ``file://localhost/…``, ``file:/…``), percent-decoded; any
  word with ``%`` in it is read percent-decoded too;
* a relative path, resolved against the server's working directory and against every
  directory the same string changes into (``cd``, ``pushd``, ``chdir(…)``, ``-C DIR``,
  ``--directory DIR``), in whatever order those might run. Past :data:`MAX_BASES` such
  directories, or after a ``cd`` into a variable the guard does not know, a relative path
  whose first segments are the last segments of a protected path counts, wherever it is;
* a word as a POSIX shell reads it: quotes joined and removed (``'a'"b"``), ``\\``
  escapes, ``$'…'`` strings, then cut at ``= : ; , | & < > ( ) { }`` and backticks (and,
  for text a quote glued together, at spaces);
* a glob (``*``, ``?``, ``[…]``, ``**``) that matches a protected path, segment by segment;
* a path through symbolic links, resolved as the kernel does (one lookup per path segment
  not yet seen in the call), or a bare word that names a symbolic link in one of those
  directories.

Paths are compared after normalisation (``.`` and ``..`` segments, repeated slashes), as
written and with symbolic links resolved; on macOS and Windows case is folded.

It fails closed: nothing is left unread. Arguments holding more than :data:`MAX_CHARS`
characters of strings or more than :data:`MAX_VALUES` values, or whose paths need more than
:data:`MAX_FS_LOOKUPS` file-system lookups, are refused as too large to check
(:class:`ScanLimitExceeded`, :meth:`ProtectedPaths.refusal`); real calls stay far below.
Work stays close to linear: runs of words with no path character are skipped in one regex
match, a long string's plain paths are looked up only when one starts at a name that exists,
and a directory looked into often is listed once. Measured on a loaded 2-core VM (a system
call there costs 3-6 µs): a 16-byte call about 10 µs, a shell command about 90 µs; 1 MB of
prose 7 ms, of code or of JSON full of URLs 50-90 ms, of text full of ``cd`` commands (whose
relative paths are read from every directory) about 0.7 s.

It is a best effort against shell commands, not a sandbox: it cannot see a path a program
builds at run time (``cat $(echo cG9saWN5 | base64 -d)``, command substitution, brace
expansion, string concatenation, a variable set earlier in a session), a glob that reaches a
protected path only through a symbolic link, one longer than :data:`MAX_TOKEN` characters
(the kernel refuses those), nor an ancestor of a protected folder (``rm -rf ~``,
``find ~ -delete``).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

from mcp_guard.policy.decision import Deny

MAX_CHARS = 8_000_000
"""Characters of string values a call may carry; a call with more is refused as too large to check."""
MAX_VALUES = 1_000_000
"""Values (strings, numbers, objects, arrays) a call's arguments may hold; more are refused."""
MAX_FS_LOOKUPS = 200_000
"""File-system lookups a call's paths may need (one per path segment not seen before in the call)."""
MAX_BASES = 16
"""Directories a string may change into that are followed exactly; past them relative paths are read conservatively."""
MAX_TOKEN = 4096
"""Longer pieces are not taken for paths (no system opens a longer one)."""
SHORT_STRING = 4096
"""Strings up to this long have each plain path looked up; in longer ones, only if one could lead anywhere."""
MAX_LINK_NAMES = 256
"""Symbolic links in the working directory looked for by name in a string; with more, every word is read."""
_QUICK_CHARS = 4096  # strings up to this long are first searched once for anything that needs reading
_MAX_LINK_DEPTH = 40  # as the kernel's ELOOP limit
_LIST_AFTER = 16  # lookups into one directory in a call after which it is listed once instead

# Every pattern here runs in linear time: possessive quantifiers never backtrack over a long word.
_SEGMENT = re.compile(r"""\$'((?:[^'\\]++|\\.)*+)'|'([^']*+)'|"((?:[^"\\]++|\\.)*+)"|\\(.)|([^'"\\$]++|.)""", re.S)
_DOUBLE_QUOTED_ESCAPE = re.compile(r"\\(.)", re.S)
_ANSI_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.S)
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_LEADING_VARIABLE = re.compile(r"^\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)[\\/]*")
_QUOTING = re.compile(r"['\"\\]")
_ODD = re.compile(r"[/~$%\\'\"`]")
_SEPARATORS = re.compile(r"[=;,|&<>(){}`]+")
_SEPARATORS_AND_COLON = re.compile(r"[=:;,|&<>(){}`]+")
_COMMAND_BREAK = re.compile(r"[;&|()`{}]+")
_GLOB = re.compile(r"[*?\[]")
_SPACE = re.compile(r"\s")
# A piece without one of these needs a protected name or a link's name to be read as a path.
_PATH_HINT = re.compile(r"[/~%*?\[$\\]" if os.altsep else r"[/~%*?\[$]")
# Directory changes: (a literal the pattern starts with, which the regex engine finds fast; the pattern;
# whether it must start a word, checked on the character before it).
_MOVES = (
    ("cd", re.compile(r"cd(?![\w.-])"), True),
    ("pushd", re.compile(r"pushd(?![\w.-])"), True),
    *((spelling, re.compile(spelling), False) for spelling in ("chdir", "Chdir", "CHDIR")),  # os.chdir(…), os.Chdir(…)
    ("--", re.compile(r"--(?:directory|cwd|chdir|work)"), False),
)
# Words with none of these characters cannot be paths (the other readings need a name, a cd or a link).
_TRIGGERS = ("/", "~", "$", "%", *(("\\",) if os.altsep else ()))
_TRIGGERS_AND_GLOBS = (*_TRIGGERS, "*", "?", "[")
_WORD_PATTERN = r"""(?:[^\s'"`\\]++|'[^']*+'|"(?:[^"\\]++|\\.)*+"|\\.|['"`\\])++"""


def _runs(*free_of: Sequence[str]) -> re.Pattern[str]:
    """Runs of words that each lack the characters of one of ``free_of`` (one match for many words), or
    one shell word, or spaces."""
    # An escaped character (my\ dir) stays inside its word.
    kinds = "|".join(rf"(?:[^\s{re.escape(''.join(chars))}\\]++|\\.)++" for chars in free_of)
    return re.compile(rf"(?P<run>(?:(?:{kinds})(?:\s++|\Z))++)|(?P<word>{_WORD_PATTERN})|\s++", re.S)


_PLAIN_TRIGGERS = tuple(t for t in _TRIGGERS if t != "/")


@functools.cache  # compiled when first needed: start-up stays light
def _run_pattern(globs: bool, slashes: bool) -> re.Pattern[str]:
    """Runs of words to skip when ``globs`` (anywhere) and ``slashes`` (plain paths) matter or not. Where
    plain slashes do not matter, a glob still does with a slash (it may match a protected path as
    written): such a word needs both."""
    if slashes:
        return _runs(_TRIGGERS_AND_GLOBS if globs else _TRIGGERS)
    if globs:
        return _runs((*_PLAIN_TRIGGERS, "*", "?", "["))
    return _runs((*_PLAIN_TRIGGERS, "*", "?", "["), _TRIGGERS)


# A path segment after a slash (and, in the reversed text, before one).
_AFTER_SLASH = re.compile(r"/+([^/\s'\"`=:;,|&<>(){}]+)")
_SHELL_WORD = re.compile(_WORD_PATTERN, re.S)
_CD_WORDS = frozenset({"cd", "pushd"})
_TARGET_WORDS = 8  # a keyword's word and those after it read for its directory (cd -P -L -- DIR)
_DIRECTORY_OPTIONS = ("-C", "--directory", "--cwd", "--chdir", "--workdir", "--work-tree", "--working-directory")
_SEPS = (os.sep, os.altsep) if os.altsep else (os.sep,)
_SEP_RUN = re.compile(f"[{re.escape(''.join(_SEPS))}]+")


class ScanLimitExceeded(Exception):
    """The arguments are too large to check within the budget; the call must be refused. ``str()`` says why."""


def _dequote(word: str) -> str:
    """``word`` as a POSIX shell reads it: quotes removed, escapes applied (an unpaired quote stays)."""
    if _QUOTING.search(word) is None:
        return word
    out: list[str] = []
    for match in _SEGMENT.finditer(word):
        ansi, single, double, escaped, plain = match.groups()
        if ansi is not None:
            out.append(_ANSI_ESCAPE.sub(_ansi_char, ansi))
        elif single is not None:
            out.append(single)
        elif double is not None:
            out.append(_DOUBLE_QUOTED_ESCAPE.sub(r"\1", double))
        elif escaped is not None:
            out.append(escaped)
        else:
            out.append(plain)
    return "".join(out)


def _ansi_char(match: re.Match[str]) -> str:
    code = match.group(1)
    head = code[0]
    if head in "xuU" and len(code) > 1:
        return chr(min(int(code[1:], 16), sys.maxunicode))
    if head in "01234567":
        return chr(int(code, 8))
    if head == "c" and len(code) > 1:
        return chr(ord(code[1]) & 0x1F)
    return _ANSI_SIMPLE.get(code, code)


def _unquoted(text: str) -> str:
    """``text`` without quotes and backslashes: a name split by shell quoting shows whole here."""
    for char in "'\"\\`":
        if char in text:
            text = text.replace(char, "")
    return text


def _is_pathlike(token: str) -> bool:
    """Whether ``token`` has more than one segment (a bare word leads somewhere only as a link's name)."""
    return any(sep in token for sep in _SEPS) or token.startswith("~")


def _collapse_root(path: str) -> str:
    """POSIX keeps a leading ``//``; the kernel does not care."""
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _queue(pending: _Pending, anchor: str, relative: str, piece: str) -> None:
    parts = relative.replace(os.altsep, os.sep).split(os.sep) if os.altsep else relative.split(os.sep)
    start = 0
    while start < len(parts) and parts[start] in ("", "."):
        start += 1
    if start < len(parts):  # else the directory itself: a base is a target checked on its own, the root is free
        pending.setdefault(anchor, {}).setdefault(parts[start], []).append((os.sep.join(parts[start + 1 :]), piece))


def _spans_at(text: str, positions: Iterable[int]) -> list[str]:
    """The whitespace-delimited spans of ``text`` that hold these (ascending) positions, each once."""
    spans: list[str] = []
    backwards = text[::-1]
    end = -1
    for at in positions:
        if at < end:
            continue
        before = _SPACE.search(backwards, len(text) - at)
        after = _SPACE.search(text, at)
        end = after.start() if after else len(text)
        spans.append(text[len(text) - before.start() if before else 0 : end])
    return spans


def _split_root(path: str) -> tuple[str, str]:
    drive, rest = os.path.splitdrive(path)
    return drive + os.sep, rest


_UNLISTED = object()


class _Call:
    """What one call's scan has spent and learned: file-system lookups, resolved paths, directory listings."""

    __slots__ = ("budget", "cwd_links", "cwd_stat", "left", "listings", "probes", "resolved")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.left = budget
        self.resolved: dict[str, str | None] = {}  # real parent + name -> real path; None: nothing there
        self.probes: dict[str, int] = {}  # real directory -> lookups made in it
        self.listings: dict[str, dict[str, bool] | None] = {}  # real directory -> name: is a link (None: unreadable)
        self.cwd_links: frozenset[str] | None = None
        self.cwd_stat: os.stat_result | bool | None = False  # False: not asked yet; None: not there

    def spend(self, lookups: int = 1) -> None:
        self.left -= lookups
        if self.left < 0:
            raise ScanLimitExceeded(f"its paths need more than {self.budget:,} file-system lookups")


class _Reading:
    """How one string's relative paths are read: from which directories, and the links named there."""

    __slots__ = ("bases", "links", "unsure")

    def __init__(self, bases: list[str], unsure: bool, links: frozenset[str]) -> None:
        self.bases = bases
        self.unsure = unsure
        self.links = links


# Paths a string may name through the file system, grouped to be looked up together:
# directory (as written) -> first path segment -> [(the rest of the path, the piece of text)].
_Pending = dict[str, dict[str, list[tuple[str, str]]]]


# The guard's own commands that undo its protection (clear the flow ledger, approve a held call, accept a
# changed tool, unwrap the client's config), run by name (mcp-guard, python -m mcp_guard), options allowed
# before the subcommand. Like the paths, a best effort against shell commands: one may build the name at run
# time; the plain spelling, the one the refusal and the README show, is caught. Only a few words after each
# mention are read, so the work stays linear in the text.
_GUARD_NAME = re.compile(r"""(?i)(?:^|[\s;&|(`'"/=])mcp[-_]guard(?:\.exe)?['"]?(?=\s)""")
_UNDOING = {"flows": ("clear",), "approvals": ("approve",), "pins": ("accept", "create"), "unwrap": ()}
_UNDOING.update({"approval": _UNDOING["approvals"], "pin": _UNDOING["pins"]})
_WORDS_READ = 12


def _self_command(text: str) -> str | None:
    """The guard command in ``text`` that undoes its protection (``mcp-guard flows clear``), else None."""
    for m in _GUARD_NAME.finditer(text):
        words = [w.strip("'\"").lower() for w in text[m.end() : m.end() + 24 * _WORDS_READ].split()[:_WORDS_READ]]
        for i, word in enumerate(words):
            verbs = _UNDOING.get(word)
            if verbs is None:
                continue
            if not verbs or (i + 1 < len(words) and words[i + 1] in verbs):
                return " ".join(["mcp-guard", *words[: i + 1 + bool(verbs)]])
    return None


class ProtectedPaths:
    """Files and folders that tool-call arguments must not name.

    ``paths``: protected files (the file and the siblings the guard writes beside it match).
    ``directories``: protected folders (the folder and everything below it match). ``cwd``:
    the upstream's working directory, for relative paths. ``case_insensitive`` defaults to
    True on macOS and Windows. ``home`` replaces ``$HOME`` for ``~`` (tests); ``environ``
    the variables the server sees (default: this process's).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        cwd: str | os.PathLike[str],
        *,
        directories: Sequence[str | os.PathLike[str]] = (),
        case_insensitive: bool | None = None,
        home: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        max_chars: int = MAX_CHARS,
        max_values: int = MAX_VALUES,
        max_fs_lookups: int = MAX_FS_LOOKUPS,
    ) -> None:
        self._ci = sys.platform in ("darwin", "win32") if case_insensitive is None else case_insensitive
        self._home = os.fspath(home) if home is not None else None
        self.cwd = os.path.abspath(os.fspath(cwd))
        self.max_chars = max_chars
        self.max_values = max_values
        self.max_fs_lookups = max_fs_lookups
        variables = dict(os.environ if environ is None else environ)
        if self._home is not None:
            variables["HOME"] = self._home
        self._env = {self._fold(name): self._fold(value) for name, value in variables.items()}
        # -C DIR (git, make, tar); case folding makes it -c, and bash -c, python -c only add a directory.
        self._moves = (*_MOVES, (self._fold("-C"), re.compile(re.escape(self._fold("-C")) + r"(?!\w)"), True))
        self._options = frozenset(self._fold(option) for option in _DIRECTORY_OPTIONS)
        self._cwd_links_cache: tuple[int, frozenset[str]] | None = None
        self._families: dict[str, list[tuple[str, Path]]] = {}  # folded parent -> (folded name, file)
        self._dirs: list[tuple[str, Path]] = []
        self._entries: list[tuple[list[str], Path, bool]] = []  # segments, original, is a folder
        # A bare glob (``mcp*``) can only match a protected path from the folder that holds it.
        self._parents: set[str] = set()
        needles: set[str] = set()
        for raw in paths:
            original = Path(os.path.abspath(self._expanduser(os.fspath(raw))))
            for form in self._forms(str(original)):
                parent, name = os.path.split(form)
                self._families.setdefault(parent, []).append((name, original))
                self._entries.append((self._parts(form), original, False))
                self._parents.add(parent)
                needles.add(name)
        folders = sorted({Path(os.path.abspath(self._expanduser(os.fspath(raw)))) for raw in directories}, key=str)
        for original in folders:  # outer folders first
            for form in self._forms(str(original)):
                if self._inside_dir(form) is not None:
                    continue  # inside a folder already protected (the log folder in the state folder)
                if os.path.dirname(form) == form:
                    raise ValueError(f"refusing to protect the root directory {original}")
                self._dirs.append((form, original))
                self._entries.append((self._parts(form), original, True))
                self._parents.add(os.path.dirname(form))
                needles.add(os.path.basename(form))
        self._needles = tuple(sorted(n for n in needles if n))
        self._segment_names = {part for parts, _, _ in self._entries for part in parts}
        names = "|".join(re.escape(needle) for needle in self._needles) or "(?!)"
        self._named = re.compile(names)
        # What a piece needs for the textual pass to read it: a name, an escape, a glob, a URI, a variable.
        self._textual_hint = re.compile(rf"{names}|[%*?\[]|^\$|^(?i:file):")
        self._cwd_norm = os.path.normpath(self.cwd)
        self._cwd_real = os.path.realpath(self.cwd)
        try:
            found = os.stat(self._cwd_real)
            self._cwd_id: tuple[int, int] | None = (found.st_dev, found.st_ino)
        except OSError:
            self._cwd_id = None
        self._cwd_is_parent = self._fold(self._cwd_norm) in self._parents
        # Inside a protected directory, any relative name may point into it: no needle can filter.
        here = {self._fold(self._cwd_norm), self._fold(self._cwd_real)}
        self._scan_all = any(self._inside_dir(form) is not None for form in here)
        # Anything in a string that makes _scan read it further, but a link's name: a protected name, a
        # directory change's literal, a trigger (a glob too where the working directory holds protected
        # files), a quote or backslash (names are looked for with quotes removed). One search instead of
        # one per needle, literal and trigger, for the short strings most arguments are.
        quick = {*self._needles, *(literal for literal, _, _ in self._moves), *_TRIGGERS, *"'\"`\\"}
        if self._cwd_is_parent:
            quick.update(_TRIGGERS_AND_GLOBS)
        self._quick = re.compile("|".join(re.escape(part) for part in sorted(quick, key=len, reverse=True)))

    # --- the public check --------------------------------------------------------------------

    def protected(self) -> list[Path]:
        """The protected files and directories, as given (absolute)."""
        return sorted({path for _, path, _ in self._entries})

    def refusal(self, arguments: object) -> Deny | None:
        """The refusal for a call with these arguments, or None when they stay clear of the guard's files."""
        try:
            strings = self._strings(arguments)  # walked once for both checks
            found = self._find(strings)
        except ScanLimitExceeded as exc:
            return Deny(
                "protected",
                "protect_own_files",
                f"This call's arguments are too large to check for the guard's own files ({exc}), so it was "
                "refused; send smaller arguments (a large file in several parts, for example).",
            )
        if found is None:
            return self._self_command(strings)
        token, path = found
        return Deny(
            "protected",
            "protect_own_files",
            f"This call's arguments name the guard's own file or folder {path} ({token!r}); a tool may not read "
            "or change the guard's policy, lock file, stores, audit log or secret.",
        )

    def _self_command(self, strings: list[str]) -> Deny | None:
        """The refusal for arguments (their ``strings``) that run one of the guard's own commands undoing its
        protection."""
        for text in strings:
            if "guard" not in text and "GUARD" not in text.upper():
                continue  # the one regex search below only where it can match
            command = _self_command(text)
            if command is not None:
                return Deny(
                    "protected",
                    "protect_own_files",
                    f"This call's arguments run the guard's own command {command!r}, which clears flow "
                    "labels, approves calls, accepts pins or takes the guard out of a client: that is for a person "
                    "at a terminal, never for a tool.",
                )
        return None

    def find_reference(self, arguments: object) -> tuple[str, Path] | None:
        """The first piece of text that refers to a protected path, and that path; None if none does.

        Raises :class:`ScanLimitExceeded` when the arguments are too large to read whole.
        """
        return self._find(self._strings(arguments))

    def _find(self, strings: list[str]) -> tuple[str, Path] | None:
        call = _Call(self.max_fs_lookups)
        seen: set[str] = set()  # pieces already checked against the working directory alone
        for text in strings:
            found = self._scan(text, call, seen)
            if found is not None:
                return found
        return None

    def _strings(self, arguments: object) -> list[str]:
        """Every string (keys included), in document order, once the whole is known to fit the budget."""
        strings: list[str] = []
        chars = 0
        values = 0
        stack: list[object] = [arguments]
        while stack:
            value = stack.pop()
            values += 1
            if values > self.max_values:
                raise ScanLimitExceeded(f"more than {self.max_values:,} values")
            if isinstance(value, str):
                chars += len(value)
                if chars > self.max_chars:
                    raise ScanLimitExceeded(f"more than {self.max_chars:,} characters of text")
                strings.append(value)
            elif isinstance(value, dict):
                # Keys too: a tool may take paths as keys ({"files": {PATH: CONTENT}}).
                stack.extend(reversed([part for item in value.items() for part in item]))
            elif isinstance(value, (list, tuple)):
                stack.extend(reversed(value))
        return strings

    # --- scanning one string ------------------------------------------------------------------

    def _scan(self, text: str, call: _Call, seen: set[str]) -> tuple[str, Path] | None:
        folded = self._fold(text)
        if len(folded) <= _QUICK_CHARS and not self._scan_all and self._quick.search(folded) is None:
            # Not named, no directory change, no trigger: only a link's name in it could lead to a path.
            links = self._cwd_links(call)
            if not links or (len(links) <= MAX_LINK_NAMES and not any(name in folded for name in links)):
                return None
        unquoted = _unquoted(folded)
        named = any(needle in unquoted for needle in self._needles)
        moves = bool(self._move_positions(folded))
        links = self._cwd_links(call)
        linked = bool(links) and (len(links) > MAX_LINK_NAMES or any(name in folded for name in links))
        globs = moves or self._cwd_is_parent
        triggers = _TRIGGERS_AND_GLOBS if globs else _TRIGGERS
        if not (self._scan_all or named or moves or linked or any(char in folded for char in triggers)):
            return None
        plain = not (self._scan_all or named or moves or linked)
        # In long text, a plain path that starts nowhere on disk needs no word of its own (see _slashes_matter).
        slashes = not plain or len(folded) <= SHORT_STRING or self._slashes_matter(folded, call)
        if not (slashes or any(char in folded for char in _PLAIN_TRIGGERS) or _GLOB.search(folded)):
            return None
        words = self._words(folded, globs, slashes, named, moves, links if linked else frozenset())
        if moves:
            at = [index for index, word in enumerate(words) if self._move_positions(word)]
            bases, unsure = self._bases(self._targets(words, at))
            seen = set()  # the same piece may mean another file here
            links = frozenset().union(*(self._links(base, call) for base in bases))
            reading = _Reading(bases, unsure, links)
        else:
            reading = _Reading([self._cwd_norm], False, links)
        bare_globs = any(self._fold(base) in self._parents for base in reading.bases)
        pending: _Pending = {}
        for word in words:
            if not self._interesting(word, links, bare_globs):
                continue
            for piece in self._pieces(word, links):
                if piece in seen:
                    continue
                seen.add(piece)
                hit = self._textual(piece, reading)
                if hit is not None:
                    return _shorten(piece), hit
                self._defer(piece, reading, pending)
        return self._settle(pending, call)

    def _words(
        self, folded: str, globs: bool, slashes: bool, named: bool, moves: bool, links: frozenset[str]
    ) -> list[str]:
        """The shell words of ``folded`` that may matter, in order.

        A run of words without a path character (``/`` unless ``slashes`` says plain paths
        cannot matter, ``~ $ %``, and globs where a bare glob can) is skipped whole, unless it
        holds what only a plain word can carry: a protected name (seen through quotes) or a
        symbolic link's name; then it is read word by word. A string that changes directory is
        read word by word throughout: any bare word may name a link in a directory it changes into.
        """
        if self._scan_all or moves:
            return [match.group() for match in _SHELL_WORD.finditer(folded)]
        words: list[str] = []
        run = ""
        for match in _run_pattern(globs, slashes).finditer(folded):
            word = match.group("word")
            if word is not None:
                words.append(word)
                # A quote opened among the skipped words ends in this one ("my dir/x"): read it from there.
                for quote in "'\"":
                    if word.count(quote) % 2 and quote in run:
                        words.extend(found.group() for found in _SHELL_WORD.finditer(run[run.rfind(quote) :] + word))
            run = match.group("run") or ""
            if (named and any(needle in _unquoted(run) for needle in self._needles)) or (
                bool(links) and (len(links) > MAX_LINK_NAMES or any(name in run for name in links))
            ):
                words.extend(found.group() for found in _SHELL_WORD.finditer(run))
        return words

    def _slashes_matter(self, folded: str, call: _Call) -> bool:
        """Whether a plain path (no quote, escape, variable, ``~``, ``%`` or glob) in ``folded`` could lead
        anywhere: only if some segment beside a slash is in the root or the working directory, or is ``..``.
        A path from anywhere else starts at a name that is not there, and reads as written (the textual pass
        needs a protected name for that, and the string has none)."""
        if os.altsep:
            return True
        plain = _unquoted(folded)  # quotes and escapes may split a segment: "/t'm'p"
        segments = set(_AFTER_SLASH.findall(plain))
        segments.update(segment[::-1] for segment in _AFTER_SLASH.findall(plain[::-1]))
        if ".." in segments:
            return True
        for directory in (os.sep, self._real_base(self._cwd_norm, call)):
            listing = self._listing(directory, call)
            if listing is None or not segments.isdisjoint(listing):
                return True
        return False

    def _move_positions(self, text: str) -> list[int]:
        """Where ``text`` names a directory change (``cd``, ``pushd``, ``chdir``, ``-C``, ``--directory``)."""
        found = []
        for literal, pattern, starts_word in self._moves:
            if literal not in text:
                continue
            for match in pattern.finditer(text):
                at = match.start()
                before = text[at - 1 : at]
                if starts_word and before and (before.isalnum() or before in "_.-"):
                    continue  # part of a longer word: abcd, x-cd
                found.append(at)
        return sorted(found)

    def _interesting(self, word: str, links: frozenset[str], bare_globs: bool) -> bool:
        """Whether ``word`` could name a protected path in any reading (a cheap pre-check)."""
        return (
            self._scan_all
            or _ODD.search(word) is not None
            or any(needle in word for needle in self._needles)
            or (bare_globs and _GLOB.search(word) is not None)
            or (bool(links) and (len(links) > MAX_LINK_NAMES or any(p in links for p in _SEPARATORS.split(word))))
        )

    def _pieces(self, word: str, links: frozenset[str]) -> list[str]:
        """The readings of a word that could be paths: as the shell reads it, variables expanded, cut at
        separators, each once."""
        reading = _dequote(word)
        readings = [self._fold(reading) if reading is not word else reading]
        if os.altsep and "\\" in word:  # a Windows path: its backslashes are separators, not escapes
            readings.append(word)
        flat = _unquoted(readings[0])
        if flat != readings[0]:
            readings.append(flat)
        out: dict[str, None] = {}
        for text in readings:
            expanded = self._expand(text)
            if _SPACE.search(expanded) is None:
                spans = [expanded]
            elif self._scan_all or self._named.search(expanded) or (links and any(n in expanded for n in links)):
                spans = [expanded, *expanded.split()]
            else:
                # Only a span with a path character can hold a path: find those, not every span.
                spans = [expanded, *_spans_at(expanded, (m.start() for m in _PATH_HINT.finditer(expanded)))]
            for span in spans:
                for candidate in (span, *_SEPARATORS.split(span), *_SEPARATORS_AND_COLON.split(span)):
                    if candidate and len(candidate) <= MAX_TOKEN and candidate not in out:
                        out[candidate] = None
        if self._scan_all:
            return list(out)
        return [
            piece
            for piece in out
            if _PATH_HINT.search(piece) is not None or piece in links or self._named.search(piece) is not None
        ]

    def _expand(self, text: str) -> str:
        if "$" not in text:
            return text

        def value(match: re.Match[str]) -> str:
            found = self._env.get(match.group(1) or match.group(2))
            return match.group() if found is None else found

        return _VARIABLE.sub(value, text)

    def _textual(self, piece: str, reading: _Reading) -> Path | None:
        """The protected path ``piece`` names as written (decoded, normalised), without the file system."""
        if not self._scan_all and self._textual_hint.search(piece) is None:
            return None
        named = self._named.search(piece) is not None
        if piece.startswith("$"):
            # A variable the server's environment does not have: the folder it stands for is unknown.
            rest = _LEADING_VARIABLE.sub("", piece)
            return self._tail_match(rest) if named and rest else None
        for spelling in self._spellings(piece):
            for absolute in self._textual_candidates(spelling, reading):
                hit = self._match(os.path.normpath(absolute))
                if hit is not None:
                    return hit
        if reading.unsure and named and not os.path.isabs(piece) and not piece.startswith(("~", "file:")):
            return self._tail_match(piece)
        return None

    def _textual_candidates(self, spelling: str, reading: _Reading) -> list[str]:
        """The absolute paths worth comparing for one spelling: it must hold a protected name or be a glob
        that can reach one (a bare glob only from the folder holding a protected path)."""
        absolute = os.path.isabs(spelling)
        if self._scan_all or any(needle in spelling for needle in self._needles):
            bases = reading.bases
        elif _GLOB.search(spelling) is None:
            return []
        elif absolute:
            bases = []
        elif _is_pathlike(spelling):
            first = next((part for part in _SEP_RUN.split(spelling) if part not in ("", ".")), "")
            # A literal first segment must be a protected path's, or the glob cannot reach one.
            bases = reading.bases if first == ".." or _GLOB.search(first) or first in self._segment_names else []
        else:
            bases = [base for base in reading.bases if self._fold(base) in self._parents]
        if absolute:
            return [_collapse_root(spelling)]
        return [os.path.join(base, spelling) for base in bases]

    def _defer(self, piece: str, reading: _Reading, pending: _Pending) -> None:
        """Queue the paths ``piece`` may name through symbolic links, to be looked up with the string's others."""
        if not (_is_pathlike(piece) or piece in reading.links):
            return
        plain = piece[0] not in "~$" and "%" not in piece and piece[:5].lower() != "file:"
        for spelling in (piece,) if plain else self._spellings(piece):
            if os.path.isabs(spelling):
                root, rest = _split_root(_collapse_root(spelling))
                _queue(pending, root, rest, piece)
            else:
                for base in reading.bases:
                    _queue(pending, base, spelling, piece)

    def _settle(self, pending: _Pending, call: _Call) -> tuple[str, Path] | None:
        """Look the queued paths up, each directory's first segments together (a directory with many of
        them is listed once). A path whose first segment is not there reads as written, which the textual
        pass has seen, unless links on the way to the directory put it elsewhere."""
        for anchor, firsts in pending.items():
            real = self._real_base(anchor, call)
            if len(firsts) > _LIST_AFTER:
                self._listing(real, call)
            moved = real != os.path.normpath(anchor)
            for name, queued in firsts.items():
                if name != ".." and not moved and self._lookup(real, name, call, 0) is None:
                    continue
                for rest, piece in queued:
                    hit = self._match(self._walk(real, name + os.sep + rest if rest else name, call, 0))
                    if hit is not None:
                        return _shorten(piece), hit
        return None

    # --- directory changes inside a string ----------------------------------------------------

    def _targets(self, words: list[str], at: list[int]) -> list[str]:
        """The directories the commands in ``words`` change into (``cd``, ``pushd``, ``chdir(…)``, ``-C``), in
        order; ``at``: the indexes of the words that hold such a keyword."""
        home = self._env.get(self._fold("HOME")) or os.path.expanduser("~")
        targets: list[str] = []
        for first in at:
            # The keyword's word and a few after it: options (cd -P --) and the directory. Spaces inside a
            # word are read both ways: quoted ("my dir"), or text a stray quote glued together.
            for split in (False, True):
                items: list[str | None] = []  # None: where one command ends and the next begins
                keywords = 0
                for offset, word in enumerate(words[first : first + _TARGET_WORDS]):
                    flat = self._expand(_unquoted(self._fold(_dequote(word))))
                    for span in flat.split() if split else [flat]:
                        for index, chunk in enumerate(_COMMAND_BREAK.split(span)):
                            if index:
                                items.append(None)
                            if chunk.strip():
                                items.append(chunk.strip())
                    if offset == 0:
                        keywords = len(items)
                targets.extend(self._targets_in(items, keywords, home))
        return targets

    def _targets_in(self, items: list[str | None], keywords: int, home: str) -> list[str]:
        """The targets of the keywords among the first ``keywords`` items."""
        targets: list[str] = []
        for index, item in enumerate(items[:keywords]):
            if item is None:
                continue
            name, equals, value = item.partition("=")
            if equals and name in self._options:
                targets.append(value)
                continue
            is_cd = item in _CD_WORDS
            is_chdir = item.lower().endswith("chdir")
            if not (is_cd or is_chdir or item in self._options):
                continue
            after = index + 1
            if is_chdir and after < len(items) and items[after] is None:
                after += 1  # chdir("…"): the argument follows the parenthesis
            while is_cd and after < len(items) and (word := items[after]) is not None and word[:1] == "-":
                if word == "-":
                    break
                after += 1  # cd -P, cd -L, cd --
            target = items[after] if after < len(items) else None
            if target is None:
                if is_cd:
                    targets.append(home)
            elif target != "-":  # cd -: back to a directory already counted
                targets.append(target)
        return targets

    def _bases(self, targets: list[str]) -> tuple[list[str], bool]:
        """Every directory a relative path may be read from, and whether some may be missing.

        Each target is taken from every directory known before it, which covers any order the
        commands run in (``cd a || cd b``, subshells). Past :data:`MAX_BASES` directories, or for
        a target through an unknown variable, the answer is unsure.
        """
        bases = [self._cwd_norm]
        unsure = False
        for target in targets:
            if target.startswith("$"):
                unsure = True
                continue
            for absolute in self._absolutes(target, list(bases)):
                base = os.path.normpath(absolute)
                if base in bases:
                    continue
                if len(bases) >= MAX_BASES:
                    return bases, True
                bases.append(base)
        return bases, unsure

    # --- from a piece of text to paths --------------------------------------------------------

    def _spellings(self, token: str) -> list[str]:
        """The paths ``token`` may stand for: as written, URI-decoded, ``%``-decoded, ``~`` expanded; absolute
        or relative (to be read from each directory the string may be in)."""
        spellings = [token]
        if token[:5].lower() == "file:":
            spellings = _file_uri_paths(token)
        elif "%" in token:
            spellings.append(self._fold(unquote(token)))
        out: list[str] = []
        for spelling in spellings:
            path = self._expanduser(spelling) if spelling.startswith("~") else spelling
            if not path.startswith("$"):  # else a variable the environment does not have
                out.append(path)
        return out

    def _absolutes(self, token: str, bases: Iterable[str]) -> list[str]:
        """Absolute (not yet normalised) paths ``token`` may stand for, relative ones read from ``bases``."""
        out: list[str] = []
        for path in self._spellings(token):
            if os.path.isabs(path):
                out.append(_collapse_root(path))
            else:
                out.extend(os.path.join(base, path) for base in bases)
        return out

    def _resolve(self, absolute: str, call: _Call, depth: int = 0) -> str:
        """``absolute`` with its symbolic links resolved, as the kernel would, within the call's budget."""
        root, rest = _split_root(absolute)
        return self._walk(root, rest, call, depth)

    def _walk(self, current: str, relative: str, call: _Call, depth: int) -> str:
        parts = relative.replace(os.altsep, os.sep).split(os.sep) if os.altsep else relative.split(os.sep)
        for index, name in enumerate(parts):
            if not name or name == ".":
                continue
            if name == "..":
                current = os.path.dirname(current)
                continue
            known = self._lookup(current, name, call, depth)
            if known is None:
                # Nothing there: the kernel would stop; a program that normalises first reads on.
                return os.path.normpath(os.path.join(current, name, *parts[index + 1 :]))
            current = known
        return current

    def _lookup(self, directory: str, name: str, call: _Call, depth: int) -> str | None:
        """The real path of ``name`` in the real ``directory``, None when nothing is there. A directory
        looked into often in one call is listed once instead."""
        candidate = directory + name if directory.endswith(os.sep) else directory + os.sep + name
        if candidate in call.resolved:
            return call.resolved[candidate]
        listing = call.listings.get(directory, _UNLISTED)
        if listing is _UNLISTED and call.probes.get(directory, 0) >= _LIST_AFTER:
            listing = self._listing(directory, call)
        result: str | None = candidate
        if isinstance(listing, dict):
            is_link = listing.get(name)
            if is_link is None:
                result = None
            elif is_link:
                result = self._follow(candidate, call, depth)
        else:
            call.probes[directory] = call.probes.get(directory, 0) + 1
            call.spend()
            try:
                mode = os.lstat(candidate).st_mode
            except (OSError, ValueError):
                result = None
            else:
                if stat.S_ISLNK(mode):
                    result = self._follow(candidate, call, depth)
        call.resolved[candidate] = result
        return result

    def _follow(self, link: str, call: _Call, depth: int) -> str | None:
        """Where the symbolic link ``link`` leads (None: nowhere the kernel would reach)."""
        if depth >= _MAX_LINK_DEPTH:
            return None
        call.spend()
        try:
            target = self._fold(os.readlink(link))
        except (OSError, ValueError):
            return None
        if os.path.isabs(target):
            return self._resolve(target, call, depth + 1)
        return self._walk(os.path.dirname(link), target, call, depth + 1)

    def _listing(self, directory: str, call: _Call) -> dict[str, bool] | None:
        """The names in ``directory`` (folded) and which are symbolic links (None when it cannot be read);
        a lookup per 16 entries."""
        if directory in call.listings:
            return call.listings[directory]
        names: dict[str, bool] = {}
        call.spend()
        try:
            with os.scandir(directory) as found:
                for count, entry in enumerate(found, 1):
                    if count % 16 == 0:
                        call.spend()
                    names[self._fold(entry.name)] = entry.is_symlink()
        except (FileNotFoundError, NotADirectoryError):
            names = {}  # nothing is there, so nothing below it either
        except OSError:
            call.listings[directory] = None  # not readable: each name is looked up on its own
            return None
        call.listings[directory] = names
        return names

    def _links(self, directory: str, call: _Call) -> frozenset[str]:
        """Names (folded) of the symbolic links in ``directory`` (as written)."""
        if directory == self._cwd_norm:
            return self._cwd_links(call)
        listing = self._listing(self._real_base(directory, call), call)
        return frozenset(name for name, is_link in (listing or {}).items() if is_link)

    def _cwd_stat(self, call: _Call) -> os.stat_result | None:
        """The working directory's status, asked once a call (None when it is gone)."""
        if call.cwd_stat is False:
            try:
                call.cwd_stat = os.stat(self._cwd_real)
            except OSError:
                call.cwd_stat = None
        return call.cwd_stat if isinstance(call.cwd_stat, os.stat_result) else None

    def _real_base(self, base: str, call: _Call) -> str:
        """Where a directory as written really is. The working directory's real path, found at start, holds
        while it still names the same directory: one status call instead of a lookup per segment."""
        if base == self._cwd_norm:
            found = self._cwd_stat(call)
            if found is not None and (found.st_dev, found.st_ino) == self._cwd_id:
                return self._cwd_real
        return self._resolve(base, call)

    def _cwd_links(self, call: _Call) -> frozenset[str]:
        """The working directory's symbolic links: listed again only when its mtime moves, read once a call."""
        if call.cwd_links is not None:
            return call.cwd_links
        call.cwd_links = frozenset()
        found = self._cwd_stat(call)
        if found is None:
            return call.cwd_links
        stamp = found.st_mtime_ns
        cached = self._cwd_links_cache
        # A directory changed within the last second may change again within the same mtime tick.
        if cached is not None and cached[0] == stamp and time.time_ns() - stamp > 1_000_000_000:
            call.cwd_links = cached[1]
            return cached[1]
        names: set[str] = set()
        try:
            with os.scandir(self._cwd_real) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        names.add(self._fold(entry.name))
        except OSError:
            pass
        self._cwd_links_cache = (stamp, frozenset(names))
        call.cwd_links = self._cwd_links_cache[1]
        return call.cwd_links

    # --- matching -----------------------------------------------------------------------------

    def _match(self, path: str) -> Path | None:
        folded = self._fold(path)
        parent, name = os.path.split(folded)
        for base_name, original in self._families.get(parent, ()):
            if _in_family(name, base_name):
                return original
        inside = self._inside_dir(folded)
        if inside is not None:
            return inside
        if _GLOB.search(path):
            return self._glob_match(folded)
        return None

    def _inside_dir(self, folded: str) -> Path | None:
        for form, path in self._dirs:
            if folded == form or folded.startswith(form.rstrip(os.sep) + os.sep):
                return path
        return None

    def _glob_match(self, folded: str) -> Path | None:
        pattern = _Glob(self._parts(folded))
        for parts, path, is_dir in self._entries:
            if pattern.matches(parts, prefix=is_dir):
                return path
        return None

    def _tail_match(self, relative: str) -> Path | None:
        """The protected path ``relative`` may name from some unknown folder: its first segments are the
        protected path's last ones (for a file, all of them)."""
        segments = [s for s in _SEP_RUN.split(os.path.normpath(relative)) if s not in ("", ".", "..")]
        for parts, path, is_dir in self._entries:
            tail = parts[1:]
            for k in range(1, min(len(segments), len(tail)) + 1):
                if not (is_dir or k == len(segments)):
                    continue
                head, last = segments[: k - 1], segments[k - 1]
                if all(_segment_matches(s, t) for s, t in zip(head, tail[-k:-1], strict=True)) and (
                    _segment_matches(last, tail[-1]) or (not is_dir and _in_family(last, tail[-1]))
                ):
                    return path
        return None

    # --- normalisation ------------------------------------------------------------------------

    def _fold(self, text: str) -> str:
        return text.casefold() if self._ci else text

    def _expanduser(self, path: str) -> str:
        if self._home is not None and (path == "~" or path.startswith(("~/", "~" + os.sep))):
            return self._home + path[1:]
        return os.path.expanduser(path)

    def _forms(self, absolute: str) -> set[str]:
        return {self._fold(os.path.normpath(absolute)), self._fold(os.path.realpath(absolute))}

    @staticmethod
    def _parts(path: str) -> list[str]:
        drive, rest = os.path.splitdrive(path)
        return [drive, *[part for part in _SEP_RUN.split(rest) if part]]


def guard_paths_for(
    policy_path: Path | None,
    lock_file: Path | None,
    audit_path: Path | None,
    store_path: Path | None,
    state_url: str | None,
    *,
    record: Path | None = None,
    cwd: str | os.PathLike[str] | None = None,
    max_chars: int = MAX_CHARS,
    max_values: int = MAX_VALUES,
    max_fs_lookups: int = MAX_FS_LOOKUPS,
) -> ProtectedPaths:
    """What a guard with this configuration protects: the live guard and ``mcp-guard explain`` both use it.

    The guard's own folders (its user config, state, data and log folders, named ``mcp-guard``
    by platformdirs) are protected whole, whatever is in them. A file the user placed
    elsewhere (the policy, a lock file, ``--audit-log``, ``--store``, ``--record``, a ``--state sqlite:``
    file) is protected with the siblings the guard writes beside it (rotations, locks,
    SQLite journals, temporary files, and the policy's default lock ``NAME.lock.json``), not
    with its folder: that folder is often the user's project or working directory, and
    protecting it would refuse every relative path. ``cwd``: the server's working directory
    (default: this process's).
    """
    from mcp_guard import paths

    folders = [paths.config_dir(), paths.state_dir(), paths.secret_path().parent, paths.audit_log_path().parent]
    files = [path for path in (policy_path, lock_file, audit_path, store_path, record) if path is not None]
    if policy_path is not None:
        from mcp_guard.paths import default_lock_path

        files.append(default_lock_path(policy_path))
    if state_url is not None and state_url.startswith("sqlite:"):
        from mcp_guard.limits.store import sqlite_path

        try:
            files.append(sqlite_path(state_url))
        except ValueError:
            pass  # the guard refuses to start with that URL and says why
    return ProtectedPaths(
        files,
        os.getcwd() if cwd is None else cwd,
        directories=folders,
        max_chars=max_chars,
        max_values=max_values,
        max_fs_lookups=max_fs_lookups,
    )


def _in_family(name: str, base_name: str) -> bool:
    """Whether ``name`` is the protected file ``base_name`` or one the guard writes beside it
    (``NAME.1``, ``NAME.lock``, ``NAME-wal``, ``.NAME.*.tmp``)."""
    if name.startswith(base_name):
        return len(name) == len(base_name) or name[len(base_name)] in ".-"
    return name.startswith("." + base_name + ".")


def _segment_matches(segment: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, segment) if _GLOB.search(segment) else segment == name


class _Glob:
    """A path pattern by segments (``**`` spans any number), matched against paths by segments."""

    __slots__ = ("segments", "stars_after")

    def __init__(self, pattern: list[str]) -> None:
        segments = [s for i, s in enumerate(pattern) if not (s == "**" and i and pattern[i - 1] == "**")]
        self.segments = [(s, s != "**" and _GLOB.search(s) is not None) for s in segments]
        # stars_after[i]: every segment from i on is ``**`` (they match nothing as well)
        self.stars_after = [True] * (len(segments) + 1)
        for i in range(len(segments) - 1, -1, -1):
            self.stars_after[i] = self.stars_after[i + 1] and segments[i] == "**"

    def matches(self, parts: list[str], *, prefix: bool) -> bool:
        """Whether the pattern matches ``parts``; with ``prefix``, also something below them."""
        reach = [True] + [False] * len(parts)  # reach[j]: the segments so far match parts[:j]
        for i, (segment, is_glob) in enumerate(self.segments):
            if reach[-1] and (prefix or self.stars_after[i]):
                return True
            if segment == "**":
                spread = False
                for j, here in enumerate(reach):
                    spread = spread or here
                    reach[j] = spread
            elif is_glob:
                reach = [False] + [reach[j] and fnmatch.fnmatchcase(name, segment) for j, name in enumerate(parts)]
            else:
                reach = [False] + [reach[j] and name == segment for j, name in enumerate(parts)]
            if not any(reach):
                return False
        return reach[-1]


def _file_uri_paths(uri: str) -> list[str]:
    """The local path(s) a ``file:`` URI names, percent-decoded; an unknown host is read as a path segment."""
    rest = uri[5:].split("?", 1)[0].split("#", 1)[0]
    paths: list[str] = []
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host.lower() in ("", "localhost"):
            paths.append("/" + path)
        else:
            paths.append("/" + host + "/" + path)
    else:
        paths.append(rest)
    decoded = [unquote(path) for path in paths]
    if os.name == "nt":
        decoded = [p[1:] if re.match(r"/[A-Za-z]:", p) else p for p in decoded]
    return decoded


def _shorten(token: str, limit: int = 200) -> str:
    return token if len(token) <= limit else token[: limit - 3] + "..."
