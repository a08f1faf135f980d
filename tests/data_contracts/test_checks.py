"""Every row check catches its violation, and only the rows that break it.

One synthetic batch holds one defect per document (so one GX run covers every check); the
expected failures are listed beside each row.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.schemas import DOCUMENTS, ENTITIES, QUARANTINE, SEGMENTS, entity_embeddings
from data_contracts.suites import MODEL_DIM, MODEL_LABELS, TABLE_CHECKS, checks_for
from data_contracts.validation import schema_check, validate_tables

TEXT = "Angela Merkel visited Paris ."
LABELS = ("PER", "ORG", "LOC", "MISC")

# (doc_id, start, end, text, label, score, entity_id) -> the check this row must fail (None: passes)
ENTITY_ROWS = [
    (("d0", 0, 13, "Angela Merkel", "PER", 0.9, "e0"), None),
    (("d1", -1, 5, "Angel", "PER", 0.9, "e1"), "start_not_negative"),
    (("d2", 5, 5, "", "PER", 0.9, "e2"), "start_before_end"),
    (("d3", 22, 99, "Paris .", "LOC", 0.9, "e3"), "end_within_document"),
    (("d4", 0, 6, "Angelo", "PER", 0.9, "e4"), "text_is_document_slice"),
    (("d5", 22, 27, "Paris", "FOO", 0.9, "e5"), "label_known"),
    (("d6", 22, 27, "Paris", "LOC", 1.5, "e6"), "score_in_unit_interval"),
    (("d7", 22, 27, "Paris", "LOC", math.nan, "e7"), "score_not_null"),
    (("d8", 0, 6, "Angela", "PER", 0.9, "same"), "entity_id_unique"),
    (("d8", 22, 27, "Paris", "LOC", 0.9, "same"), "entity_id_unique"),
    (("d9", 0, 13, "Angela Merkel", "PER", 0.9, "e9a"), None),
    (("d9", 7, 13, "Merkel", "PER", 0.5, "e9b"), "no_overlap"),
    (("dX", 0, 6, "Angela", "PER", 0.9, "eX"), "document_present"),
]

# A two-page PDF document "dP" (612 x 792 points): entities with pages and boxes.
_BOX = {"page": 1, "left": 10.0, "bottom": 700.0, "right": 90.0, "top": 712.0}
PDF_ENTITY_ROWS = [
    (("dP", 0, 13, "Angela Merkel", "PER", 0.9, "p0"), {"page": 1, "boxes": [_BOX]}, None),
    (("dP", 14, 21, "visited", "PER", 0.9, "p1"), {"page": 3, "boxes": None}, "page_in_document"),
    (("dP", 22, 27, "Paris", "LOC", 0.9, "p2"), {"page": 2, "boxes": [{**_BOX, "right": 700.0}]}, "boxes_inside_page"),
]

# (segment, start, end, page) of dP -> the check it must fail
SEGMENT_ROWS = [
    ((0, 0, 13, 1), None),
    ((1, 14, 21, 2), None),
    ((2, 18, 22, 2), "in_order_without_overlap"),
    ((3, 22, 25, 5), "page_in_document"),
    ((4, 25, 99, 2), "end_within_document"),
]

# doc_id -> (changes to a good row, the check it must fail)
DOCUMENT_ROWS = {
    "d10": ({"n_entities": 5}, "n_entities_matches_entities"),
    "d12": ({"status": "weird"}, "status_known"),
    "d13": ({"n_chars": 3}, "n_chars_is_text_length"),
    "d14": ({"text_sha256": "0" * 64}, "text_sha256_matches"),
    "d15": ({"lang": "EN!"}, "lang_is_a_tag"),
    "d16": ({"status": "empty"}, "empty_iff_no_text"),
}


def _documents() -> pa.Table:
    n_entities = {"dP": len(PDF_ENTITY_ROWS)}
    for (doc_id, *_), _check in ENTITY_ROWS:
        n_entities[doc_id] = n_entities.get(doc_id, 0) + 1
    rows = []
    ids = [f"d{i}" for i in range(10)] + list(DOCUMENT_ROWS) + ["d11", "d11", "dP"]
    for doc_id in ids:
        row = {
            "doc_id": doc_id,
            "source_uri": "memory:///in/a.jsonl",
            "record": 1,
            "lang_detected": False,
            "n_chars": len(TEXT),
            "n_tokens": 6,
            "n_windows": 1,
            "n_entities": n_entities.get(doc_id, 0),
            "text_sha256": hashlib.sha256(TEXT.encode()).hexdigest(),
            "text": TEXT,
            "status": "ok",
            "metadata": None,
            "format": "pdf" if doc_id == "dP" else "jsonl",
            "page_count": 2 if doc_id == "dP" else None,
            "model_id": "m",
            "run_id": "r",
            "ingest_date": "2026-11-24",
            "lang": "en",
        }
        row.update(DOCUMENT_ROWS.get(doc_id, ({}, None))[0])
        rows.append(row)
    return DOCUMENTS.conform(pa.Table.from_pylist(rows, schema=DOCUMENTS.schema))


def _entities() -> pa.Table:
    names = ["doc_id", "start", "end", "text", "label", "score", "entity_id"]
    rows = [
        dict(zip(names, values))
        | {
            "model_id": "m",
            "run_id": "r",
            "source_uri": "memory:///in/a.jsonl",
            "ingest_date": "2026-11-24",
            "lang": "en",
        }
        for values, _ in ENTITY_ROWS
    ]
    rows += [
        dict(zip(names, values))
        | where
        | {
            "model_id": "m",
            "run_id": "r",
            "source_uri": "memory:///in/p.pdf",
            "ingest_date": "2026-11-24",
            "lang": "en",
        }
        for values, where, _ in PDF_ENTITY_ROWS
    ]
    return ENTITIES.conform(pa.Table.from_pylist(rows, schema=ENTITIES.schema))


def _segments() -> pa.Table:
    rows = [
        {
            "doc_id": "dP",
            "segment": segment,
            "start": start,
            "end": end,
            "kind": "line",
            "page": page,
            "block": None,
            "left": 10.0,
            "bottom": 700.0,
            "right": 90.0,
            "top": 712.0,
            "page_width": 612.0,
            "page_height": 792.0,
            "model_id": "m",
            "run_id": "r",
            "source_uri": "memory:///in/p.pdf",
            "ingest_date": "2026-11-24",
            "lang": "en",
        }
        for (segment, start, end, page), _ in SEGMENT_ROWS
    ]
    return SEGMENTS.conform(pa.Table.from_pylist(rows, schema=SEGMENTS.schema))


def _embeddings() -> pa.Table:
    contract = entity_embeddings(4)
    vectors = np.ones((3, 4), np.float32)
    vectors[1, 2] = np.nan
    flat = pa.array(vectors.reshape(-1))
    return contract.conform(
        pa.table(
            {
                "entity_id": ["e0", "e9a", "nope"],
                "doc_id": ["d0", "d9", "d0"],
                "model_id": ["m"] * 3,
                "vector": pa.FixedSizeListArray.from_arrays(flat, 4),
                "source_uri": ["memory:///in/a.jsonl"] * 3,
                "run_id": ["r"] * 3,
                "ingest_date": ["2026-11-24"] * 3,
            }
        )
    )


def _quarantine() -> pa.Table:
    base = {
        "source_uri": "memory:///in/a.jsonl",
        "doc_id": None,
        "record": 3,
        "stage": "read",
        "reason": "not JSON: x",
        "check": None,
        "raw_excerpt": "{",
        "run_id": "r",
        "ingest_date": "2026-11-24",
    }
    rows = [
        base,
        {**base, "stage": "weird"},
        {**base, "stage": "validate"},
        {**base, "record": 0},
        {**base, "stage": "validate", "check": "entities.no_overlap", "doc_id": "d9"},
    ]
    return QUARANTINE.conform(pa.Table.from_pylist(rows))


@pytest.fixture(scope="module")
def results():
    tables = {
        "documents": _documents(),
        "entities": _entities(),
        "segments": _segments(),
        "entity_embeddings": _embeddings(),
        "quarantine": _quarantine(),
    }
    contracts = {
        "documents": DOCUMENTS,
        "entities": ENTITIES,
        "segments": SEGMENTS,
        "entity_embeddings": entity_embeddings(4),
        "quarantine": QUARANTINE,
    }
    return validate_tables(tables, contracts, labels=LABELS, embedding_dim=4)


def _failures(result) -> dict[str, tuple[int, ...]]:
    return {c.check: c.rows for c in result.checks if not c.success}


def test_each_broken_entity_row_fails_exactly_its_check(results):
    expected: dict[str, list[int]] = {}
    checks = [check for _, check in ENTITY_ROWS] + [check for *_, check in PDF_ENTITY_ROWS]
    for i, check in enumerate(checks):
        if check:
            expected.setdefault(check, []).append(i)
    assert _failures(results["entities"]) == {k: tuple(v) for k, v in expected.items()}
    assert results["entities"].checks[0].check == "schema" and results["entities"].checks[0].success


def test_each_broken_segment_row_fails_exactly_its_check(results):
    expected = {check: (i,) for i, (_, check) in enumerate(SEGMENT_ROWS) if check}
    assert _failures(results["segments"]) == expected


def test_each_broken_document_row_fails_exactly_its_check(results):
    docs = _documents().column("doc_id").to_pylist()
    expected = {check: (docs.index(doc_id),) for doc_id, (_, check) in DOCUMENT_ROWS.items()}
    expected["doc_id_unique_in_run"] = (len(docs) - 3, len(docs) - 2)
    # d2's entity is [5, 5) and d3's ends past the text: their n_entities still count the rows.
    assert _failures(results["documents"]) == expected


def test_vectors_must_be_finite_and_belong_to_an_entity(results):
    assert _failures(results["entity_embeddings"]) == {"values_finite": (1,), "entity_present": (2,)}


def test_quarantine_rows_name_a_known_stage_and_the_check_of_validation(results):
    assert _failures(results["quarantine"]) == {"stage_known": (1,), "check_named": (2,), "record_positive": (3,)}


def test_vectors_of_another_width_than_the_model_fail():
    tables = {"entities": _entities(), "entity_embeddings": _embeddings()}
    [result] = validate_tables(tables, {"entity_embeddings": entity_embeddings(4)}, embedding_dim=8).values()
    assert _failures(result)["width_is_model_dim"] == (0, 1, 2)


def test_checks_needing_unknown_values_are_skipped_and_said_so():
    checks, skipped = checks_for("entities", labels=None)
    assert "label_known" in skipped and "label_known" not in [c.name for c in checks]
    checks, skipped = checks_for("entities", labels=["PER"])
    [label] = [c for c in checks if c.name == "label_known"]
    assert label.kwargs["value_set"] == ["PER"] and skipped == ()
    assert next(c for c in TABLE_CHECKS["entities"] if c.name == "label_known").kwargs["value_set"] is MODEL_LABELS
    assert next(c for c in TABLE_CHECKS["entity_embeddings"] if c.name == "width_is_model_dim").needs() == (MODEL_DIM,)
    with pytest.raises(ValueError, match="no checks for table 'nope'"):
        checks_for("nope")


def test_check_names_are_unique_per_table():
    for table, checks in TABLE_CHECKS.items():
        names = [c.name for c in checks]
        assert len(names) == len(set(names)), table


def test_schema_check_names_every_difference():
    schema = ENTITIES.schema
    start = schema.get_field_index("start")
    changed = schema.set(start, pa.field("start", pa.int64(), nullable=False)).remove(schema.get_field_index("score"))
    changed = changed.append(pa.field("extra", pa.string()))
    result = schema_check(ENTITIES, changed, where="part-b1.parquet")
    assert not result.success
    assert result.message == (
        "part-b1.parquet: column 'start' is int64, the contract says int32; missing column 'score'; "
        "columns not in the contract: ['extra']"
    )
    nullable = schema.set(start, pa.field("start", pa.int32(), nullable=True))
    assert "column 'start' is nullable, the contract says required" in schema_check(ENTITIES, nullable).message
    assert schema_check(ENTITIES, ENTITIES.file_schema, file=True).success
