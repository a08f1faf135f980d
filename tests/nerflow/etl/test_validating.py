"""Validating a batch: whole documents to quarantine, the failure threshold, duplicates across
batches, reconciliation, and the run's contract results."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from nerflow.etl import validating
from nerflow.etl.errors import BatchRejectedError, ContractViolationError, ReconciliationError
from nerflow.etl.report import render_contract_report, summarise
from nerflow.etl.validating import DUPLICATE_CHECK, ValidateConfig, contract_results, validate_batch
from tests.nerflow.etl.test_tables import OBJ_A, RUN, _inputs

LABELS = ("PER", "ORG", "LOC", "MISC")


def _with_entities(annotation, **columns):
    """The annotation with entity columns replaced (``name=[values]``)."""
    table = annotation.entities
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    return dataclasses.replace(annotation, entities=table)


def test_a_good_batch_passes_untouched():
    batch, normalised, annotation = _inputs(embeddings=True)
    out = validate_batch(batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, embedding_dim=4))
    v = out.validation
    assert v.quarantined == {} and v.failed_docs == 0 and v.checked_docs == 2
    assert [r.table for r in v.results] == ["documents", "entities", "segments", "quarantine", "entity_embeddings"]
    assert all(r.success for r in v.results)
    assert v.reconciliation.to_dict() == {
        "docs_in": 4,
        "docs_ok": 1,
        "docs_empty": 1,
        "docs_quarantined": 2,
        "entities": 2,
        "entities_counted": 2,
        "vectors": 2,
        "ok": True,
    }
    assert out.doc_ids == {"d1", "d2"} and (out.device, out.annotate_seconds) == ("cpu", 0.1)
    # d3 failed in the engine: quarantined, yet its id is taken (a later record with it is a duplicate).
    assert out.claimed_doc_ids == {"d1", "d2", "d3"}


def test_a_failing_entity_takes_its_whole_document_to_quarantine():
    batch, normalised, annotation = _inputs(embeddings=True)
    annotation = _with_entities(annotation, score=[0.9, 1.5])
    out = validate_batch(
        batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, embedding_dim=4, max_failure_rate=0.5)
    )
    t = out.tables
    assert t.documents.column("doc_id").to_pylist() == ["d2"]
    assert t.entities.num_rows == 0 and t.embeddings.num_rows == 0, "its other entity and the vectors left with it"
    row = t.quarantine.to_pylist()[-1]
    assert (row["doc_id"], row["stage"], row["check"], row["record"]) == (
        "d1",
        "validate",
        "entities.score_in_unit_interval",
        1,
    )
    assert row["source_uri"] == OBJ_A.uri and row["raw_excerpt"] == "Angela Merkel in Berlin"
    assert row["reason"] == (
        "contract entities.score_in_unit_interval: 0 <= score <= 1; entity [17, 23) LOC 'Berlin' score 1.500"
    )
    v = out.validation
    assert v.quarantined == {"entities.score_in_unit_interval": 1} and (v.failed_docs, v.checked_docs) == (1, 2)
    assert v.failure_rate == 0.5 and "d1" in out.claimed_doc_ids, "a failing first record still claims its id"
    # Still every record once: 4 in = 0 ok + 1 empty + 3 quarantined; the manifest counts agree.
    assert v.reconciliation.to_dict()["ok"] and v.reconciliation.docs_quarantined == 3
    counts = {r["source_uri"]: r for r in t.object_counts.to_dicts()}[OBJ_A.uri]
    assert (counts["docs_ok"], counts["docs_empty"], counts["docs_quarantined"], counts["entities"]) == (0, 1, 3, 0)


def test_several_failures_of_one_document_make_one_quarantine_row():
    batch, normalised, annotation = _inputs()
    annotation = _with_entities(annotation, label=["FOO", "BAR"], score=[2.0, 0.5])
    out = validate_batch(batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, max_failure_rate=1.0))
    [row] = [r for r in out.tables.quarantine.to_pylist() if r["stage"] == "validate"]
    # The first failing row, then its first failing check in suite order.
    assert row["check"] == "entities.label_known"
    assert row["reason"].endswith("(and 1 more failing rows of this document)")


def test_a_batch_over_the_failure_threshold_is_rejected():
    batch, normalised, annotation = _inputs()
    annotation = _with_entities(annotation, end=[13, 99])
    with pytest.raises(
        BatchRejectedError,
        match=(
            r"1 of 2 documents \(50%\) broke the contracts, more than max_failure_rate 5%; nothing of the batch was "
            r"written\. Failed checks: entities\.end_within_document x1\. First: memory:///in/a\.jsonl doc_id='d1': .*"
            r"\(batch='b1'\)"
        ),
    ):
        validate_batch(batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS))
    with pytest.raises(BatchRejectedError):
        validate_batch(batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, max_failure_rate=0.0))


def test_ids_written_by_an_earlier_batch_are_quarantined_and_do_not_count_as_failures():
    batch, normalised, annotation = _inputs()
    out = validate_batch(
        batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, max_failure_rate=0.0), earlier_doc_ids={"d1"}
    )
    assert out.doc_ids == {"d2"} and out.tables.entities.num_rows == 0
    assert out.claimed_doc_ids == {"d2", "d3"}
    [row] = [r for r in out.tables.quarantine.to_pylist() if r["stage"] == "validate"]
    assert row["check"] == DUPLICATE_CHECK and row["reason"].startswith(
        "duplicate doc_id: an earlier batch of this run"
    )
    v = out.validation
    assert v.quarantined == {DUPLICATE_CHECK: 1} and v.failed_docs == 0 and v.checked_docs == 1


def test_an_invalid_quarantine_row_is_a_bug_whatever_the_rate():
    batch, normalised, annotation = _inputs()
    failed = annotation.failed.with_columns(record=annotation.failed["record"] * 0)
    annotation = dataclasses.replace(annotation, failed=failed)
    with pytest.raises(
        ContractViolationError,
        match=r"batch b1: quarantine\.record_positive: 1 rows failed.*"
        r"\(table='quarantine'\)",
    ):
        validate_batch(batch, normalised, annotation, RUN, ValidateConfig(labels=LABELS, max_failure_rate=1.0))


def test_counts_that_do_not_add_up_stop_the_batch(monkeypatch):
    real = validating.build_tables

    def lose_a_document(*args):
        tables = real(*args)
        return dataclasses.replace(tables, documents=tables.documents.slice(0, 1))

    monkeypatch.setattr(validating, "build_tables", lose_a_document)
    with pytest.raises(ReconciliationError, match=r"4 documents in != 1 ok \+ 0 empty \+ 2 quarantined \(batch='b1'\)"):
        validate_batch(*_inputs(), RUN, ValidateConfig(labels=LABELS))


def test_validate_config_checks():
    with pytest.raises(ValueError, match=r"max_failure_rate must be in \[0, 1\]"):
        ValidateConfig(labels=LABELS, max_failure_rate=1.5)
    with pytest.raises(ValueError, match="embedding_dim must not be negative"):
        ValidateConfig(labels=LABELS, embedding_dim=-1)
    with pytest.raises(ValueError, match="labels must name at least one label"):
        ValidateConfig(labels=())


def test_run_results_add_up_batches_and_render_as_markdown():
    batch, normalised, annotation = _inputs()
    config = ValidateConfig(labels=LABELS, max_failure_rate=1.0)
    good = validate_batch(batch, normalised, annotation, RUN, config).validation
    bad = validate_batch(batch, normalised, _with_entities(annotation, score=[0.9, 1.5]), RUN, config).validation
    results = contract_results(
        [good, bad], config, versions={"documents": 2, "entities": 2, "segments": 1, "quarantine": 2}
    )
    assert json.loads(json.dumps(results)) == results, "JSON as stored in _manifest/runs"
    assert results["batches"] == 2 and results["quarantined"] == {"entities.score_in_unit_interval": 1}
    assert results["tables"]["entities"]["rows"] == 4
    assert results["tables"]["entities"]["checks"]["score_in_unit_interval"] == 1
    assert not results["tables"]["entities"]["success"] and results["tables"]["documents"]["success"]
    assert results["reconciliation"] == {
        "docs_in": 8,
        "docs_ok": 1,
        "docs_empty": 2,
        "docs_quarantined": 5,
        "entities": 2,
        "entities_counted": 2,
        "vectors": None,
        "ok": True,
    }

    summary = summarise(
        [],
        run_id="r",
        run_label=None,
        input_uri="in",
        output_uri="out",
        model_id="m",
        devices=["cpu"],
        listed=1,
        skipped=0,
        ignored=0,
        superseded=0,
        seconds=1.0,
        tables={},
    )
    summary = dataclasses.replace(
        summary, quarantine_reasons={"not JSON": 2, "contract entities.score_in_unit_interval": 1}
    )
    text = render_contract_report(summary, results, status="failed", error="BatchRejectedError: too many | pipes")
    assert text.startswith("# extract-entities failed\n")
    assert "**Failed:** BatchRejectedError: too many \\| pipes" in text
    assert "| documents in (records read) | 8 |" in text and "**yes**" in text
    assert "| entities | v2 | 4 | 18 | 1 | FAIL |" in text  # the schema and 17 row checks
    assert "| entities.score_in_unit_interval | 1 |" in text
    assert "| not JSON | 2 |" in text
