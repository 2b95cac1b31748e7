"""Model references (``models:/name@alias``, ``models:/name/3``) parsed once, validated eagerly.

Names end up in URLs, file paths and SQL, so they are held to a conservative alphabet here rather
than trusting every layer below to escape them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.errors import ValidationError

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_RESERVED_ALIAS_RE = re.compile(r"^(latest|v\d+)\Z", re.IGNORECASE)


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise ValidationError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            field="name",
            value=name,
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise ValidationError(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '_' or '-', starting with a letter",
            field="alias",
            value=alias,
        )
    if _RESERVED_ALIAS_RE.match(alias):
        raise ValidationError(
            f"alias {alias!r} is reserved by MLflow ('latest' and 'v<number>' name versions)",
            field="alias",
            value=alias,
        )
    return alias


def check_version(version: int | str) -> int:
    """Only a plain int or a string of ASCII digits: ``int()`` alone would take "1_0", "+3" or 2.5."""
    if isinstance(version, bool) or not (
        isinstance(version, int) or (isinstance(version, str) and version.isascii() and version.isdigit())
    ):
        raise ValidationError(
            f"invalid model version {version!r}: expected a positive integer", field="version"
        )
    number = int(version)
    if number < 1:
        raise ValidationError(f"invalid model version {number}: versions start at 1", field="version")
    return number


@dataclass(frozen=True)
class ModelRef:
    """A pointer to one model version, either fixed (``version``) or moving (``alias``)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if (self.version is None) == (self.alias is None):
            raise ValidationError("a model reference names exactly one of a version or an alias")
        if self.version is not None:
            object.__setattr__(self, "version", check_version(self.version))
        if self.alias is not None:
            check_alias(self.alias)

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        """Accept ``models:/name@alias``, ``models:/name/3`` and the bare ``name@alias`` / ``name/3``."""
        if not isinstance(uri, str) or not uri.strip():
            raise ValidationError("empty model reference", field="model")
        body = uri.strip()
        if body.startswith("models:/"):
            body = body[len("models:/") :]
        if "@" in body:
            name, _, alias = body.partition("@")
            return cls(name=name, alias=alias)
        name, sep, version = body.rpartition("/")
        if not sep:
            raise ValidationError(
                f"invalid model reference {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION",
                field="model",
                value=uri,
            )
        return cls(name=name, version=check_version(version))

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"
