"""PowerPoint presentations (.pptx): slide text, tables and speaker notes, with python-pptx.

Reading order, slide by slide: the slide's title first, then its other shapes in the order the
slide stores them (its z-order, which is how PowerPoint's own outline and screen readers walk
them), group shapes opened in place, then the slide's speaker notes. A shape's paragraphs are
a segment each; a table is read row by row, one segment per cell, a merged cell once. Hidden
slides are read too: their text is the file's, only left out of the show. Charts and SmartArt
hold their text in parts python-pptx does not expose, and are not read.

Each segment's ``page`` is its slide's number, so an entity's ``page`` is the slide it is on,
and the document's ``page_count`` is the number of slides.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER
from pptx.shapes.base import BaseShape
from pptx.text.text import TextFrame

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.extraction.office_archive import check_office_archive

__all__ = ["extract_pptx"]

_TITLES = frozenset({PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE, PP_PLACEHOLDER.VERTICAL_TITLE})


def extract_pptx(data: bytes) -> ExtractedDocument:
    """Read a PowerPoint presentation.

    Returns:
        The document. Segments' ``block`` is ``slide[2]/shape[3]/p[1]``,
        ``slide[2]/shape[3]/shape[1]/p[1]`` (in a group), ``slide[2]/shape[4]/tr[1]/tc[2]``
        or ``slide[2]/notes/p[1]`` (1-based, shapes counted in the slide's order); kinds are
        ``"title"``, ``"paragraph"``, ``"table_cell"`` and ``"notes"``; ``page`` is the
        slide. ``info.page_count`` is the number of slides, ``info.title`` and
        ``info.declared_lang`` come from the core properties.

    Raises:
        ExtractionError: Not a zip, a zip bomb, a zip without ``ppt/presentation.xml``, a
            password-protected or legacy (.ppt) Office file, or a PPTX python-pptx cannot
            read.
    """
    check_office_archive(data, main_part="ppt/presentation.xml", what="a PPTX")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        builder = TextBuilder()
        slides = list(presentation.slides)
        for number, slide in enumerate(slides, start=1):
            path = f"slide[{number}]"
            _read_shapes(_title_first(slide.shapes), path, number, builder)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                _read_text_frame(slide.notes_slide.notes_text_frame, f"{path}/notes", "notes", number, builder)
        props = presentation.core_properties
        info = DocumentInfo(
            format="pptx",
            page_count=len(slides),
            title=(props.title or "").strip() or None,
            declared_lang=(props.language or "").strip() or None,
        )
    # python-pptx and lxml raise many kinds of error on a malformed part (KeyError,
    # XMLSyntaxError, ValueError, AttributeError); each means the same to the pipeline.
    except Exception as exc:
        raise ExtractionError(f"not a readable PPTX: {type(exc).__name__}: {exc}") from exc
    return builder.build(info)


def _title_first(shapes: Iterable[BaseShape]) -> list[tuple[int, BaseShape]]:
    """``(position, shape)`` pairs, 1-based positions in the slide's order, titles first."""
    numbered = list(enumerate(shapes, start=1))
    return sorted(numbered, key=lambda item: not _is_title(item[1]))


def _is_title(shape: BaseShape) -> bool:
    return shape.is_placeholder and shape.placeholder_format.type in _TITLES


def _read_shapes(shapes: Iterable[tuple[int, BaseShape]], path: str, slide: int, builder: TextBuilder) -> None:
    for position, shape in shapes:
        shape_path = f"{path}/shape[{position}]"
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            _read_shapes(enumerate(shape.shapes, start=1), shape_path, slide, builder)  # type: ignore[attr-defined]
        elif getattr(shape, "has_table", False):
            _read_table(shape, shape_path, slide, builder)
        elif shape.has_text_frame:
            kind = "title" if _is_title(shape) else "paragraph"
            _read_text_frame(shape.text_frame, shape_path, kind, slide, builder)  # type: ignore[attr-defined]


def _read_text_frame(frame: TextFrame, path: str, kind: str, slide: int, builder: TextBuilder) -> None:
    for n, paragraph in enumerate(frame.paragraphs, start=1):
        # python-pptx gives a line break inside a paragraph as a vertical tab.
        builder.add(paragraph.text.replace("\v", "\n"), kind=kind, page=slide, block=f"{path}/p[{n}]")


def _read_table(shape: BaseShape, path: str, slide: int, builder: TextBuilder) -> None:
    table = shape.table  # type: ignore[attr-defined]
    for r, row in enumerate(table.rows, start=1):
        for c, cell in enumerate(row.cells, start=1):
            if cell.is_spanned:
                continue  # covered by a merged cell, which holds the text
            lines = [paragraph.text.replace("\v", "\n") for paragraph in cell.text_frame.paragraphs]
            builder.add("\n".join(lines), kind="table_cell", page=slide, block=f"{path}/tr[{r}]/tc[{c}]")
