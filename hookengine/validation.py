"""Checking JSON data against a JSON Schema, with every problem in words a client can act on.

The same schemas are served in the OpenAPI document. A schema may carry `x-hint`, a short
sentence saying what to send; it is added to the message of a problem found at that schema.
"""

from __future__ import annotations

import functools
import re

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError

HINT = "x-hint"


def matches(pattern: str, text: str) -> bool:
    """Whether `text` matches a JSON Schema `pattern` (ECMA-262: `$` is the very end).

    Python's `$` also matches before a final newline, so "name\\n" would pass "^...$".
    """
    return _compiled(pattern).search(text) is not None


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not matches(pattern, instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def schema_errors(schema: dict, data) -> list[SchemaError]:
    """Every way `data` breaks `schema`, in the order of the places they are found."""
    return sorted(Validator(schema).iter_errors(data),
                  key=lambda error: [str(part) for part in error.absolute_path])


def describe(error: SchemaError, with_hint: bool = True) -> str:
    """`where: what is wrong; what to send` for one problem (`where` is a/b/0, or nothing)."""
    message = error.message
    hint = _hint(error)
    if hint:
        message += f"; {hint}" if with_hint else ""
    elif error.validator == "additionalProperties" and error.validator_value is False:
        # Unexpected keys: name the ones this object takes.
        accepted = list(error.schema.get("properties", {}))
        message += (f"; the accepted properties are {', '.join(accepted)}" if accepted
                    else "; this object takes no properties")
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {message}" if where else message


def schema_problems(schema: dict, data) -> list[str]:
    """Every problem of `data` against `schema`, described (see `describe_all`)."""
    return describe_all(schema_errors(schema, data))


def describe_all(errors: list[SchemaError]) -> list[str]:
    """Each error described; a hint shared by several is given once, with the first."""
    problems: list[str] = []
    hinted: set[str | None] = set()
    for error in errors:
        problems.append(describe(error, with_hint=_hint(error) not in hinted))
        hinted.add(_hint(error))
    return problems


def _hint(error: SchemaError) -> str | None:
    return error.schema.get(HINT) if isinstance(error.schema, dict) else None
