"""Load and validate a policy file, with errors that say where and what was expected."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mcp_guard.policy.model import Policy
from mcp_guard.policy.source import PathKey, Position, SourceDocument, SourceError, parse_json, parse_yaml

if TYPE_CHECKING:
    from mcp_guard.policy.cases import Case


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, located in its file."""

    path: PathKey
    message: str
    position: Position | None

    def dotted(self) -> str:
        return dotted_path(self.path)


def dotted_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "(document)"


class PolicyError(Exception):
    """A policy that cannot be used. ``str()`` is the full, human-readable report."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        # In the order of the file, whatever order the checks ran in; problems of the whole file first.
        self.problems = sorted(problems, key=lambda p: (p.position.line, p.position.column) if p.position else (0, 0))
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for p in self.problems:
            where = f"{self.file}:{p.position.line}:{p.position.column}" if p.position else self.file
            field = f" {p.dotted()}:" if p.path else ""
            lines.append(f"{where}:{field} {p.message}")
        return "\n".join(lines)


class PolicyHashMismatch(PolicyError):
    """The policy file is not the one pinned with ``--policy-sha256``."""

    def __init__(self, file: str, actual: str, expected: str) -> None:
        self.actual = actual
        self.expected = expected
        message = f"has SHA-256 {actual}, not the {expected} given with --policy-sha256: it was changed"
        super().__init__(file, [Problem((), message, None)])


def _fields_of(model: type[BaseModel], path: PathKey) -> list[str]:
    """Valid field names at ``path`` inside ``model``, for did-you-mean suggestions."""
    current: list[type[BaseModel]] = [model]
    for part in path:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(part)
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        current = nxt
    names: list[str] = []
    for m in current:
        names.extend(f.alias or name for name, f in m.model_fields.items() if (f.alias or name) not in names)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _expected(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}"
    return str(error["msg"]).removeprefix("Value error, ")


def problems_from(exc: ValidationError, doc: SourceDocument, model: type[BaseModel]) -> list[Problem]:
    """Each error pydantic found validating ``doc`` against ``model``, located in the file, with did-you-mean hints."""
    problems: list[Problem] = []
    seen: set[tuple[PathKey, str]] = set()
    for error in exc.errors(include_url=False):
        loc = _document_path(tuple(error["loc"]))
        kind = error["type"]
        ctx = error.get("ctx") or {}
        got = error.get("input")
        if "field" in ctx:
            # A check across fields names the one field it is about, so the message points at it.
            loc = (*loc, ctx["field"])
            got = ctx.get("input")
        if kind == "extra_forbidden":
            import difflib  # for a misspelt field only: a valid policy's start-up never needs it

            name = str(loc[-1])
            parent = loc[:-1]
            candidates = _fields_of(model, _strip_dict_keys(model, parent))
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else (f"; expected one of: {', '.join(repr(c) for c in candidates)}" if candidates else "")
            )
            message = f"unknown field {name!r}{hint}"
        elif kind == "missing":
            message = f"required field {loc[-1]!r} is missing"
        else:
            message = f"{_expected(error)}; got {got!r}" if not isinstance(got, (dict, list)) else _expected(error)
        key = (loc, message)
        if key in seen:
            continue
        seen.add(key)
        problems.append(Problem(loc, message, doc.position_of(loc)))
    return problems


_CONDITION_LISTS = ("deny_if", "require", "approve_if")
# Fields typed as a number or a string: pydantic names the union member in its paths, the document does not.
_DURATION_FIELDS = ("window", "every", "at")


def _document_path(loc: PathKey) -> PathKey:
    """Drop the names pydantic adds for union members, leaving the path as written in the document."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if (
            isinstance(part, str)
            and i >= 2
            and isinstance(loc[i - 1], int)
            and loc[i - 2] in _CONDITION_LISTS
            and part in ("condition", "group")
        ):
            continue
        if i >= 1 and loc[i - 1] in _DURATION_FIELDS and _is_union_tag(part):
            continue
        if i >= 1 and loc[i - 1] in ("expect", "expect_last") and part in ("word", "mapping"):
            continue
        out.append(part)
    return tuple(out)


def _is_union_tag(part: str | int) -> bool:
    # Only what pydantic names a member (never a tool called "at" or "window" in a path).
    return isinstance(part, str) and (part in ("float", "int", "str") or part.startswith("literal["))


def _strip_dict_keys(model: type[BaseModel], path: PathKey) -> PathKey:
    """Drop free-form dict keys (tool names) from a path so it can be walked through the models."""
    out: list[str | int] = []
    current: list[type[BaseModel]] = [model]
    skip_next = False
    for part in path:
        if skip_next:
            skip_next = False
            continue
        out.append(part)
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(part)
            if field is None:
                continue
            if getattr(field.annotation, "__origin__", None) is dict:
                skip_next = True
            nxt.extend(_models_in(field.annotation))
        current = nxt
    return tuple(out)


def validate_document(doc: SourceDocument, file: str) -> Policy:
    if not isinstance(doc.data, dict):
        raise PolicyError(file, [Problem((), "a policy must be an object with at least a 'version' field", None)])
    try:
        policy = Policy.model_validate(doc.data)
    except ValidationError as exc:
        raise PolicyError(file, problems_from(exc, doc, Policy)) from None
    from mcp_guard.policy.engine import compile_problems

    problems = [Problem(path, msg, doc.position_of(path)) for path, msg in compile_problems(policy)]
    if problems:
        raise PolicyError(file, problems)
    if policy.tests is not None:
        policy_tests(doc, file)
    return policy


def policy_tests(doc: SourceDocument, file: str) -> list[Case]:
    """The cases in a policy's ``tests`` section (none without one), or :class:`PolicyError` saying what is wrong."""
    from mcp_guard.policy.cases import TestsSection, case_problems

    if not isinstance(doc.data, dict) or doc.data.get("tests") is None:
        return []
    try:
        section = TestsSection.model_validate({"tests": doc.data["tests"]})
    except ValidationError as exc:
        raise PolicyError(file, problems_from(exc, doc, TestsSection)) from None
    problems = [Problem(path, msg, doc.position_of(path)) for path, msg in case_problems(section.tests, ("tests",))]
    if problems:
        raise PolicyError(file, problems)
    return section.tests


def load_policy(path: Path, expected_sha256: str | None = None) -> Policy:
    """Read, check and validate a policy file, or raise :class:`PolicyError`.

    The file is read once. With ``expected_sha256`` (``--policy-sha256``) the bytes whose hash
    is checked are the bytes parsed, so a file swapped between a check and a second read can
    never be loaded; a different hash raises :class:`PolicyHashMismatch`.
    """
    return load_document(path, expected_sha256)[0]


def load_document(path: Path, expected_sha256: str | None = None) -> tuple[Policy, SourceDocument]:
    """Like :func:`load_policy`, also returning the parsed source (for locating warnings)."""
    return load_bytes(_read_checked(path, expected_sha256), path)


def load_policy_and_digest(path: Path, expected_sha256: str | None = None) -> tuple[Policy, str]:
    """Like :func:`load_policy`, also returning the SHA-256 of the very bytes loaded (for the start line)."""
    raw = _read_checked(path, expected_sha256)
    return load_bytes(raw, path)[0], hashlib.sha256(raw).hexdigest()


def _read_checked(path: Path, expected_sha256: str | None) -> bytes:
    """The file's bytes, read once, checked against ``expected_sha256`` when given."""
    raw = read_file(path)
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        expected = expected_sha256.strip().lower()
        if actual != expected:
            raise PolicyHashMismatch(str(path), actual, expected)
    return raw


def read_file(path: Path) -> bytes:
    """The bytes of a policy (or policy test) file, or :class:`PolicyError` saying why they cannot be read."""
    file = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(file, [Problem((), "file not found", None)]) from None
    except IsADirectoryError:
        raise PolicyError(file, [Problem((), "is a directory, not a policy file", None)]) from None
    except PermissionError:
        raise PolicyError(file, [Problem((), "permission denied", None)]) from None
    except OSError as exc:
        raise PolicyError(file, [Problem((), f"cannot be read: {exc.strerror or exc}", None)]) from None


def load_bytes(raw: bytes, path: Path) -> tuple[Policy, SourceDocument]:
    """Parse and validate a policy from ``raw``, the bytes of ``path`` (named in messages; a ``.yaml`` or
    ``.yml`` suffix means YAML)."""
    doc = parse_source(raw, path)
    return validate_document(doc, str(path)), doc


def parse_source(raw: bytes, path: Path) -> SourceDocument:
    """``raw`` read as YAML (``.yaml``/``.yml``) or JSON, with positions; :class:`PolicyError` if it is neither."""
    file = str(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(file, [Problem((), f"not valid UTF-8 (byte {exc.start})", None)]) from None
    try:
        return parse_yaml(text) if path.suffix.lower() in (".yaml", ".yml") else parse_json(text)
    except SourceError as exc:
        raise PolicyError(file, [Problem((), exc.message, exc.position)]) from None
