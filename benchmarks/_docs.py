"""Writing a benchmark's results into docs/benchmarks.md."""

from __future__ import annotations

import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def replace_section(heading: str, section: str, path: Path = DOC) -> None:
    """Replace the ``## heading`` section (up to the next ``## ``) with ``section``, put last."""
    text = path.read_text()
    if heading in text:
        start = text.index(heading)
        following = text.find("\n## ", start + len(heading))
        text = text[:start] + (text[following + 1 :] if following >= 0 else "")
    path.write_text(text.rstrip() + "\n\n" + section.rstrip() + "\n")


def replace_marked(name: str, heading: str, markdown: str, command: str, path: Path = DOC) -> None:
    """Replace the block between ``<!-- name:begin -->`` and ``<!-- name:end -->``, dated, with
    ``markdown``; text written around the block (its explanation) stays. A first run appends the
    block under ``## heading``."""
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\nMeasured {time.strftime('%Y-%m-%d')} with `{command}`.\n\n{markdown}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    path.write_text(text)
