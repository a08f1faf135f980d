"""The PPTX reader: reading order, kinds, slides as pages, notes and tables, and what it refuses."""

from __future__ import annotations

import pytest

from nerflow.etl.extraction import ExtractedDocument, ExtractionError
from nerflow.etl.extraction.pptx import extract_pptx
from tests.samples_office import SLIDES_TITLE, encrypted_office, legacy_ppt, report_docx, slides_pptx


def _blocks(doc: ExtractedDocument) -> list[tuple[str, int | None, str | None, str]]:
    return [(s.kind, s.page, s.block, doc.text[s.start : s.end]) for s in doc.segments]


def test_slides_in_order_title_first_then_shapes_groups_and_notes() -> None:
    doc = extract_pptx(slides_pptx())
    assert _blocks(doc) == [
        ("title", 1, "slide[1]/shape[1]/p[1]", SLIDES_TITLE),
        ("paragraph", 1, "slide[1]/shape[2]/p[1]", "Lindqvist Harbour Authority"),
        # The title placeholder is read first wherever the slide keeps it.
        ("title", 2, "slide[2]/shape[1]/p[1]", "Opening"),
        ("paragraph", 2, "slide[2]/shape[2]/p[1]", "Maren Holloway opened the terminal at Port Aldren."),
        ("paragraph", 2, "slide[2]/shape[2]/p[2]", "Northwind Shipping runs the route\nfrom the spring."),
        ("paragraph", 2, "slide[2]/shape[3]/p[1]", "Source: Regional Council"),
        ("paragraph", 2, "slide[2]/shape[4]/shape[1]/p[1]", "Veska"),
        ("paragraph", 2, "slide[2]/shape[4]/shape[2]/p[1]", "Tomas Eriksen"),
        ("notes", 2, "slide[2]/notes/p[1]", "Thank Anna Berg of the Coastal Heritage Society."),
        # A hidden slide is read: its text is the file's.
        ("title", 3, "slide[3]/shape[1]/p[1]", "Operators"),
        ("table_cell", 3, "slide[3]/shape[2]/tr[1]/tc[1]", "Name"),
        ("table_cell", 3, "slide[3]/shape[2]/tr[1]/tc[2]", "Organisation"),
        ("table_cell", 3, "slide[3]/shape[2]/tr[2]/tc[1]", "Maren Holloway"),
        ("table_cell", 3, "slide[3]/shape[2]/tr[2]/tc[2]", "Lindqvist Harbour Authority"),
        ("table_cell", 3, "slide[3]/shape[2]/tr[3]/tc[1]", "Baltic Ferries until 2023"),  # merged: once
    ]


def test_slide_count_and_title_from_the_file() -> None:
    info = extract_pptx(slides_pptx()).info
    assert (info.format, info.page_count, info.title) == ("pptx", 3, SLIDES_TITLE)


def test_sample_bytes_are_deterministic() -> None:
    assert slides_pptx() == slides_pptx()


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: b"Slide one: Veska", r"^not a PPTX: not a zip archive$"),
        (report_docx, r"^not a PPTX: no ppt/presentation\.xml$"),
        (encrypted_office, r"^password-protected Office file: encrypted, no text can be read$"),
        (legacy_ppt, r"^legacy PowerPoint \.ppt \(OLE\) file: not supported; save as \.pptx$"),
    ],
    ids=["not-a-zip", "a-docx", "encrypted", "legacy-ppt"],
)
def test_refused_files(build, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_pptx(build())
