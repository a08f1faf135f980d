"""The records the engine consumes and produces.

One coordinate system for every result: character offsets into the text the engine was
given, ``end`` exclusive, so ``text[start:end] == entity.text`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Doc", "Entity", "DocResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Doc:
    """A document to annotate.

    Attributes:
        doc_id: Caller's identifier, carried into every result.
        text: The text; offsets in the results refer to it as given.
        breaks: Character offsets where the text's context ends: no model window spans one,
            so the text on either side is read apart and no entity crosses it. Readers of
            files set them around parts that stand alone (a table cell, a heading): the model
            learnt from running sentences, and cells read as one run ("City Maren Holloway
            Lindqvist Harbour Authority") look like no sentence it knows. Sorted; offsets at
            or beyond the text's ends change nothing.
    """

    doc_id: str
    text: str
    breaks: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """One recognised entity.

    Attributes:
        doc_id: The document it was found in.
        start: First character (inclusive).
        end: Last character (exclusive).
        text: ``document[start:end]``, never with leading or trailing whitespace.
        label: The model's label.
        score: The model's probability for ``label`` on this span, in [0, 1].
        embedding: Optional float32 vector of the span (see ``EngineConfig.embeddings``).
    """

    doc_id: str
    start: int
    end: int
    text: str
    label: str
    score: float
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocResult:
    """The engine's answer for one document.

    Attributes:
        doc_id: The document's identifier.
        entities: Entities sorted by ``start``; they never overlap.
        n_chars: Length of the text in characters.
        n_tokens: Subword tokens of the whole text (no special tokens).
        n_words: Words the model's tokenizer split the text into.
        n_windows: Model windows the text was cut into.
        n_split_words: Words longer than a window that were cut into pieces.
        n_window_duplicates: Entities seen by more than one window and merged into one.
    """

    doc_id: str
    entities: tuple[Entity, ...]
    n_chars: int
    n_tokens: int
    n_words: int
    n_windows: int
    n_split_words: int = 0
    n_window_duplicates: int = 0
