"""The optimisation methods a user can ask for, parsed from the one string the CLI and API take.

``dynamic-int8 | prune:AMOUNT | distill:ARCH | onnx | onnx-int8``: one spelling everywhere (CLI flag,
API body, runbook parameter, lineage tag), so a variant's lineage can be read back and re-run as is.
Parsing is pure and refuses with the list of what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from workbench.errors import ValidationError

MethodKind = Literal["dynamic-int8", "prune", "distill", "onnx", "onnx-int8"]

METHOD_HELP: Final[str] = (
    "dynamic-int8, prune:AMOUNT (a fraction, 0 < AMOUNT < 1), distill:mlp-W[xW...] (1 to 4 hidden layers "
    "of 1 to 1024 units), onnx or onnx-int8"
)
_WIDTH: Final[str] = r"(?:[1-9][0-9]{0,2}|10[01][0-9]|102[0-4])"
#: Exactly the spellings ``parse_method`` accepts (an amount in (0, 1), widths 1..1024), so the API schema
#: states the whole rule and a schema-valid method is never refused.
METHOD_RE: Final = re.compile(
    rf"^(?:dynamic-int8|onnx|onnx-int8|prune:0?\.[0-9]*[1-9][0-9]*|distill:mlp-{_WIDTH}(?:x{_WIDTH}){{0,3}})\Z"
)
_ARCH_RE: Final = re.compile(r"^mlp-(\d+(?:x\d+)*)\Z")
_MAX_WIDTH: Final[int] = 1024
_MAX_LAYERS: Final[int] = 4


@dataclass(frozen=True)
class Method:
    """A parsed method: its kind and, for prune and distill, its one setting."""

    kind: MethodKind
    amount: float | None = None
    hidden_sizes: tuple[int, ...] | None = None

    @property
    def spelling(self) -> str:
        if self.kind == "prune":
            return f"prune:{self.amount:g}"
        if self.kind == "distill":
            assert self.hidden_sizes is not None
            return "distill:mlp-" + "x".join(str(size) for size in self.hidden_sizes)
        return self.kind

    @property
    def produces_onnx(self) -> bool:
        return self.kind in ("onnx", "onnx-int8")

    @property
    def trains(self) -> bool:
        """Methods that fit weights need rows to learn from, kept apart from the rows they are judged on."""
        return self.kind in ("prune", "distill")


def parse_method(text: str) -> Method:
    """The method ``text`` names; refuses anything ``METHOD_RE`` would not accept, saying which rule it broke."""
    value = text if isinstance(text, str) else ""
    head, sep, setting = value.partition(":")
    if not METHOD_RE.match(value):
        if head == "prune" and sep:
            raise ValidationError(
                f"prune amount must be a decimal fraction strictly between 0 and 1 (the share of hidden "
                f"units removed, e.g. prune:0.5), got {setting!r}",
                field="method",
            )
        if head == "distill" and sep:
            raise ValidationError(
                f"distill needs a student architecture mlp-W or mlp-WxW... ({_MAX_LAYERS} hidden layers at "
                f"most, 1 to {_MAX_WIDTH} units each, e.g. distill:mlp-32), got {setting!r}",
                field="method",
            )
        raise ValidationError(f"unknown optimisation method {text!r}: use {METHOD_HELP}", field="method")
    if head == "prune":
        return Method(kind="prune", amount=float(setting))
    if head == "distill":
        match = _ARCH_RE.match(setting)
        assert match is not None
        return Method(kind="distill", hidden_sizes=tuple(int(part) for part in match.group(1).split("x")))
    return Method(kind=value)  # type: ignore[arg-type]
