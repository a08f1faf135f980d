"""What a reader extracts from a file: text in the normal form, segments, declared metadata.

Offsets stay the contract: ``text[start:end]`` of an entity is its text, on the normalised
text. :class:`TextBuilder` is how every reader assembles that text, block by block, so that
segment offsets are offsets into the final text without a second pass: each block is brought
to the normal form on its own and blocks are joined by line breaks, which leaves the whole in
the normal form (the builder checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nerflow.etl.normal_form import normalise_text, normalise_with_map

__all__ = ["RUNNING_TEXT_KINDS", "DocumentInfo", "ExtractedDocument", "ExtractionError", "Segment", "TextBuilder"]

RUNNING_TEXT_KINDS = frozenset({"line"})
"""Segment kinds that are pieces of running text cut by the page's layout (a PDF's text
lines: a sentence, a name, wraps from one to the next), read by the model together with their
neighbours. Every other segment is a unit of its own (a cell, a PDF line's part set apart by
a wide gap, a heading, a paragraph, a slide's bullet), and the model reads it apart (``ner_core.Doc.breaks``): cells and headings
read as one run look like no sentence the model learnt from, and it finds nothing in them."""


class ExtractionError(Exception):
    """A file, or one page or message of it, that cannot be read; ``reason`` is the
    quarantine reason ("encrypted PDF: …"), ``page`` the 1-based page when there is one."""

    def __init__(self, reason: str, *, page: int | None = None, part: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.page = page
        self.part = part


@dataclass(frozen=True, slots=True)
class Segment:
    """Where one part of a document's text came from.

    Attributes:
        start: First character in the document's text.
        end: One past the last.
        kind: What the part is: ``"line"`` (a PDF text line), ``"line_part"`` (a part of
            one set apart by a wide gap: a table's cell), ``"title"``, ``"heading"``,
            ``"paragraph"``, ``"list_item"``, ``"table_cell"``, ``"header"``, ``"footer"``,
            ``"subject"``, ``"body"``, ``"text"``.
        page: 1-based page (PDF), else None.
        block: Where in the file: an element path (HTML ``body/article/p[3]``), a paragraph or
            cell index (DOCX ``body/p[12]``, ``body/table[1]/tr[2]/tc[1]``), a part
            (e-mail ``subject``, ``body``), else None.
        box: The part's box on its page, PDF points ``(left, bottom, right, top)``, origin at
            the page's lower left corner as PDF has it; None where the format has none.
        page_size: ``(width, height)`` of its page in points (PDF), else None.
        char_boxes: ``float32[end - start, 4]``, each character's box as ``box`` has it
            (PDF); None elsewhere. Entities' boxes are cut from them.
    """

    start: int
    end: int
    kind: str
    page: int | None = None
    block: str | None = None
    box: tuple[float, float, float, float] | None = None
    page_size: tuple[float, float] | None = None
    char_boxes: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class DocumentInfo:
    """What a file declares about itself, and how its text was decoded.

    Attributes:
        format: The reader that extracted it: ``"pdf"``, ``"html"``, ``"docx"``,
            ``"markdown"``, ``"email"``, ``"text"``, ``"jsonl"``, ``"parquet"``.
        page_count: Pages (PDF), else None.
        title: The title the file declares (PDF metadata, HTML ``<title>``, DOCX core
            properties, e-mail subject), else None.
        declared_lang: The language the file declares (HTML ``lang``, DOCX, PDF ``/Lang``), as
            written, else None.
        encoding: The text encoding the bytes were decoded with, for formats that have one.
        encoding_confidence: How sure the detection was, in [0, 1] (1.0 for a BOM or valid
            UTF-8), else None.
    """

    format: str
    page_count: int | None = None
    title: str | None = None
    declared_lang: str | None = None
    encoding: str | None = None
    encoding_confidence: float | None = None


@dataclass(frozen=True, eq=False)
class ExtractedDocument:
    """One document read from a file.

    Attributes:
        text: The text, already in the normal form.
        segments: Ordered, non-overlapping, inside ``text``.
        info: What the file declares.
        part: 1-based index within the file for files that hold several documents (an mbox's
            messages), else None.
    """

    text: str
    segments: list[Segment]
    info: DocumentInfo
    part: int | None = None


# Blocks longer than this, without character boxes, are normalised by Polars (one call costs
# about as much as the Python rules on a few hundred characters).
_POLARS_FROM = 512


class TextBuilder:
    """Assembles a document's text block by block and records a segment per block.

    Blocks empty after normalisation leave no text and no segment. Blocks are joined by
    ``separator`` (``"\\n"`` for lines of one page, ``"\\n\\n"`` between paragraphs and pages).
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.segments: list[Segment] = []

    def __len__(self) -> int:
        return self._length

    def add(
        self,
        raw: str,
        *,
        kind: str,
        separator: str = "\n\n",
        page: int | None = None,
        block: str | None = None,
        box: tuple[float, float, float, float] | None = None,
        page_size: tuple[float, float] | None = None,
        char_boxes: np.ndarray | None = None,
    ) -> Segment | None:
        """Add one block. ``char_boxes`` (``[len(raw), 4]``) are the boxes of ``raw``'s
        characters; the segment keeps those of the characters that survive normalisation,
        and its box is their union unless ``box`` is given."""
        if separator not in ("\n", "\n\n"):
            raise ValueError(f"separator must be one or two line breaks, got {separator!r}")
        if char_boxes is not None and len(char_boxes) != len(raw):
            raise ValueError(f"char_boxes has {len(char_boxes)} rows for {len(raw)} characters")
        if char_boxes is None and len(raw) > _POLARS_FROM:
            # No boxes to carry: the Polars rules, whose per-character cost is far lower.
            text, index = normalise_text(raw), None
        else:
            text, index = normalise_with_map(raw)
        if not text:
            return None
        if self._parts:
            self._parts.append(separator)
            self._length += len(separator)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        boxes = None
        if char_boxes is not None and index is not None:
            boxes = np.asarray(char_boxes, dtype=np.float32)[index]
            if box is None:
                box = _union(boxes)
        segment = Segment(start, self._length, kind, page, block, box, page_size, boxes)
        self.segments.append(segment)
        return segment

    def build(self, info: DocumentInfo, *, part: int | None = None) -> ExtractedDocument:
        """The document. Raises ``AssertionError`` if the text left the normal form (a bug)."""
        text = "".join(self._parts)
        if normalise_text(text) != text:
            raise AssertionError("extracted text is not in the normal form")
        return ExtractedDocument(text, list(self.segments), info, part)


def _union(boxes: np.ndarray) -> tuple[float, float, float, float] | None:
    """The smallest box around the non-empty character boxes (spaces pdfium places at 0)."""
    real = boxes[(boxes[:, 2] > boxes[:, 0]) | (boxes[:, 3] > boxes[:, 1])]
    if len(real) == 0:
        return None
    return (
        float(real[:, 0].min()),
        float(real[:, 1].min()),
        float(real[:, 2].max()),
        float(real[:, 3].max()),
    )
