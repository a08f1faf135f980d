"""From span scores to entities: SpanMarker's greedy decoding, then merging windows.

Within a window the decoding is SpanMarker's own: every span takes its most probable label;
spans that are not "O" are visited from the highest score down and kept unless they share
a word with a span already kept. Across windows, an entity seen by several windows is kept
from the window where it sits farthest from a window edge (it had the most context there),
and overlapping entities from different windows are settled by context first, then score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Candidate",
    "select_spans",
    "merge_candidates",
    "entity_char_range",
    "without_unpaired_quotes",
    "QUOTATION_MARKS",
]

# Quotation marks, not apostrophes ("l'ONU", "Smith’s" keep theirs).
QUOTATION_MARKS = frozenset('"«»„“”‟‹›‚‘')


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entity proposed by one window, in document word coordinates.

    Attributes:
        word_start: First word (document index).
        word_end: One past the last word.
        label_id: The model's label id.
        score: The label's probability.
        context: Words between the entity and the nearest window edge that is not a
            document edge (a very large number when both edges are document edges).
        embedding: Optional span vector.
    """

    word_start: int
    word_end: int
    label_id: int
    score: float
    context: int
    embedding: np.ndarray | None = None


def select_spans(
    scores: np.ndarray,
    label_ids: np.ndarray,
    span_start: np.ndarray,
    span_end: np.ndarray,
    n_words: int,
    outside_id: int,
) -> list[int]:
    """SpanMarker's greedy, non-overlapping span selection.

    Args:
        scores: ``float32[n_spans]`` best-label probability per span.
        label_ids: ``int64[n_spans]`` best label per span.
        span_start: ``int64[n_spans]`` first word of each span.
        span_end: ``int64[n_spans]`` one past its last word.
        n_words: Words in the window.
        outside_id: The "O" label id.

    Returns:
        Indices of the kept spans, highest score first. Ties keep span order, as Python's
        stable ``sorted(..., reverse=True)`` does in ``SpanMarkerModel.predict``.
    """
    candidates = np.flatnonzero(label_ids != outside_id)
    if len(candidates) == 0:
        return []
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    taken = np.zeros(n_words, dtype=bool)
    kept = []
    for i in order.tolist():
        a, b = int(span_start[i]), int(span_end[i])
        if not taken[a:b].any():
            taken[a:b] = True
            kept.append(i)
    return kept


def merge_candidates(candidates: list[Candidate], n_words: int, *, min_context: int) -> tuple[list[Candidate], int]:
    """Merge the entities of a document's windows into one flat, non-overlapping set.

    Args:
        candidates: Entities from every window of the document.
        n_words: Words in the document.
        min_context: Words of context on both sides beyond which an entity counts as fully
            seen; among fully seen overlapping entities the higher score wins, otherwise the
            one with more context does.

    Returns:
        ``(entities sorted by word_start, duplicates merged)``, where a duplicate is the same
        word span proposed by another window.
    """
    best: dict[tuple[int, int], Candidate] = {}
    duplicates = 0
    for c in candidates:
        key = (c.word_start, c.word_end)
        seen = best.get(key)
        if seen is None:
            best[key] = c
            continue
        duplicates += 1
        if (c.context, c.score) > (seen.context, seen.score):
            best[key] = c
    unique = list(best.values())
    if len(unique) <= 1:
        return unique, duplicates
    unique.sort(key=lambda c: (min(c.context, min_context), c.score), reverse=True)
    taken = np.zeros(n_words, dtype=bool)
    kept = []
    for c in unique:
        if not taken[c.word_start : c.word_end].any():
            taken[c.word_start : c.word_end] = True
            kept.append(c)
    kept.sort(key=lambda c: c.word_start)
    return kept, duplicates


def entity_char_range(
    word_char_start: np.ndarray, word_char_end: np.ndarray, word_start: int, word_end: int
) -> tuple[int, int] | None:
    """Character range of words ``[word_start, word_end)``, ignoring words with no visible
    characters at either end; ``None`` when no word of the span has any."""
    cs = word_char_start[word_start:word_end]
    ce = word_char_end[word_start:word_end]
    visible = np.flatnonzero(ce > cs)
    if len(visible) == 0:
        return None
    return int(cs[visible[0]]), int(ce[visible[-1]])


def without_unpaired_quotes(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` without a quotation mark at either edge that pairs with none inside.

    Silver training data (WikiNEuRal) puts the quotes around a name inside the entity, gold
    data (UNER, CoNLL) leaves them out, so a model may end a name on its closing quote
    ("Газпром»"). A name between quotes ("«Газпром»") keeps both.
    """
    while start < end:
        inside = sum(ch in QUOTATION_MARKS for ch in text[start:end])
        if inside % 2 == 0:
            break
        if text[start] in QUOTATION_MARKS:
            start += 1
        elif text[end - 1] in QUOTATION_MARKS:
            end -= 1
        else:
            break
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
    return start, end
