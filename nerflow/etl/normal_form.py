"""The normal form of document text: the rules every document's text is brought to.

The normalised text is what the model sees and what the ``documents`` table keeps, so every
entity offset refers to it. The rules, in order:

1. Line breaks unified: ``\\r\\n``, ``\\r``, vertical tab, form feed, the information
   separators U+001C..U+001F, NEL, U+2028 and U+2029 all become ``\\n``. (Deleting them
   instead would glue the words on either side together.)
2. Every other control character (Unicode ``Cc``) except ``\\t`` and ``\\n`` is removed.
3. Horizontal whitespace runs collapse to one character: a tab if the run holds one, else a
   space (no-break and other ``Zs`` spaces included).
4. Spaces and tabs around a line break are removed; three or more line breaks become two, so
   a paragraph break stays a paragraph break.
5. Leading and trailing whitespace is stripped.
6. Unicode NFC, last, because removing a control character can leave a base letter next to
   a combining mark that only now composes.

Format characters (``Cf``: zero-width joiners, soft hyphens) are kept: some scripts need them.

Two implementations of the same rules: :func:`normalise_text_expr` (Polars, for whole
batches) and :func:`normalise_with_map` (Python, one string, with the source index of every
output character, for readers that must trace text back to the file: a PDF character's box).
``tests/nerflow/etl/test_normal_form.py`` holds them equal.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import polars as pl

__all__ = ["normalise_text", "normalise_text_expr", "normalise_with_map"]

_LINE_BREAKS = r"\r\n?|[\x{0B}\x{0C}\x{1C}-\x{1F}\x{85}\x{2028}\x{2029}]"
_CONTROLS = r"[\p{Cc}--[\t\n]]"
_RUN_WITH_TAB = r"[\t\p{Zs}]*\t[\t\p{Zs}]*"
_SPACE_RUN = r"\p{Zs}+"
_AROUND_NEWLINE = r"[ \t]*\n[ \t]*"
_MANY_NEWLINES = r"\n{3,}"

_BREAK_CHARS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\n")


def normalise_text_expr(column: str = "text") -> pl.Expr:
    """The rules of the module docstring as one Polars expression."""
    return (
        pl.col(column)
        .str.replace_all(_LINE_BREAKS, "\n")
        .str.replace_all(_CONTROLS, "")
        .str.replace_all(_RUN_WITH_TAB, "\t")
        .str.replace_all(_SPACE_RUN, " ")
        .str.replace_all(_AROUND_NEWLINE, "\n")
        .str.replace_all(_MANY_NEWLINES, "\n\n")
        .str.strip_chars()
        .str.normalize("NFC")
    )


def normalise_text(text: str) -> str:
    """One string in the normal form (:func:`normalise_text_expr` on a one-row frame)."""
    return str(pl.DataFrame({"text": [text]}).select(normalise_text_expr()).item())


def normalise_with_map(raw: str) -> tuple[str, np.ndarray]:
    """``raw`` in the normal form, and for each of its characters the index in ``raw`` it
    came from (``int64[len(text)]``): a collapsed whitespace run maps to its first
    character, a composed character to its base."""
    chars: list[str] = []
    source: list[int] = []
    previous_cr = False
    for i, ch in enumerate(raw):
        if ch in _BREAK_CHARS:
            if ch == "\n" and previous_cr:
                previous_cr = False
                continue
            previous_cr = ch == "\r"
            chars.append("\n")
            source.append(i)
            continue
        previous_cr = False
        category = unicodedata.category(ch)
        if category == "Cc" and ch != "\t":
            continue
        if ch == "\t" or category == "Zs":
            if chars and chars[-1] in " \t":
                if ch == "\t":
                    chars[-1] = "\t"
                continue
            chars.append("\t" if ch == "\t" else " ")
            source.append(i)
            continue
        chars.append(ch)
        source.append(i)
    # Rule 4: horizontal whitespace next to a line break goes, then runs of 3+ breaks shrink.
    kept_chars: list[str] = []
    kept_source: list[int] = []
    n = len(chars)
    for k, ch in enumerate(chars):
        if ch in " \t" and ((k > 0 and chars[k - 1] == "\n") or (k + 1 < n and chars[k + 1] == "\n")):
            continue
        if ch == "\n" and len(kept_chars) >= 2 and kept_chars[-1] == "\n" and kept_chars[-2] == "\n":
            continue
        kept_chars.append(ch)
        kept_source.append(source[k])
    # Rule 5.
    lo, hi = 0, len(kept_chars)
    while lo < hi and kept_chars[lo] in " \t\n":
        lo += 1
    while hi > lo and kept_chars[hi - 1] in " \t\n":
        hi -= 1
    text = "".join(kept_chars[lo:hi])
    index = np.asarray(kept_source[lo:hi], dtype=np.int64)
    if unicodedata.is_normalized("NFC", text):
        return text, index
    return _nfc_with_map(text, index)


def _nfc_with_map(text: str, index: np.ndarray) -> tuple[str, np.ndarray]:
    """NFC chunk by chunk, a chunk being a starter and the marks after it; each output
    character maps to its chunk's first source index."""
    out: list[str] = []
    out_index: list[int] = []
    start = 0
    for k in range(1, len(text) + 1):
        if k == len(text) or unicodedata.combining(text[k]) == 0:
            chunk = unicodedata.normalize("NFC", text[start:k])
            out.append(chunk)
            out_index.extend([int(index[start])] * len(chunk))
            start = k
    composed = "".join(out)
    whole = unicodedata.normalize("NFC", text)
    if composed != whole:
        # Two starters that compose (Hangul jamo): rare; each output character keeps the
        # source index at its proportional position.
        positions = np.minimum(np.arange(len(whole)) * len(text) // max(1, len(whole)), len(text) - 1)
        return whole, index[positions]
    return composed, np.asarray(out_index, dtype=np.int64)
