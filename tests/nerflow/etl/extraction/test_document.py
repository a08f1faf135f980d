"""The text builder: segments point into the text, and the text is in the normal form."""

from __future__ import annotations

import numpy as np
import pytest

from nerflow.etl.extraction import DocumentInfo, TextBuilder
from nerflow.etl.normal_form import normalise_text


def test_segments_point_into_the_built_text() -> None:
    b = TextBuilder()
    b.add("  Annual  report ", kind="title", block="h1")
    b.add("\n\n", kind="paragraph")  # empty after normalisation: no text, no segment
    b.add("Anna Berg\r\nworks at ACME.", kind="paragraph", block="p[1]")
    b.add("Line two", kind="line", separator="\n")
    doc = b.build(DocumentInfo(format="html"))
    assert doc.text == "Annual report\n\nAnna Berg\nworks at ACME.\nLine two"
    assert normalise_text(doc.text) == doc.text
    assert [doc.text[s.start : s.end] for s in doc.segments] == [
        "Annual report",
        "Anna Berg\nworks at ACME.",
        "Line two",
    ]
    assert [s.block for s in doc.segments] == ["h1", "p[1]", None]


def test_char_boxes_follow_the_characters_that_survive() -> None:
    raw = "A  B\r\nC"
    boxes = np.array([[i, 0, i + 1, 10] for i in range(len(raw))], dtype=np.float32)
    b = TextBuilder()
    seg = b.add(raw, kind="line", page=1, char_boxes=boxes, page_size=(612.0, 792.0))
    assert seg is not None
    assert b.build(DocumentInfo(format="pdf")).text == "A B\nC"
    assert seg.char_boxes is not None
    assert seg.char_boxes[:, 0].tolist() == [0, 1, 3, 4, 6]  # the run of spaces keeps its first
    assert seg.box == (0.0, 0.0, 7.0, 10.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="separator"):
        TextBuilder().add("x", kind="line", separator=" ")
    with pytest.raises(ValueError, match="char_boxes"):
        TextBuilder().add("xy", kind="line", char_boxes=np.zeros((1, 4)))


def test_long_blocks_without_boxes_take_the_same_rules() -> None:
    raw = ("Anna\u00a0 Berg\r\n\r\n\r\n works at ACME\x07. " * 40).strip()
    b = TextBuilder()
    seg = b.add(raw, kind="paragraph")
    doc = b.build(DocumentInfo(format="text"))
    assert seg is not None and len(raw) > 512
    assert doc.text == normalise_text(raw) == doc.text[seg.start : seg.end]
