"""Writing a benchmark's results into docs/benchmarks.md."""

from __future__ import annotations

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
