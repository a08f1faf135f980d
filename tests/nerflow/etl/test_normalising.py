"""Normalising: NFC, control characters, whitespace, empty documents, digests, languages."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerflow.etl.normalising import NormaliseConfig, detect_languages, normalise_batch, normalise_text_expr
from nerflow.etl.quarantine import QUARANTINE_SCHEMA
from nerflow.etl.reading import RECORD_SCHEMA, ReadBatch
from tests.conftest import REPO_ROOT


def _norm(text: str) -> str:
    return pl.DataFrame({"text": [text]}).select(normalise_text_expr()).item()


def _read(*records: dict) -> ReadBatch:
    rows = [
        {
            "doc_id": r.get("doc_id", str(i)),
            "text": r["text"],
            "lang": r.get("lang"),
            "metadata": None,
            "source_uri": "memory:///in/x.jsonl",
            "record": i + 1,
            "format": "jsonl",
        }
        for i, r in enumerate(records)
    ]
    return ReadBatch("b1", pl.DataFrame(rows, schema=RECORD_SCHEMA), QUARANTINE_SCHEMA.to_frame())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Cafe\u0301", "Caf\u00e9"),  # NFC composes
        ("Ange\x00la\x1b Merkel\x7f", "Angela Merkel"),  # controls removed
        ("a\x0cb", "a\nb"),  # a form feed separates words: it becomes a line break
        ("one\r\ntwo\rthree\u2028four\x85five", "one\ntwo\nthree\nfour\nfive"),
        ("a  \u00a0 b\u2003c", "a b c"),  # spaces of any kind collapse to one
        ("col1\t\tcol2 \t col3", "col1\tcol2\tcol3"),  # a run holding a tab stays a tab
        ("line one   \n   line two", "line one\nline two"),
        ("para one\n\n\n\n\npara two", "para one\n\npara two"),  # a paragraph break survives
        ("  \n padded \n\t ", "padded"),
        ("e\x00\u0301", "\u00e9"),  # NFC after the control is gone
        ("zero\u200bwidth", "zero\u200bwidth"),  # format characters are kept
    ],
)
def test_text_rules(raw, expected):
    assert _norm(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_normalisation_is_idempotent_and_leaves_no_stray_controls(text):
    once = _norm(text)
    assert _norm(once) == once
    assert not any(ord(c) < 32 and c not in "\t\n" for c in once)
    assert once == once.strip()
    assert "  " not in once and "\n\n\n" not in once


def test_documents_frame_digests_counts_and_statuses():
    out = normalise_batch(
        _read({"text": "Angela  Merkel\r\nin Berlin", "lang": "de"}, {"text": " \t\n "}), NormaliseConfig()
    )
    ok, empty = out.documents.to_dicts()
    assert ok["text"] == "Angela Merkel\nin Berlin"
    assert ok["text_sha256"] == hashlib.sha256(ok["text"].encode()).hexdigest()
    assert ok["n_chars"] == len(ok["text"]) and ok["status"] == "ok"
    # An empty document is kept (status "empty"), never dropped; it gets no detected language.
    assert (empty["text"], empty["status"], empty["lang"], empty["lang_detected"]) == ("", "empty", "und", False)
    assert empty["text_sha256"] == hashlib.sha256(b"").hexdigest()
    assert out.docs_in == 2


def test_given_languages_are_cleaned_and_missing_ones_detected():
    out = normalise_batch(
        _read(
            {"text": "Der Bundestag hat heute in Berlin über das neue Gesetz abgestimmt.", "lang": " DE_at "},
            {"text": "El presidente del Gobierno se reunió ayer en Madrid con los sindicatos."},
            {"text": "Le Premier ministre a présenté hier à Paris son projet de loi.", "lang": "not a/tag"},
        ),
        NormaliseConfig(),
    )
    rows = out.documents.to_dicts()
    assert [(r["lang"], r["lang_detected"]) for r in rows] == [("de-at", False), ("es", True), ("fr", True)]


def test_detection_is_restricted_to_the_configured_languages():
    text = "Der Bundestag hat heute in Berlin über das neue Gesetz abgestimmt."
    assert detect_languages([text], NormaliseConfig(languages=("en", "de"))) == ["de"]
    assert detect_languages([text], NormaliseConfig(languages=("nl",))) == ["nl"]
    assert detect_languages([], NormaliseConfig()) == []


def test_normalise_config_checks():
    with pytest.raises(ValueError, match="at least one language"):
        NormaliseConfig(languages=())
    with pytest.raises(ValueError, match="min_relative_distance"):
        NormaliseConfig(min_relative_distance=1.5)


def test_repeated_doc_ids_in_a_batch_are_quarantined_not_lost():
    out = normalise_batch(
        _read({"doc_id": "a", "text": "first", "lang": "en"}, {"doc_id": "a", "text": "second", "lang": "en"})
    )
    assert out.documents.get_column("text").to_list() == ["first"]
    [q] = out.quarantine.to_dicts()
    assert (q["doc_id"], q["record"], q["stage"]) == ("a", 2, "normalise")
    assert q["reason"].startswith("duplicate doc_id") and q["raw_excerpt"] == "second"
    assert out.docs_in == 2


def test_the_shipped_examples_read_cleanly_and_languages_match_their_ids():

    from nerflow import storage
    from nerflow.etl.listing import BatchingConfig, group_batches
    from nerflow.etl.reading import ReadConfig, read_batch

    fs, root = storage.filesystem(str(REPO_ROOT / "examples" / "documents"))
    [batch] = group_batches(storage.list_objects(fs, root), BatchingConfig(batch_bytes=1 << 30))
    read = read_batch(fs, batch, ReadConfig())
    # 50 documents in ten languages, and files/: one file of each rich format (11 documents).
    assert read.quarantine.height == 0 and read.records.height == 61
    every = normalise_batch(read).documents
    assert every.filter(pl.col("status") != "ok").height == 0
    assert every.filter(pl.col("source_uri").str.contains("/files/")).height == 11
    docs = every.filter(~pl.col("source_uri").str.contains("/files/"))
    expected = [d.split("-", 1)[0] if "-" in d.split("/")[0] else "en" for d in docs.get_column("doc_id")]
    assert docs.get_column("lang").to_list() == expected
    assert docs.get_column("lang_detected").sum() >= 20, "about half the examples rely on detection"
    assert sorted(set(expected)) == ["de", "en", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh"]
    assert docs.get_column("n_chars").max() > 15_000


def test_unknown_language_codes_are_refused():
    with pytest.raises(ValueError, match=r"ISO 639-1 codes that Lingua detects, got \['xx'\]"):
        NormaliseConfig(languages=("en", "xx"))
