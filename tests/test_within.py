"""``within``, the pure function: paths compared as paths, attacks included, every platform's reading."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_guard.policy.within import MACOS, MAX_PATH_CHARS, POSIX, WINDOWS, Flavour, PathProblem, directories

REFUSED = "refused"  # PathProblem: the engine refuses the call whatever the rule says
HOME = "/home/u"
ROOTS = ["/srv/data", "~/notes"]


def answer(value: Any, roots: Any = ROOTS, flavour: Flavour = POSIX, home: str = HOME) -> bool | str:
    compiled = directories(roots, flavour, home)
    try:
        return compiled.answer(value, home)
    except PathProblem:
        return REFUSED


LONG_INSIDE = "/srv/data/" + "a/" * 10_000
LONG_ESCAPE = "/srv/data/" + "a/" * 5_000 + "../" * 5_001 + "etc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # inside, however written
        ("/srv/data", True),
        ("/srv/data/", True),
        ("/srv/data/x.txt", True),
        ("//srv/data", True),
        ("//srv//data///x", True),
        ("/srv/./data/./x", True),
        ("/srv/data/x/../y", True),
        ("/../srv/data/x", True),  # /.. is /
        ("/srv/data/a b/c", True),
        ("/srv/data/a\nb", True),  # a newline is a legal file-name character
        ("/srv/data/caf\u00e9", True),
        ("~/notes", True),
        ("~/notes/today.md", True),
        # outside
        ("/srv/data/..", False),
        ("/srv/data/../etc", False),
        ("/srv/data/../etc/passwd", False),
        ("/srv/data/./../../etc", False),
        ("/srv/data/x/../../etc", False),
        ("/srv/data2/x", False),
        ("/srv/dat", False),
        ("/srv", False),
        ("/", False),
        ("/etc/passwd", False),
        ("~", False),
        ("~/notes2/x", False),
        ("~/notes/../.ssh/id_ed25519", False),
        # file URLs
        ("file:///srv/data/x", True),
        ("file://localhost/srv/data/x", True),
        ("FILE://LocalHost/srv/data/x", True),
        ("file:/srv/data/x", True),
        ("file:////srv/data/x", True),
        ("file:///srv/data/my%20file.txt", True),
        ("file:///srv/data/caf%C3%A9", True),
        ("file:///srv/%64ata/x", True),
        ("file:///srv/data/%2e%2e/etc", False),  # %2e%2e is .. in a URL
        ("file:///srv/data/%2E%2E%2Fetc", False),
        ("file:///srv/data/../etc", False),
        ("file:///etc/passwd", False),
        ("file:///srv/data/%252e%252e/etc", REFUSED),  # %2e%2e once decoded, .. twice: readers disagree
        ("file:///srv/data/..\\..\\etc", REFUSED),  # a WHATWG parser reads \ as /
        ("file://host/srv/data", REFUSED),
        ("file://localhost.evil/srv/data", REFUSED),
        ("file://user@localhost/srv/data", REFUSED),
        ("file:srv/data", REFUSED),
        ("file:///srv/data/x?y", REFUSED),
        ("file:///srv/data/x#y", REFUSED),
        ("file:///srv/da\tta/x", REFUSED),
        (" file:///srv/data/x", REFUSED),  # not a URL to Python: a relative path
        ("file:///srv/data/x ", REFUSED),
        ("file:///srv/data/%00/../../etc", REFUSED),
        # percent-encoding in plain paths: a literal name to most servers, a separator to some
        ("/srv/data/100%", True),
        ("/srv/data/a%20b", True),
        ("/srv/data/%ff", True),
        ("/srv/data/%zz", True),
        ("/srv/data/%2e%2e/etc", REFUSED),
        ("/srv/data/%2e%2e", REFUSED),
        ("/srv/data/..%2f..%2fetc", REFUSED),
        ("/srv/data/%252e%252e/etc", REFUSED),
        ("/srv/data/%2525252e", REFUSED),  # still decoding after three rounds
        ("/srv/data/a%00b", REFUSED),
        ("/srv/%64ata/x", REFUSED),  # outside as written, inside decoded
        ("/etc/%2e%2e/srv/data/x", REFUSED),  # outside decoded, inside as written
        # backslashes: literal on POSIX, but where reading them as separators changes the answer, refused
        ("/srv/data/a\\b", True),
        ("/srv/data/a\\..\\x", True),  # /srv/data/x with \\ as /
        ("/srv/data/..\\x", REFUSED),  # /srv/x with \\ as /
        ("/srv/data/..\\..\\etc", REFUSED),
        ("/etc\\..\\srv\\data\\x", REFUSED),  # outside as written, /srv/data/x with \\ as /
        # NUL
        ("/srv/data/\x00/../..", REFUSED),
        ("/srv/data/x\x00", REFUSED),
        # not absolute
        ("data/x", REFUSED),
        ("./data/x", REFUSED),
        ("../srv/data", REFUSED),
        ("", REFUSED),
        ("srv/data", REFUSED),
        ("C:\\srv\\data", REFUSED),
        ("C:/srv/data", REFUSED),
        ("%2fsrv/data", REFUSED),
        ("https://example.com/srv/data", REFUSED),
        ("~root/x", REFUSED),
        ("~u/notes", REFUSED),
        ("~\\notes", REFUSED),
        # long paths: lexical work stays linear; past the limit, refused
        (LONG_INSIDE, True),
        (LONG_ESCAPE, False),
        ("/srv/data/" + "x" * MAX_PATH_CHARS, REFUSED),
        # not strings
        (5, REFUSED),
        (None, REFUSED),
        (True, REFUSED),
        ({"path": "/srv/data"}, REFUSED),
        # lists: within when all are, not when none is, refused when mixed or empty
        (["/srv/data/a", "~/notes/b"], True),
        (["/etc/a", "/tmp/b"], False),
        (["/srv/data/a", "/etc/passwd"], REFUSED),
        ([], REFUSED),
        (["/srv/data/a", 3], REFUSED),
        (["/srv/data/a", "rel"], REFUSED),
    ],
)
def test_posix_table(value: Any, expected: bool | str) -> None:
    assert answer(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C:\\Data\\x", True),
        ("C:/Data/x", True),
        ("c:\\data\\X", True),  # NTFS ignores case
        ("C:\\Data", True),
        ("C:\\Data\\", True),
        ("C:\\Data\\.\\x\\..\\y", True),
        ("C:\\Data\\..\\Windows", False),
        ("C:\\Data2\\x", False),
        ("D:\\Data\\x", False),
        ("C:\\Data\\..\\..\\..\\Data\\x", True),  # never above the drive's root
        ("\\\\server\\share\\x", True),
        ("\\\\SERVER\\Share\\x\\..\\y", True),
        ("\\\\server\\other\\x", False),
        ("\\\\server\\share\\..\\other", True),  # never above the share
        ("file:///C:/Data/x", True),
        ("file:///C|/Data/x", True),
        ("file://localhost/c:/data/x", True),
        ("file://server/share/x", True),
        ("file:///C:/Data/%2e%2e/Windows", False),
        ("~\\Documents\\x", False),
        ("~/x", False),
        ("\\Data\\x", REFUSED),  # rooted on whichever drive is current
        ("C:Data\\x", REFUSED),  # relative to the drive's current directory
        ("Data\\x", REFUSED),
        ("/srv/data", REFUSED),
        ("\\\\?\\C:\\Data\\x", REFUSED),
        ("\\\\.\\C:\\Data\\x", REFUSED),
        ("C:\\Data\\x.", REFUSED),  # Win32 strips trailing dots and spaces
        ("C:\\Data\\x ", REFUSED),
        ("C:\\Data\\...\\x", REFUSED),
        ("C:\\Data\\x::$DATA", REFUSED),
        ("C:\\Data\\CON", REFUSED),
        ("C:\\Data\\nul.txt", REFUSED),
        ("C:\\Data\\COM1", REFUSED),
        ("C:\\PROGRA~1\\x", REFUSED),  # an 8.3 short name may stand for any long one
        ("C:\\Data\\REPORT~2.DOC", REFUSED),
        ("C:\\Data\\backup~2024.txt", True),  # too long for a short name
        ("\\\\server", REFUSED),
        ("C:\\Data\\x\x00", REFUSED),
    ],
)
def test_windows_table(value: str, expected: bool | str) -> None:
    roots = ["C:\\Data", "\\\\server\\share"]
    assert answer(value, roots, WINDOWS, "C:\\Users\\u") == expected


def test_windows_home() -> None:
    assert answer("~\\Documents\\x", ["~\\Documents"], WINDOWS, "C:\\Users\\u") is True
    assert answer("~/Documents/x", ["C:\\Users\\u"], WINDOWS, "C:\\Users\\u") is True
    assert answer("~\\..\\v", ["C:\\Users\\u"], WINDOWS, "C:\\Users\\u") is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/Users/u/data/x", True),
        ("/Users/u/data", True),
        ("/Users/u/other", False),
        ("/users/u/DATA/x", REFUSED),  # inside on a case-insensitive volume, outside on a case-sensitive one
        ("/Users/u/data/Caf\u0065\u0301", True),
    ],
)
def test_macos_table(value: str, expected: bool | str) -> None:
    assert answer(value, ["/Users/u/data"], MACOS, "/Users/u") == expected


def test_macos_deny_side_is_refused_too() -> None:
    # A deny list must not be dodged by spelling /etc as /ETC where the volume ignores case.
    assert answer("/ETC/passwd", ["/etc"], MACOS) == REFUSED
    assert answer("/ETC/passwd", ["/etc"], POSIX) is False  # a different directory on Linux


@pytest.mark.parametrize(
    ("roots", "message", "index"),
    [
        ("data", "'data' is not an absolute path; write it in full", None),
        (["/srv/data", "relative/dir"], "'relative/dir' is not an absolute path", 1),
        ([], "at least one directory", None),
        (5, "a directory (an absolute path string)", None),
        (["/srv", 5], "a directory (an absolute path string)", 1),
        ("", "a directory (an absolute path string)", None),
        ("/srv/\x00", "NUL", None),
        ("~no_such_user_for_mcp_guard/x", "no such user", None),
        ("file:///srv/data", "not an absolute path", None),
    ],
)
def test_directory_errors(roots: Any, message: str, index: int | None) -> None:
    with pytest.raises(PathProblem) as info:
        directories(roots, POSIX, HOME)
    assert message in info.value.message
    assert info.value.index == index


def test_directories_are_normalised_at_load() -> None:
    assert directories(["/srv//data/.", "/srv/data/", "~/notes", "~", "/"], POSIX, HOME).exact == (
        ("srv", "data"),
        ("srv", "data"),
        ("home", "u", "notes"),
        ("home", "u"),
        (),
    )
    assert directories("/", POSIX, HOME).answer("/anything/at/all", HOME) is True
    assert directories("C:\\Data\\", WINDOWS, "C:\\Users\\u").folded == (("c:", "data"),)


def test_home_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    compiled = directories("~/notes", POSIX)
    assert compiled.exact == (("home", "someone", "notes"),)
    assert compiled.answer("~/notes/a") is True
    monkeypatch.setenv("HOME", "/home/other")
    assert compiled.answer("~/notes/a") is False  # ~ in an argument is read when the call comes


def test_messages_say_what_is_wrong() -> None:
    compiled = directories("/srv/data", POSIX, HOME)
    cases = {
        "data/x": "'data/x' is not an absolute path",
        "/srv/data/%2e%2e/etc": "can be read as different paths",
        "/srv/\x00": "contains a NUL character",
        "file://host/x": "on another host ('host')",
        "~bob/x": "'~user'",
        "x" * (MAX_PATH_CHARS + 1): f"a path of {MAX_PATH_CHARS + 1} characters is longer than {MAX_PATH_CHARS}",
    }
    for value, words in cases.items():
        with pytest.raises(PathProblem) as info:
            compiled.answer(value, HOME)
        assert words in info.value.message, (value, info.value.message)
    with pytest.raises(PathProblem) as info:
        compiled.answer(["/srv/data/a", "/srv/data/%2e%2e/x"], HOME)
    assert info.value.message.startswith("item 1: ") and info.value.index == 1
    with pytest.raises(PathProblem) as info:
        compiled.answer("y" * 200, HOME)
    assert info.value.message == f"{'y' * 60!r}… (200 characters) is not an absolute path"
