"""Text made safe for the markdown that run reports are written in."""

from __future__ import annotations

__all__ = ["table_cell"]


def table_cell(value: object) -> str:
    """``value`` as text for one cell of a markdown table (or one line of prose).

    Reasons, labels, texts and URIs come from input and config: a pipe would end the cell and
    a line break the row, so the one is escaped and the other becomes a space.
    """
    return str(value).replace("|", "\\|").replace("\n", " ")
