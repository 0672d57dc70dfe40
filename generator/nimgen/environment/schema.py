"""The environment file's JSON Schema: loading, validation with ECMA-262 patterns, located explanations."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import jsonschema
import regress

from nimgen.environment.layering import locate, locate_key
from nimgen.errors import Location, Problem, json_path, shorten, shown

# Longest message of jsonschema's own wording kept whole (it may quote a value we did not shorten).
MAX_MESSAGE = 300
# Close-match suggestions only for keys and values of a sensible size (difflib is quadratic).
MAX_SUGGEST = 100


@lru_cache(maxsize=1)
def environment_schema() -> dict[str, Any]:
    """The environment file's JSON Schema (draft 2020-12), shipped in the package."""
    text = resources.files("nimgen").joinpath("schemas/environment.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def ecma_regex(pattern: str) -> regress.Regex:
    """A JSON Schema pattern compiled as ECMA-262 (unicode mode), as the specification requires."""
    return regress.Regex(pattern, "u")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    # jsonschema's own `pattern` uses Python's re.search, where `$` also matches before a final newline:
    # "llama\n" would pass ^[a-z]+$. ECMA-262's `$` (without the m flag) is the end of input only.
    if validator.is_type(instance, "string") and ecma_regex(pattern).find(instance) is None:
        yield jsonschema.ValidationError(f"{shown(instance)} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


@lru_cache(maxsize=1)
def validator() -> Any:
    """A draft 2020-12 validator of the environment schema whose patterns follow ECMA-262.

    The schema ships with nimgen and a test checks it against the meta-schema, so each run need not.
    """
    return EcmaValidator(environment_schema())


def schema_problems(document: Any, fallback: Location) -> list[Problem]:
    """Every JSON Schema violation in `document`, located and explained."""
    found: dict[tuple[Location, str, str], Problem] = {}
    for error in validator().iter_errors(document):
        for problem in _explain(error, document, fallback):
            found.setdefault((problem.location, problem.path, problem.message), problem)
    return list(found.values())


def _close(word: str, options: list[str]) -> str:
    if len(word) > MAX_SUGGEST:
        return ""
    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean '{close[0]}'?" if close else ""


def _explain(error: jsonschema.ValidationError, document: Any, fallback: Location) -> list[Problem]:
    path = list(error.absolute_path)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    validator_value: Any = error.validator_value
    instance: Any = error.instance
    hint = str(schema.get("x-hint", ""))
    where = locate(document, path, fallback)
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        return [
            Problem(locate_key(document, path, key, fallback), json_path([*path, key]),
                    f"unknown key '{shorten(str(key))}'",
                    _close(str(key), allowed) or f"allowed keys: {', '.join(allowed)}")
            for key in sorted(set(instance) - set(allowed), key=str)
        ]
    if error.validator == "required" and isinstance(instance, dict):
        return [Problem(where, json_path([*path, key]), f"missing required key '{key}'")
                for key in validator_value if key not in instance]
    if "propertyNames" in error.absolute_schema_path:
        key = instance
        message = f"invalid key {shown(key)}"
        if path and path[-1] in ("env", "secretEnv"):
            message = f"invalid environment variable name {shown(key)}"
            hint = "use letters, digits and '_', not starting with a digit"
        return [Problem(locate_key(document, path, key, fallback), json_path([*path, key]), message, hint)]
    if error.validator == "pattern":
        return [Problem(where, json_path(path), f"invalid value {shown(instance)}",
                        hint or f"the value must match {validator_value}")]
    if error.validator == "type":
        expected = validator_value if isinstance(validator_value, list) else [validator_value]
        message = f"expected {' or '.join(expected)}, got {_type_name(instance)} {shown(instance)}"
        if "string" in expected and isinstance(instance, (bool, int, float)) and not hint:
            hint = "quote the value to make it a string"
        return [Problem(where, json_path(path), message, hint)]
    if error.validator == "enum":
        options = [str(value) for value in validator_value]
        return [Problem(where, json_path(path), f"{shown(instance)} is not one of: {', '.join(options)}",
                        _close(str(instance), options))]
    if error.validator in ("maxLength", "minLength") and isinstance(instance, str):
        bound = "at most" if error.validator == "maxLength" else "at least"
        return [Problem(where, json_path(path),
                        f"{shown(instance)} has {len(instance)} characters; {bound} {validator_value} are allowed", hint)]
    return [Problem(where, json_path(path), shorten(error.message, MAX_MESSAGE), hint)]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__
