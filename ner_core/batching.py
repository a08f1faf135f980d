"""Pack variable-length items into batches under a token budget.

Sorting by length before packing keeps padding small; the budget bounds the memory of a
batch whatever the lengths, so memory never grows with the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pack_by_budget", "round_up"]


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``.

    Padded lengths are rounded to a few sizes because oneDNN (CPU) builds a kernel per new
    matrix shape; rounding trades a little padding for kernel reuse.
    """
    return -(-n // multiple) * multiple


def pack_by_budget(lengths: Sequence[int], budget: int, *, max_items: int) -> list[list[int]]:
    """Group item indices into batches whose padded size stays within ``budget``.

    Args:
        lengths: Length of each item (tokens, or any cost unit).
        budget: Upper bound of ``len(batch) * max(lengths in batch)``; an item longer than
            the budget gets a batch of its own.
        max_items: Upper bound on items per batch.

    Returns:
        Batches of indices into ``lengths``, shortest items first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if current and (len(current) + 1 > max_items or (len(current) + 1) * new_longest > budget):
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches
