"""Tables: entity ids, contracts, accounting of every record."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from data_contracts.schemas import DOCUMENTS, ENTITIES, QUARANTINE
from ner_core import EngineStats
from nerflow.etl.annotating import DOC_STATS_SCHEMA, ENTITY_SCHEMA, Annotation
from nerflow.etl.listing import Batch
from nerflow.etl.normalising import normalise_batch
from nerflow.etl.quarantine import QUARANTINE_SCHEMA
from nerflow.etl.reading import RECORD_SCHEMA, ReadBatch
from nerflow.etl.tables import RunContext, build_tables, entity_id
from nerflow.storage import StoredObject

RUN = RunContext(run_id="run-1", ingest_date="2026-11-24")
OBJ_A = StoredObject(uri="memory:///in/a.jsonl", path="/in/a.jsonl", relpath="a.jsonl", size=100, version="v")
OBJ_B = StoredObject(uri="memory:///in/b.jsonl", path="/in/b.jsonl", relpath="b.jsonl", size=5, version="v")


def test_entity_id_is_stable_and_field_separated():
    a = entity_id("doc", 0, 13, "PER", "m1")
    assert a == entity_id("doc", 0, 13, "PER", "m1") and len(a) == 32
    assert a != entity_id("doc", 0, 13, "PER", "m2")
    assert entity_id("a1", 2, 3, "X", "m") != entity_id("a", 12, 3, "X", "m")


def _inputs(embeddings: bool = False):
    records = pl.DataFrame(
        [
            {
                "doc_id": "d1",
                "text": "Angela Merkel in Berlin",
                "lang": "de",
                "metadata": None,
                "source_uri": OBJ_A.uri,
                "record": 1,
            },
            {"doc_id": "d2", "text": "   ", "lang": "en", "metadata": None, "source_uri": OBJ_A.uri, "record": 2},
            {"doc_id": "d3", "text": "poison", "lang": "en", "metadata": None, "source_uri": OBJ_A.uri, "record": 3},
        ],
        schema=RECORD_SCHEMA,
    ).with_columns(format=pl.lit("jsonl"))
    bad = pl.DataFrame(
        [
            {
                "source_uri": OBJ_A.uri,
                "doc_id": None,
                "record": 4,
                "stage": "read",
                "reason": "not JSON: x",
                "raw_excerpt": "{",
            }
        ],
        schema=QUARANTINE_SCHEMA,
    )
    normalised = normalise_batch(ReadBatch("b1", records, bad))
    entities = pa.table(
        {
            "doc_id": ["d1", "d1"],
            "start": [0, 17],
            "end": [13, 23],
            "text": ["Angela Merkel", "Berlin"],
            "label": ["PER", "LOC"],
            "score": [0.9, 0.8],
        },
        schema=ENTITY_SCHEMA,
    )
    stats = pa.table({"doc_id": ["d1"], "n_tokens": [5], "n_windows": [1], "n_entities": [2]}, schema=DOC_STATS_SCHEMA)
    failed = pl.DataFrame(
        [
            {
                "source_uri": OBJ_A.uri,
                "doc_id": "d3",
                "record": 3,
                "stage": "annotate",
                "reason": "engine failed: x",
                "raw_excerpt": "poison",
            }
        ],
        schema=QUARANTINE_SCHEMA,
    )
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4) if embeddings else None
    annotation = Annotation("b1", "m1", "cpu", entities, stats, vectors, failed, EngineStats(), 0.1)
    return Batch(batch_id="b1", index=0, objects=(OBJ_A, OBJ_B)), normalised, annotation


def test_tables_fit_their_contracts_and_account_for_every_record():
    batch, normalised, annotation = _inputs()
    t = build_tables(batch, normalised, annotation, RUN)
    assert t.documents.schema.equals(DOCUMENTS.schema, check_metadata=False)
    assert t.entities.schema.equals(ENTITIES.schema, check_metadata=False)
    assert t.quarantine.schema.equals(QUARANTINE.schema, check_metadata=False)
    docs = {r["doc_id"]: r for r in t.documents.to_pylist()}
    # d3 failed in the engine: it moved to quarantine, so it is counted exactly once.
    assert set(docs) == {"d1", "d2"}
    assert (docs["d1"]["n_entities"], docs["d1"]["n_tokens"], docs["d1"]["status"]) == (2, 5, "ok")
    assert (docs["d2"]["n_entities"], docs["d2"]["n_windows"], docs["d2"]["status"]) == (0, 0, "empty")
    assert t.quarantine.column("stage").to_pylist() == ["read", "annotate"]
    assert set(t.quarantine.column("run_id").to_pylist()) == {"run-1"}
    ents = t.entities.to_pylist()
    assert [e["lang"] for e in ents] == ["de", "de"] and ents[0]["entity_id"] == entity_id("d1", 0, 13, "PER", "m1")
    assert {e["model_id"] for e in ents} == {"m1"} and {e["ingest_date"] for e in ents} == {"2026-11-24"}
    counts = {r["source_uri"]: r for r in t.object_counts.to_dicts()}
    assert counts[OBJ_A.uri] == {
        "source_uri": OBJ_A.uri,
        "docs_ok": 1,
        "docs_empty": 1,
        "docs_quarantined": 2,
        "entities": 2,
    }
    # An object that yielded nothing still gets its (zero) counts for the manifest.
    assert counts[OBJ_B.uri]["docs_ok"] == 0 and counts[OBJ_B.uri]["docs_quarantined"] == 0
    docs_in = normalised.docs_in
    assert docs_in == 4 == t.documents.num_rows + t.quarantine.num_rows


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_embeddings_table(dtype):
    batch, normalised, annotation = _inputs(embeddings=True)
    t = build_tables(
        batch, normalised, annotation, RunContext(run_id="r", ingest_date="2026-01-02", embedding_dtype=dtype)
    )
    assert t.embeddings_contract.schema.field("vector").type.list_size == 4
    assert t.embeddings.column("entity_id").to_pylist() == t.entities.column("entity_id").to_pylist()
    assert t.embeddings.column("vector").to_pylist()[1] == [4.0, 5.0, 6.0, 7.0]
    assert [c.name for c, _ in t.contracts()] == [
        "documents",
        "entities",
        "segments",
        "quarantine",
        "entity_embeddings",
    ]


def test_run_context_checks():
    with pytest.raises(ValueError, match="ingest_date must be YYYY-MM-DD"):
        RunContext(run_id="r", ingest_date="24/11/2026")
    with pytest.raises(ValueError, match="embedding_dtype"):
        RunContext(run_id="r", ingest_date="2026-11-24", embedding_dtype="int8")


def test_an_object_with_no_records_still_gets_a_manifest_row():
    from nerflow.etl.normalising import DOCUMENT_SCHEMA, NormalisedBatch

    empty = Annotation(
        "b0",
        "m1",
        "cpu",
        ENTITY_SCHEMA.empty_table(),
        DOC_STATS_SCHEMA.empty_table(),
        None,
        QUARANTINE_SCHEMA.to_frame(),
        EngineStats(),
        0.0,
    )
    normalised = NormalisedBatch("b0", DOCUMENT_SCHEMA.to_frame(), QUARANTINE_SCHEMA.to_frame())
    t = build_tables(Batch(batch_id="b0", index=0, objects=(OBJ_B,)), normalised, empty, RUN)
    assert (t.documents.num_rows, t.entities.num_rows, t.quarantine.num_rows) == (0, 0, 0)
    assert t.object_counts.to_dicts() == [
        {"source_uri": OBJ_B.uri, "docs_ok": 0, "docs_empty": 0, "docs_quarantined": 0, "entities": 0}
    ]
