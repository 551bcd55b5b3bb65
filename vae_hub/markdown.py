"""Generated blocks inside hand-written Markdown: the text between two HTML-comment markers is replaced."""

from __future__ import annotations

import re
from pathlib import Path


def update_markdown(path: str | Path, block: str, start: str, end: str) -> None:
    """Replace the text between the ``start`` and ``end`` markers of a Markdown file with ``block``."""
    path = Path(path)
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path}: no '{start}' … '{end}' markers to replace")
    path.write_text(pattern.sub(lambda _: f"{start}\n{block.rstrip()}\n{end}", text, count=1))
