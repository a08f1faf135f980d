"""Text decoding: each legacy encoding found, byte order marks honoured, bytes that are not
surely text refused instead of turned into mojibake."""

from __future__ import annotations

import codecs
import random

import pytest

from nerflow.etl.extraction import ExtractionError
from nerflow.etl.extraction.text_encoding import DEFAULT_MIN_CONFIDENCE, decode_text, extract_text
from tests import samples_text as samples


@pytest.mark.parametrize(
    ("data", "expected_text", "encoding"),
    [
        (samples.cp1251_text(), samples.RUSSIAN_TEXT, "cp1251"),
        (samples.cp1252_text(), samples.GERMAN_FRENCH_TEXT, "cp1252"),
        (samples.gb18030_text(), samples.CHINESE_TEXT, "gb18030"),
        (samples.shift_jis_text(), samples.JAPANESE_TEXT, "shift_jis"),
    ],
    ids=["cp1251", "cp1252", "gb18030", "shift_jis"],
)
def test_legacy_encodings_are_detected(data: bytes, expected_text: str, encoding: str) -> None:
    decoded = decode_text(data)
    assert decoded.encoding == encoding
    assert decoded.text.replace("\r\n", "\n") == expected_text
    assert DEFAULT_MIN_CONFIDENCE <= decoded.confidence <= 1.0


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_a_byte_order_mark_decides(bom: bytes, encoding: str) -> None:
    text = "Ньютон met Zoë at Acme GmbH."
    decoded = decode_text(bom + text.encode(encoding.removesuffix("-sig")))
    assert (decoded.text, decoded.encoding, decoded.confidence) == (text, encoding, 1.0)


def test_utf16_jsonl_of_powershell() -> None:
    decoded = decode_text(samples.utf16_jsonl())
    assert decoded.encoding == "utf-16-le"
    assert not decoded.text.startswith("\ufeff")
    assert decoded.text.splitlines()[2].startswith('{"id": "ps-3"')


def test_valid_utf8_is_utf8() -> None:
    assert decode_text("Straße in Zürich".encode()).encoding == "utf-8"
    assert decode_text(b"").text == ""


def test_utf16_without_bom_only_when_sure() -> None:
    decoded = decode_text(samples.RUSSIAN_TEXT.encode("utf-16-le"))
    assert (decoded.encoding, decoded.text) == ("utf-16-le", samples.RUSSIAN_TEXT)


def test_iso2022_jp_is_not_read_as_ascii() -> None:
    decoded = decode_text(samples.JAPANESE_TEXT.encode("iso2022_jp"))
    assert (decoded.encoding, decoded.text) == ("iso2022-jp", samples.JAPANESE_TEXT)


def test_random_bytes_are_refused() -> None:
    rng = random.Random(20260105)
    for size in (16, 64, 512, 4096):
        data = bytes(rng.randrange(1, 256) for _ in range(size))  # no NULs: not the binary rule
        with pytest.raises(ExtractionError, match=r"^encoding not determined with confidence: best guess "):
            decode_text(data)


def test_binary_is_refused() -> None:
    rng = random.Random(7)
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(rng.randrange(256) for _ in range(600))
    with pytest.raises(ExtractionError, match=r"^binary content: not text$"):
        decode_text(data)


def test_too_little_evidence_is_refused_not_guessed() -> None:
    # Six bytes: every Latin code page decodes them cleanly; which is right is a coin toss.
    with pytest.raises(ExtractionError, match=r"best guess .* at 0\.[0-5]"):
        decode_text("Müller".encode("cp1252"))


def test_extract_text_makes_one_segment_per_paragraph() -> None:
    doc = extract_text(samples.cp1251_text())
    assert doc.info.format == "text"
    assert (doc.info.encoding, doc.info.encoding_confidence) == (
        "cp1251",
        decode_text(samples.cp1251_text()).confidence,
    )
    paragraphs = samples.RUSSIAN_TEXT.split("\n\n")
    assert doc.text == samples.RUSSIAN_TEXT
    assert [doc.text[s.start : s.end] for s in doc.segments] == paragraphs
    assert [(s.kind, s.block) for s in doc.segments] == [("paragraph", "p[1]"), ("paragraph", "p[2]")]


def test_extract_text_refuses_binary() -> None:
    with pytest.raises(ExtractionError, match="binary content"):
        extract_text(b"\x00\x01\x02\x03" * 64)
