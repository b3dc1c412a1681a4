"""Tool-call arguments checked against the tool's ``inputSchema``.

The ``jsonschema`` library is the judge: each schema is compiled once with the validator
class its ``$schema`` names (Draft 2020-12 when it names none, or one ``jsonschema`` does not
know), without a format checker (``format`` is an annotation, as the 2020-12 spec says by
default), and never fetches a remote ``$ref`` (``jsonschema`` >= 4.18 resolves only what is
in the schema itself).

``jsonschema`` costs some 70-130 µs per check of a typical 12-field object, so valid
arguments take a shortcut: schemas whose validating keywords are all in a common subset
(``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``, ``const``, the
numeric and length bounds, ``pattern``, ``items``, ``allOf``, ``anyOf``, local ``$ref``) are
also compiled to plain Python closures that answer "certainly valid" or "not sure". Only "not
sure" goes to ``jsonschema``, whose answer (and messages) decide; the shortcut can therefore
never accept what ``jsonschema`` would refuse (``tests/test_integrity.py`` checks this with
random schemas and arguments).

Messages name the field and what was expected, best match first, at most
:data:`MAX_ERRORS` of them: ``arguments.amount: -5 is less than the minimum of 0``.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, Literal
from urllib.parse import unquote

from mcp_guard.integrity.pins import canonical_json, json_path

MAX_ERRORS = 3
"""Errors named in one message (the best match first)."""
ERRORS_EXAMINED = 50
"""Errors collected from ``jsonschema`` to pick the best match from."""
MAX_VALUE_REPR = 60
"""A value quoted in a message is cut to this many characters."""
MAX_MESSAGE = 1000
ROOT = "arguments"

Check = Callable[[Any], bool]
"""A compiled shortcut: True if the instance is certainly valid, False if not sure."""


def schema_digest(schema: object) -> str:
    return hashlib.sha256(canonical_json(schema)).hexdigest()


# --- the shortcut ---------------------------------------------------------------------------------


class _Unsupported(Exception):
    """The schema uses something the shortcut does not model: jsonschema alone decides."""


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    # draft 6 and later: 1.0 is an integer; bool is never a number
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
}

_SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "allOf",
        "anyOf",
        "$ref",
        "format",  # an annotation: no format checker is given to jsonschema
    }
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounded(ok: Callable[[Any, Any], bool], bound: Any, x: Any) -> bool:
    return not isinstance(x, (int, float)) or isinstance(x, bool) or ok(x, bound)


def _scalar_key(value: Any) -> tuple[str, Any]:
    """Equality as jsonschema's ``equal`` sees it, for scalars: bool apart from numbers, 1 == 1.0."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    raise _Unsupported("non-scalar enum/const value")


def _enum_check(values: list[Any]) -> Check:
    if all(isinstance(v, str) for v in values):
        strings = frozenset(values)
        return lambda x: isinstance(x, str) and x in strings
    keys = frozenset(_scalar_key(v) for v in values)

    def check(x: Any) -> bool:
        if not (x is None or isinstance(x, (str, bool, int, float))):
            return False
        return _scalar_key(x) in keys

    return check


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    every = tuple(checks)

    def all_of(x: Any) -> bool:
        for check in every:  # noqa: SIM110 (a plain loop: no generator per call)
            if not check(x):
                return False
        return True

    return all_of


def _any_of(checks: list[Check]) -> Check:
    branches = tuple(checks)

    def any_of(x: Any) -> bool:
        for check in branches:  # noqa: SIM110 (a plain loop: no generator per call)
            if check(x):
                return True
        return False

    return any_of


class _Compiler:
    def __init__(self, root: Any, validating: frozenset[str]) -> None:
        self.root = root
        self.validating = validating
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise _Unsupported("schema is not an object")
        if "$id" in schema and schema is not self.root:
            raise _Unsupported("$id below the root")
        checks: list[Check] = []
        for keyword in schema:
            if keyword in _SUPPORTED or keyword not in self.validating:
                continue
            raise _Unsupported(keyword)
        if "type" in schema:
            checks.append(self._type(schema["type"]))
        if "enum" in schema:
            if not isinstance(schema["enum"], list):
                raise _Unsupported("enum")
            checks.append(_enum_check(schema["enum"]))
        if "const" in schema:
            checks.append(_enum_check([schema["const"]]))
        checks.extend(self._numbers(schema))
        checks.extend(self._strings(schema))
        checks.extend(self._arrays(schema))
        checks.extend(self._objects(schema))
        for branch in schema.get("allOf", ()):
            checks.append(self.compile(branch))
        if "anyOf" in schema:
            checks.append(_any_of([self.compile(branch) for branch in schema["anyOf"]]))
        if "$ref" in schema:
            checks.append(self._ref(schema["$ref"]))
        return _all_of(checks)

    def _type(self, declared: Any) -> Check:
        names = [declared] if isinstance(declared, str) else list(declared)
        if any(name not in _TYPE_TESTS for name in names):
            raise _Unsupported("unknown type")
        if all(name in _PY_TYPES for name in names) and "boolean" not in names:
            exact = tuple(t for name in names for t in _PY_TYPES[name])
            return lambda x: isinstance(x, exact)
        tests = [_TYPE_TESTS[name] for name in names]
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(test(x) for test in tests)

    def _numbers(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        comparisons: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = (
            ("minimum", operator.ge),
            ("maximum", operator.le),
            ("exclusiveMinimum", operator.gt),
            ("exclusiveMaximum", operator.lt),
        )
        for keyword, ok in comparisons:
            if keyword in schema:
                bound = schema[keyword]
                if not _is_number(bound):
                    raise _Unsupported(f"{keyword} is not a number")
                checks.append(partial(_bounded, ok, bound))
        return checks

    def _strings(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None or high is not None:
            lo = 0 if low is None else self._count(low)
            hi = None if high is None else self._count(high)
            if hi is None:
                checks.append(lambda x: not isinstance(x, str) or len(x) >= lo)
            else:
                checks.append(lambda x: not isinstance(x, str) or lo <= len(x) <= hi)
        if "pattern" in schema:
            try:
                search = re.compile(schema["pattern"]).search
            except (re.error, TypeError):
                raise _Unsupported("pattern") from None
            checks.append(lambda x: not isinstance(x, str) or search(x) is not None)
        return checks

    def _arrays(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "items" in schema:
            items = schema["items"]
            if not isinstance(items, (dict, bool)):
                raise _Unsupported("items as an array")
            each = self.compile(items)
            checks.append(lambda x: not isinstance(x, list) or all(each(item) for item in x))
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None or high is not None:
            lo = 0 if low is None else self._count(low)
            hi = float("inf") if high is None else self._count(high)
            checks.append(lambda x: not isinstance(x, list) or lo <= len(x) <= hi)
        return checks

    def _objects(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise _Unsupported("properties")
        compiled = {name: self.compile(sub) for name, sub in properties.items()}
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise _Unsupported("required")
        needed = tuple(required)
        extra = schema.get("additionalProperties", True)
        if "patternProperties" in schema:
            raise _Unsupported("patternProperties")
        extra_check = None if extra is True else self.compile(extra)
        items = tuple(compiled.items())

        def check_object(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in needed:
                if name not in x:
                    return False
            for name, sub in items:
                if name in x and not sub(x[name]):
                    return False
            if extra_check is not None:
                for name, value in x.items():
                    if name not in compiled and not extra_check(value):
                        return False
            return True

        if compiled or needed or extra_check is not None:
            checks.append(check_object)
        low, high = schema.get("minProperties"), schema.get("maxProperties")
        if low is not None or high is not None:
            lo = 0 if low is None else self._count(low)
            hi = float("inf") if high is None else self._count(high)
            checks.append(lambda x: not isinstance(x, dict) or lo <= len(x) <= hi)
        return checks

    def _ref(self, ref: Any) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#") or "$id" in self.root:
            raise _Unsupported("non-local $ref")
        if ref in self.refs:
            return self.refs[ref]
        target: Any = self.root
        pointer = unquote(ref[1:])
        if pointer:
            if not pointer.startswith("/"):
                raise _Unsupported("$ref to an anchor")
            for raw in pointer[1:].split("/"):
                token = raw.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and token in target:
                    target = target[token]
                elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                    target = target[int(token)]
                else:
                    raise _Unsupported("unresolvable $ref")
        slot: list[Check] = []

        def through(x: Any) -> bool:  # recursion through the same $ref finds this before slot is filled
            return slot[0](x)

        self.refs[ref] = through
        slot.append(self.compile(target))
        return self.refs[ref]

    @staticmethod
    def _count(value: Any) -> int:
        if type(value) is int and value >= 0:
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise _Unsupported("bound is not a non-negative integer")


def compile_shortcut(schema: Any, validator_class: Any) -> Check | None:
    """The "certainly valid" shortcut for ``schema``, or None when it uses anything beyond the subset.

    Drafts 6 and later only (draft 4's ``exclusiveMinimum`` is a boolean, its integers exclude 1.0).
    """
    from jsonschema import validators  # type: ignore[import-untyped, unused-ignore]

    drafts = (
        validators.Draft6Validator,
        validators.Draft7Validator,
        validators.Draft201909Validator,
        validators.Draft202012Validator,
    )
    if validator_class not in drafts:
        return None
    compiler = _Compiler(schema, frozenset(validator_class.VALIDATORS))
    try:
        return compiler.compile(schema)
    except (_Unsupported, RecursionError, TypeError, ValueError):
        return None


# --- messages -------------------------------------------------------------------------------------


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) <= MAX_VALUE_REPR:
        return text
    return text[: MAX_VALUE_REPR - 3] + "..."


def _error_text(error: Any) -> str:
    """``path: message`` for one jsonschema error, with long values cut short."""
    path = list(error.absolute_path)
    validator = error.validator
    instance = error.instance
    if validator == "required" and isinstance(instance, dict):
        missing = [name for name in error.validator_value if isinstance(name, str) and name not in instance]
        # jsonschema reports each missing property as its own error: "'name' is a required property".
        named = [name for name in missing if error.message.startswith(repr(name))] or missing
        if named:
            return f"{json_path([*path, named[0]], ROOT)}: required but missing"
    message: str = error.message
    if len(message) > MAX_VALUE_REPR * 2:
        full = repr(instance)
        if len(full) > MAX_VALUE_REPR:
            message = message.replace(full, _short_repr(instance))
    schema = error.schema if isinstance(error.schema, dict) else {}
    if (
        validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(instance, dict)
        and "patternProperties" not in schema
    ):
        known = schema.get("properties", {})
        extras = sorted((name for name in instance if name not in known), key=str)
        names = ", ".join(sorted(map(str, known)))
        allowed = f" (allowed: {names})" if names and len(names) <= 300 else " (no other properties allowed)"
        if len(extras) == 1:
            return f"{json_path([*path, extras[0]], ROOT)}: unexpected property{allowed}"
        shown = ", ".join(repr(name) for name in extras[:10]) + (", ..." if len(extras) > 10 else "")
        return f"{json_path(path, ROOT)}: unexpected properties {shown}{allowed}"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return f"{json_path(path, ROOT)}: {message}"


def _chain(error: Any) -> set[int]:
    ids = set()
    while error is not None:
        ids.add(id(error))
        error = error.parent
    return ids


def describe_errors(errors: list[Any]) -> str:
    """The best match first, then others in schema order, at most :data:`MAX_ERRORS`; ``; and N more``."""
    from jsonschema.exceptions import best_match  # type: ignore[import-untyped, unused-ignore]

    best = best_match(errors)
    if best is None:
        return f"{ROOT}: invalid"
    skip = _chain(best)
    texts = [_error_text(best)]
    hidden = 0
    for error in errors:
        if id(error) in skip:
            continue
        text = _error_text(error)
        if text in texts:
            continue
        if len(texts) < MAX_ERRORS:
            texts.append(text)
        else:
            hidden += 1
    if hidden:
        texts[-1] += f"; and {hidden}{'+' if len(errors) >= ERRORS_EXAMINED else ''} more"
    return "; ".join(texts)


# --- compiled schemas -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledSchema:
    """One ``inputSchema``, ready to check arguments against."""

    digest: str
    validator: Any  # a jsonschema validator instance, or None when the schema itself is invalid
    shortcut: Check | None
    schema_error: str | None  # why the schema is not a valid JSON Schema, if it is not
    draft: str

    def check(self, arguments: Any) -> str | None:
        """None if ``arguments`` (None counts as ``{}``) are valid, else a message naming the fields."""
        instance = {} if arguments is None else arguments
        shortcut = self.shortcut
        if shortcut is not None:
            try:
                if shortcut(instance):
                    return None
            except RecursionError:
                pass
        validator = self.validator
        if validator is None:
            return None
        try:
            errors = list(islice(validator.iter_errors(instance), ERRORS_EXAMINED))
        except RecursionError:
            return f"{ROOT}: nested too deeply to check against the tool's inputSchema"
        except Exception as exc:  # a schema jsonschema accepted but cannot apply (e.g. an unresolvable $ref)
            problem = f"{type(exc).__name__}: {exc}"
            return f"{ROOT}: cannot be checked against the tool's inputSchema: {problem}"[:MAX_MESSAGE]
        if not errors:
            return None
        return describe_errors(errors)


def compile_schema(schema: Any, *, digest: str | None = None) -> CompiledSchema:
    """Compile ``schema`` with the validator class its ``$schema`` names (default Draft 2020-12)."""
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped, unused-ignore]
    from jsonschema.validators import (  # type: ignore[import-untyped, unused-ignore]
        Draft202012Validator,
        validator_for,
    )

    digest = digest or schema_digest(schema)
    if not isinstance(schema, (dict, bool)):
        return CompiledSchema(digest, None, None, "inputSchema is not a JSON object", "")
    cls = validator_for(schema, default=Draft202012Validator)
    draft = str(cls.META_SCHEMA.get("$schema", "")) if isinstance(cls.META_SCHEMA, dict) else ""
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = json_path(list(exc.absolute_path), "inputSchema")
        return CompiledSchema(digest, None, None, f"{where}: {exc.message}"[:MAX_MESSAGE], draft)
    except RecursionError:
        return CompiledSchema(digest, None, None, "inputSchema is nested too deeply", draft)
    validator = cls(schema)
    return CompiledSchema(digest, validator, compile_shortcut(schema, cls), None, draft)


class ArgumentValidator:
    """Checks ``tools/call`` arguments against ``inputSchema``; each distinct schema is compiled once.

    Compiled schemas are cached by the digest of the schema's canonical JSON (at most
    ``max_schemas``, least recently used dropped), and by the identity of the schema object, so
    checking against the same dict again skips even the digest. Schemas are taken to be
    immutable once passed in. A schema that is not valid JSON Schema cannot be checked: its
    calls pass (``invalid_schema="allow"``, the default; see :meth:`schema_problem`) or are
    refused (``"refuse"``). Not thread-safe.
    """

    def __init__(self, max_schemas: int = 1024, invalid_schema: Literal["allow", "refuse"] = "allow") -> None:
        if invalid_schema not in ("allow", "refuse"):
            raise ValueError("invalid_schema must be 'allow' or 'refuse'")
        self.max_schemas = max_schemas
        self.invalid_schema = invalid_schema
        self._by_digest: OrderedDict[str, CompiledSchema] = OrderedDict()
        self._by_id: OrderedDict[int, tuple[object, CompiledSchema]] = OrderedDict()
        self.compiled = 0
        """How many schemas were compiled (cache misses)."""

    def compile(self, schema: Any) -> CompiledSchema:
        entry = self._by_id.get(id(schema))
        if entry is not None and entry[0] is schema:
            self._by_id.move_to_end(id(schema))
            return entry[1]
        digest = schema_digest(schema)
        compiled = self._by_digest.get(digest)
        if compiled is None:
            compiled = compile_schema(schema, digest=digest)
            self.compiled += 1
            self._by_digest[digest] = compiled
            if len(self._by_digest) > self.max_schemas:
                self._by_digest.popitem(last=False)
        else:
            self._by_digest.move_to_end(digest)
        self._by_id[id(schema)] = (schema, compiled)
        if len(self._by_id) > self.max_schemas:
            self._by_id.popitem(last=False)
        return compiled

    def check(self, schema: Any, arguments: Any) -> str | None:
        """None if ``arguments`` satisfy ``schema``, else why not.

        E.g. ``arguments.amount: -5 is less than the minimum of 0``.
        """
        compiled = self.compile(schema)
        if compiled.schema_error is not None:
            if self.invalid_schema == "refuse":
                return f"{ROOT}: cannot be checked, the tool's inputSchema is invalid: {compiled.schema_error}"
            return None
        return compiled.check(arguments)

    def schema_problem(self, schema: Any) -> str | None:
        """Why ``schema`` is not a usable JSON Schema, or None if it is."""
        return self.compile(schema).schema_error

    def cache_size(self) -> int:
        return len(self._by_digest)
