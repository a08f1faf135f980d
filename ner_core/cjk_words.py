"""How a model makes words of Chinese and Japanese, which have no spaces between them.

:mod:`ner_core.adapters` records the choice in a new model's config and :mod:`ner_core.loading`
reads it back from a checkpoint; the names live here, below both, so that neither imports the
other for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from span_marker import SpanMarkerConfig

__all__ = ["CJK_WORDS", "CJK_WORDS_ATTRIBUTE", "cjk_words_of"]

CJK_WORDS = ("characters", "pieces")
"""The choices: every CJK character a word of its own, or the tokenizer's own pieces."""

CJK_WORDS_ATTRIBUTE = "nerflow_cjk_words"
"""The SpanMarker config attribute that holds the choice."""


def cjk_words_of(config: SpanMarkerConfig) -> str:
    """How a model's Chinese and Japanese words are made, from its SpanMarker config
    (``"characters"`` for checkpoints that do not say: every model before the option)."""
    return getattr(config, CJK_WORDS_ATTRIBUTE, None) or "characters"
