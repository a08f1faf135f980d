"""Text made safe for the markdown that run reports are written in."""

from __future__ import annotations

__all__ = ["table_cell", "plural"]


def table_cell(value: object) -> str:
    """``value`` as text for one cell of a markdown table (or one line of prose).

    Reasons, labels, texts and URIs come from input and config: a pipe would end the cell and
    a line break the row, so the one is escaped and the other becomes a space.
    """
    return str(value).replace("|", "\\|").replace("\n", " ")


def plural(n: int, one: str, many: str) -> str:
    """``"1 batch"``, ``"2 batches"``, ``"1,000 batches"``."""
    return f"{n:,} {one if n == 1 else many}"
