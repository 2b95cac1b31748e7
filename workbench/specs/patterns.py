r"""The domain's name rules as JSON Schema patterns, derived from the regexes that enforce them.

The API schema states each rule with the very regex the domain validates with, so the two cannot drift
apart; the domain keeps enforcing it (with its own messages, which name the rule in words). Python's
``\Z`` (end of the string) is ECMA-262's ``$``: the domain's regexes end in ``\Z`` because a Python
``$`` also matches before a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = [
    "VERSION_SCHEMA",
    "alias_schema",
    "json_pattern",
    "model_ref_schema",
    "pattern_schema",
    "required_in_schema",
]


def json_pattern(regex: re.Pattern[str]) -> str:
    r"""``regex`` as a JSON Schema (ECMA-262) pattern: a trailing ``\Z`` becomes ``$``."""
    if regex.flags & re.IGNORECASE:
        raise ValueError(f"{regex.pattern!r} ignores case, which a JSON Schema pattern cannot say")
    source = regex.pattern
    return source[: -len(r"\Z")] + "$" if source.endswith(r"\Z") else source


def pattern_schema(regex: re.Pattern[str]) -> dict[str, Any]:
    """The ``json_schema_extra`` of a field or parameter the domain checks with ``regex``."""
    return {"pattern": json_pattern(regex)}


def _unanchored(regex: re.Pattern[str]) -> str:
    source = json_pattern(regex)
    if not (source.startswith("^") and source.endswith("$")):
        raise ValueError(f"{regex.pattern!r} is not anchored at both ends")
    return source[1:-1]


def _ignoring_case(regex: re.Pattern[str]) -> str:
    """A case-insensitive regex spelt with a character class per letter (``latest`` → ``[lL][aA]...``)."""
    source, parts, escaped = regex.pattern, [], False
    if "[" in source:
        raise ValueError(f"{source!r}: letters inside character classes are not rewritten")
    for char in source:
        if escaped or char == "\\":
            parts.append(char)
            escaped = not escaped
        elif char.isascii() and char.isalpha():
            parts.append(f"[{char.lower()}{char.upper()}]")
        else:
            parts.append(char)
    return json_pattern(re.compile("".join(parts)))


@cache
def alias_schema() -> dict[str, Any]:
    """An alias: ``ALIAS_RE``, and not one MLflow reserves (``latest``, ``v<number>``, in any case)."""
    from workbench.registry.refs import _RESERVED_ALIAS_RE, ALIAS_RE

    return {"pattern": json_pattern(ALIAS_RE), "not": {"pattern": _ignoring_case(_RESERVED_ALIAS_RE)}}


#: A model version as a string (``check_version``): ASCII digits, at least 1.
VERSION_SCHEMA: dict[str, Any] = {"pattern": "^[0-9]*[1-9][0-9]*$"}


@cache
def model_ref_schema() -> dict[str, Any]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, the prefix optional (``ModelRef.parse``)."""
    from workbench.registry.refs import _RESERVED_ALIAS_RE, ALIAS_RE, MODEL_NAME_RE

    reserved = _unanchored(re.compile(_ignoring_case(_RESERVED_ALIAS_RE)))
    return {
        "pattern": (
            f"^(models:/)?{_unanchored(MODEL_NAME_RE)}"
            f"(@(?!{reserved}$){_unanchored(ALIAS_RE)}|/[0-9]*[1-9][0-9]*)$"
        )
    }


def required_in_schema(*names: str) -> Callable[[dict[str, Any]], None]:
    """A model's ``json_schema_extra`` stating fields as required that Python callers may leave out.

    The tag of a discriminated union (``kind``) has a default for Python code, but a JSON body must
    carry it: the union cannot be told apart without it.
    """

    def extra(schema: dict[str, Any]) -> None:
        required = [name for name in schema.get("required", []) if name not in names]
        schema["required"] = [*names, *required]

    return extra
