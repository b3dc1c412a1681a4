"""Arguments that name the guard's own files: its policy, its lock file, its state and audit log.

A tool that reads or writes files (or runs shell commands) could be asked to rewrite the
policy that constrains it. :class:`ProtectedPaths` looks through every string value of a
call's arguments, at any depth (object keys are not looked at), for a reference to a
protected file, or to anything inside a protected directory (meant for the state and audit
directories), written as:

* an absolute path, a ``~`` or ``~user`` path, or one starting with ``$HOME`` / ``${HOME}``;
* a ``file:`` URI (``file:///…``, ``file://localhost/…``, ``file:/…``), percent-decoded;
* a relative path, resolved against the upstream's working directory;
* any of those inside a longer string, such as a shell command: strings are cut into
  tokens at whitespace, quotes and backticks, and tokens again at ``= : ; , | & < > ( ) { }``;
* a glob (``*``, ``?``, ``[…]``, ``**``) that matches a protected path, segment by segment.

Paths are compared after normalisation: ``.`` and ``..`` segments and repeated slashes are
collapsed, symbolic links are resolved on both sides (``os.path.realpath``) and, on macOS and
Windows, case is folded.

Work is bounded. At most :data:`MAX_CHARS` characters of string values are read per call
(the rest is not looked at; :attr:`ProtectedPaths.last_scan_truncated` says when that
happened). The textual check only looks at words around a protected name, a ``%``, a
wildcard or ``file:`` (at most :data:`MAX_WORDS` per string and trigger), unless the
working directory is itself inside a protected directory. Following symbolic links costs
one file-system lookup per path component, at most :data:`MAX_FS_STEPS` per call; bare
words (no slash) are compared with the names of the working directory's symbolic links
(listed once, again only when the directory's mtime changes), in strings up to
:data:`SHORT_STRING` characters. Typical arguments take some 20-40 µs; a 1 MB string 2-25 ms.

What it cannot see: paths a program builds at run time (``cat $(echo cG9saWN5 | base64 -d)``),
shell quoting tricks that split a name (``pol''icy.json``), variables other than ``HOME``,
a path longer than :data:`MAX_TOKEN` characters (the kernel refuses those anyway), and
symbolic links beyond the lookup budget. It is a tripwire for the obvious cases, not a sandbox.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote

MAX_CHARS = 1_000_000
"""Characters of string values scanned per call; beyond them nothing is looked at."""
MAX_FS_STEPS = 512
"""Path components looked up in the file system (to follow symbolic links) per call: a path costs one per component."""
SHORT_STRING = 4096
"""In strings up to this long, bare words (no slash) are also checked for being symbolic links."""
MAX_TOKEN = 4096
"""Longer tokens are not taken for paths (no file system allows such a path)."""
MAX_WORDS = 1000
"""Words examined per string for each protected name, wildcard or ``%`` found in it."""

# Every pattern here runs in linear time: no pattern can backtrack over a long word.
_WORD = re.compile(r"[^\s\"'`]+")
_QUOTED = re.compile(r"[^\"'`]+")
_WORD_CHARS = re.compile(r"[^\s\"'`]*")
_QUOTED_CHARS = re.compile(r"[^\"'`]*")
_ANY_SEPARATOR = re.compile(r"[=:;,|&<>(){}]")
_SPECIAL = re.compile(r"[%*?\[]")
_SEPARATORS = re.compile(r"[=;,|&<>(){}]+")
_SEPARATORS_AND_COLON = re.compile(r"[=:;,|&<>(){}]+")
_GLOB = re.compile(r"[*?\[]")
_FILE_URI = re.compile(r"(?i)file:[^\s\"'`<>|;&(){}]*")
_HOME_VAR = re.compile(r"^\$(?:HOME\b|\{HOME\})")
_SEPS = (os.sep, os.altsep) if os.altsep else (os.sep,)


def _words_at(text: str, needle: str, *, quoted: bool = False, limit: int = MAX_WORDS) -> Iterator[str]:
    """The words of ``text`` (between whitespace and quotes; ``quoted``: between quotes only) holding ``needle``.

    At most ``limit`` words, each at most ``MAX_TOKEN`` characters either side of the needle.
    """
    chars = _QUOTED_CHARS if quoted else _WORD_CHARS
    position = 0
    for _ in range(limit):
        at = text.find(needle, position)
        if at < 0:
            return
        before = text[max(0, at - MAX_TOKEN) : at][::-1]
        head = chars.match(before)
        tail = chars.match(text, at, at + len(needle) + MAX_TOKEN)
        head_text = head.group()[::-1] if head else ""
        tail_text = tail.group() if tail else ""
        yield head_text + (tail_text or needle)
        position = at + max(len(tail_text), len(needle), 1)


def _pieces(word: str) -> list[str]:
    """The word, then its parts between shell-ish separators (with and without ``:``), each once."""
    out = [word] if len(word) <= MAX_TOKEN else []
    if _ANY_SEPARATOR.search(word) is None:  # the common case, and cheaper than a split
        return out
    for separators in (_SEPARATORS, _SEPARATORS_AND_COLON):
        for piece in separators.split(word):
            if piece and piece not in out and len(piece) <= MAX_TOKEN:
                out.append(piece)
    return out


def _is_pathlike(token: str) -> bool:
    return any(sep in token for sep in _SEPS) or token.startswith(("~", ".", "$"))


class ProtectedPaths:
    """Files (and directories) that tool-call arguments must not name.

    ``paths``: protected files (the file itself matches). ``directories``: protected
    directories (the directory and everything below it match). ``cwd``: the upstream's
    working directory, for relative paths. ``case_insensitive`` defaults to True on macOS
    and Windows. ``home`` replaces ``$HOME`` for ``~`` (tests).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        cwd: str | os.PathLike[str],
        *,
        directories: Sequence[str | os.PathLike[str]] = (),
        case_insensitive: bool | None = None,
        home: str | os.PathLike[str] | None = None,
        max_chars: int = MAX_CHARS,
        max_fs_steps: int = MAX_FS_STEPS,
    ) -> None:
        self._ci = sys.platform in ("darwin", "win32") if case_insensitive is None else case_insensitive
        self._home = os.fspath(home) if home is not None else None
        self.cwd = os.path.abspath(os.fspath(cwd))
        self.max_chars = max_chars
        self.max_fs_steps = max_fs_steps
        self.last_scan_truncated = False
        """Whether the last :meth:`find_reference` stopped at ``max_chars`` before the end."""
        self._links: tuple[int, frozenset[str]] | None = None
        self._files: dict[str, Path] = {}
        self._dirs: list[tuple[str, Path]] = []
        needles: set[str] = set()
        for raw in paths:
            original = Path(os.path.abspath(self._expanduser(os.fspath(raw))))
            for form in self._forms(str(original)):
                self._files.setdefault(form, original)
                needles.add(os.path.basename(form))
        for raw in directories:
            original = Path(os.path.abspath(self._expanduser(os.fspath(raw))))
            for form in self._forms(str(original)):
                if os.path.dirname(form) == form:
                    raise ValueError(f"refusing to protect the root directory {original}")
                self._dirs.append((form, original))
                needles.add(os.path.basename(form))
        self._needles = tuple(sorted(n for n in needles if n))
        self._file_parts = [(self._parts(form), path) for form, path in self._files.items()]
        self._dir_parts = [(self._parts(form), path) for form, path in self._dirs]
        # Inside a protected directory, any relative name may point into it: no needle can filter.
        here = {self._fold(os.path.normpath(self.cwd)), self._fold(os.path.realpath(self.cwd))}
        self._scan_all = any(self._inside_dir(form) is not None for form in here)

    # --- the public check --------------------------------------------------------------------

    def protected(self) -> list[Path]:
        """The protected files and directories, as given (absolute)."""
        return sorted({*self._files.values(), *(path for _, path in self._dirs)})

    def find_reference(self, arguments: object) -> tuple[str, Path] | None:
        """The first string token that refers to a protected path, and that path; None if none does."""
        budget = [self.max_chars, self.max_fs_steps]
        links: list[frozenset[str]] = []  # the working directory's symlinks, looked up once per call if needed
        self.last_scan_truncated = False
        stack: list[object] = [arguments]
        while stack:
            value = stack.pop()
            if isinstance(value, str):
                if budget[0] <= 0:
                    self.last_scan_truncated = True
                    return None
                text = value[: budget[0]]
                if len(text) < len(value):
                    self.last_scan_truncated = True
                budget[0] -= len(text)
                found = self._scan(text, budget, links)
                if found is not None:
                    return found
            elif isinstance(value, dict):
                stack.extend(reversed(list(value.values())))
            elif isinstance(value, (list, tuple)):
                stack.extend(reversed(value))
        return None

    # --- scanning one string ------------------------------------------------------------------

    def _scan(self, text: str, budget: list[int], links: list[frozenset[str]]) -> tuple[str, Path] | None:
        folded = self._fold(text)
        if self._worth_reading(folded):
            for word in self._textual_words(folded):
                for piece in _pieces(word):
                    if not self._scan_all and not self._may_name(piece):
                        continue
                    for absolute in self._absolutes(piece):
                        hit = self._match(os.path.normpath(absolute))
                        if hit is not None:
                            return _shorten(piece), hit
        # Symbolic links: resolve path-like words through the file system, within the budget;
        # bare words (short strings only) are looked up among the working directory's symlinks.
        short = len(text) <= SHORT_STRING
        words: Iterable[str]
        if short:
            words = (m.group() for m in _WORD.finditer(folded))
        else:
            words = itertools.chain.from_iterable(_words_at(folded, sep) for sep in (*_SEPS, "~"))
        for word in words:
            for piece in _pieces(word):
                if not _is_pathlike(piece):
                    if not short:
                        continue
                    if not links:
                        links.append(self._cwd_links())
                    if piece not in links[0]:
                        continue
                for absolute in self._absolutes(piece):
                    cost = absolute.count(os.sep) + 1
                    if cost > budget[1]:
                        return None
                    budget[1] -= cost
                    hit = self._match(self._realpath(absolute))
                    if hit is not None:
                        return _shorten(piece), hit
        return None

    def _worth_reading(self, folded: str) -> bool:
        """Whether the textual pass can find anything in ``folded`` (cheap checks of the whole string)."""
        return (
            self._scan_all
            or any(needle in folded for needle in self._needles)
            or (
                _SPECIAL.search(folded) is not None
                if len(folded) <= SHORT_STRING
                else any(char in folded for char in "%*?[")  # memchr beats a regex scan on long text
            )
            or "file:" in folded.lower()
        )

    def _cwd_links(self) -> frozenset[str]:
        """Names of the symbolic links in the working directory (cached while its mtime stays put)."""
        try:
            stamp = os.stat(self.cwd).st_mtime_ns
        except OSError:
            return frozenset()
        cached = self._links
        # A directory changed within the last second may change again within the same mtime tick.
        if cached is not None and cached[0] == stamp and time.time_ns() - stamp > 1_000_000_000:
            return cached[1]
        names: set[str] = set()
        try:
            with os.scandir(self.cwd) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        names.add(self._fold(entry.name))
        except OSError:
            pass
        self._links = (stamp, frozenset(names))
        return self._links[1]

    def _may_name(self, piece: str) -> bool:
        """Whether ``piece`` could name a protected path without symbolic links (a cheap pre-check)."""
        return (
            any(needle in piece for needle in self._needles)
            or "%" in piece
            or _GLOB.search(piece) is not None
            or piece[:5].lower() == "file:"
        )

    def _textual_words(self, folded: str) -> Iterator[str]:
        """Words (and quoted segments) that could name a protected path without the file system's help.

        Those holding a protected name, ``file:`` URIs, percent-encoded words and path-like
        globs; every word when the working directory is inside a protected directory.
        """
        seen: set[str] = set()
        sources: list[Iterable[str]] = []
        present = [needle for needle in self._needles if needle in folded]
        if self._scan_all:
            sources.append(m.group() for m in _WORD.finditer(folded))
            sources.append(m.group() for m in _QUOTED.finditer(folded))
        else:
            for needle in present:
                sources.append(_words_at(folded, needle))
                sources.append(_words_at(folded, needle, quoted=True))
        if "file:" in folded or "file:" in folded.lower():
            sources.append(m.group() for m in _FILE_URI.finditer(folded))
        if "%" in folded:
            sources.append(_words_at(folded, "%"))
        for wildcard in "*?[":
            if wildcard in folded:
                sources.append(word for word in _words_at(folded, wildcard) if _is_pathlike(word))
        whole = folded.strip() if len(folded) <= 2 * MAX_TOKEN else ""
        if whole and (self._scan_all or present):
            seen.add(whole)
            yield whole
        for source in sources:
            for found in source:
                word = found.strip()
                if word and word not in seen:
                    seen.add(word)
                    yield word

    def _absolutes(self, token: str) -> list[str]:
        """Absolute (not yet normalised) paths ``token`` may stand for: as written, URI-decoded, ``%``-decoded."""
        spellings = [token]
        if token[:5].lower() == "file:":
            spellings = _file_uri_paths(token)
        elif "%" in token:
            spellings.append(unquote(token))
        out: list[str] = []
        for spelling in spellings:
            path = spelling
            if path.startswith("~"):
                path = self._expanduser(path)
            elif path.startswith("$"):
                variable = _HOME_VAR.match(path)
                if variable is None:
                    continue
                home = self._home if self._home is not None else os.path.expanduser("~")
                path = home + path[variable.end() :]
            if not os.path.isabs(path):
                path = os.path.join(self.cwd, path)
            if path.startswith("//"):  # POSIX keeps a leading "//"; the kernel does not care
                path = "/" + path.lstrip("/")
            out.append(path)
        return out

    # --- matching -----------------------------------------------------------------------------

    def _match(self, path: str) -> Path | None:
        folded = self._fold(path)
        hit = self._files.get(folded)
        if hit is not None:
            return hit
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
        pattern = self._parts(folded)
        for parts, path in self._file_parts:
            if _glob_parts(pattern, parts, prefix=False):
                return path
        for parts, path in self._dir_parts:
            if _glob_parts(pattern, parts, prefix=True):
                return path
        return None

    # --- normalisation ------------------------------------------------------------------------

    def _fold(self, text: str) -> str:
        return text.casefold() if self._ci else text

    def _expanduser(self, path: str) -> str:
        if self._home is not None and (path == "~" or path.startswith(("~/", "~" + os.sep))):
            return self._home + path[1:]
        return os.path.expanduser(path)

    def _realpath(self, absolute: str) -> str:
        if not _GLOB.search(absolute):
            return os.path.realpath(absolute)
        # Resolve the directories before the first wildcard; keep the pattern after it.
        parts = absolute.split(os.sep)
        for index, part in enumerate(parts):
            if _GLOB.search(part):
                head = os.sep.join(parts[:index]) or os.sep
                return os.path.join(os.path.realpath(head), *parts[index:])
        return os.path.realpath(absolute)

    def _forms(self, absolute: str) -> set[str]:
        return {self._fold(os.path.normpath(absolute)), self._fold(os.path.realpath(absolute))}

    @staticmethod
    def _parts(path: str) -> list[str]:
        drive, rest = os.path.splitdrive(path)
        return [drive, *[part for part in re.split(r"[\\/]+", rest) if part]]


def _glob_parts(pattern: list[str], parts: list[str], *, prefix: bool) -> bool:
    """Whether the glob ``pattern`` (segments; ``**`` spans any number) matches ``parts``.

    ``prefix``: also when the pattern goes deeper than ``parts`` (something inside a directory).
    """

    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(pattern):
            result = j == len(parts)
        elif j == len(parts):
            result = prefix or all(p == "**" for p in pattern[i:])
        elif pattern[i] == "**":
            result = match(i + 1, j) or match(i, j + 1)
        else:
            result = fnmatch.fnmatchcase(parts[j], pattern[i]) and match(i + 1, j + 1)
        memo[(i, j)] = result
        return result

    if len(pattern) > 64 or len(parts) > 256:
        return False
    return match(0, 0)


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
