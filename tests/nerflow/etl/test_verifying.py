"""``nerflow validate``: an output that landed, checked against the contracts, good and tampered."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from data_contracts.schemas import QUARANTINE_V1
from nerflow import storage
from nerflow.cli import main
from nerflow.etl import writing
from nerflow.etl.validating import ValidateConfig, validate_batch
from nerflow.etl.verifying import render_report, verify_output
from tests.nerflow.etl.test_tables import OBJ_A, RUN, _inputs

LABELS = ("PER", "ORG", "LOC", "MISC")


def _record(**changes) -> dict:
    now = datetime.now(UTC)
    record = {
        "run_id": RUN.run_id,
        "run_label": None,
        "status": "completed",
        "input_uri": "in",
        "output_uri": "out",
        "model_ref": "tiny",
        "model_id": "m1",
        "model_labels": list(LABELS),
        "embedding_dim": 4,
        "devices": ["cpu"],
        "parameters": "{}",
        "objects_listed": 2,
        "objects_skipped": 0,
        "objects_ignored": 0,
        "objects_processed": 2,
        "objects_superseded": 0,
        "batches": 1,
        "docs_in": 4,
        "docs_ok": 1,
        "docs_empty": 1,
        "docs_quarantined": 2,
        "entities": 2,
        "chars": 23,
        "entities_by_label": [("LOC", 1), ("PER", 1)],
        "contract_results": "{}",
        "span_filter": "off",
        "spans": 40,
        "spans_scored": 40,
        "started_at": now,
        "finished_at": now,
        "seconds": 1.0,
    }
    return record | changes


@pytest.fixture
def output(tmp_path) -> Path:
    """An output of one committed batch (with vectors) and its run record."""
    fs, root = storage.filesystem(str(tmp_path / "out"))
    validated = validate_batch(*_inputs(embeddings=True), RUN, ValidateConfig(labels=LABELS, embedding_dim=4))
    writing.write_batch(fs, root, validated)
    writing.write_run_record(fs, root, _record())
    return Path(root)


def _verify(root: Path):
    fs, path = storage.filesystem(str(root))
    return verify_output(fs, path)


def _rewrite(path: Path, change) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def _entities_file(root: Path) -> Path:
    [path] = (root / "entities").rglob("*.parquet")
    return path


def test_a_good_output_passes(output):
    report = _verify(output)
    assert report.success, render_report(report)
    assert set(report.tables) == {
        "documents",
        "entities",
        "entity_embeddings",
        "quarantine",
        "_manifest/objects",
        "_manifest/runs",
    }
    assert report.tables["entities"].rows == 2 and report.tables["documents"].rows == 2
    assert [c.check for c in report.reconciliation] == [
        "documents_reconcile",
        "files_committed",
        "files_present",
        "objects_committed_once",
    ]
    assert report.notes == ()


def test_the_command_prints_a_report_and_exits_0_or_1(output, capsys):
    assert main(["validate", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"nerflow validate {output}\n") and printed.rstrip().endswith("result: ok")
    assert "entities                  v2      1         2  ok" in printed

    _rewrite(
        _entities_file(output),
        lambda t: t.set_column(
            t.schema.get_field_index("score"), t.schema.field("score"), pa.array([0.9, 1.5], pa.float32())
        ),
    )
    assert main(["validate", str(output)]) == 1
    printed = capsys.readouterr().out
    assert "entities                  v2      1         2  FAILED" in printed
    assert "    score_in_unit_interval: 1 of 2 rows failed (0 <= score <= 1)" in printed
    assert "      entities/ingest_date=2026-11-24/lang=de/part-b1.parquet row 2: doc_id='d1'" in printed
    assert printed.rstrip().endswith("result: FAILED (1 checks failed)")


def test_a_text_that_no_longer_matches_its_offsets_is_found(output):
    _rewrite(
        _entities_file(output),
        lambda t: t.set_column(
            t.schema.get_field_index("text"), t.schema.field("text"), pa.array(["Angela Merkel", "Bonn"])
        ),
    )
    report = _verify(output)
    [failed] = report.tables["entities"].failures()
    assert (failed.check, failed.rows) == ("text_is_document_slice", (1,))


def test_a_file_with_other_column_types_fails_its_schema(output):
    def widen(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("start")
        return t.set_column(i, pa.field("start", pa.int64(), nullable=False), pc.cast(t.column("start"), pa.int64()))

    _rewrite(_entities_file(output), widen)
    report = _verify(output)
    [schema] = report.tables["entities"].failures()[:1]
    assert schema.check == "schema"
    assert schema.message == (
        "entities/ingest_date=2026-11-24/lang=de/part-b1.parquet: column 'start' is int64, the contract says int32"
    )
    assert not report.success


def test_a_lost_documents_file_breaks_reconciliation(output):
    [docs] = (output / "documents").rglob("lang=de/*.parquet")
    docs.unlink()
    report = _verify(output)
    failed = {c.check for c in report.tables["entities"].failures()}
    assert "document_present" in failed
    reconcile = report.reconciliation[0]
    assert not reconcile.success
    assert reconcile.message == (
        "run run-1: the manifest counts 4 documents in, the tables hold 3 (0 ok + 1 empty + 2 quarantined)"
    )


def test_a_file_no_batch_committed_is_reported(output):
    path = _entities_file(output)
    (path.parent / "part-b999.parquet").write_bytes(path.read_bytes())
    report = _verify(output)
    stray = report.reconciliation[1]
    assert not stray.success and stray.message.startswith("1 data files belong to no committed batch, e.g. entities/")
    assert report.tables["entities"].success  # its rows are no batch's: not counted twice


def test_files_not_written_by_nerflow_are_refused(output):
    pq.write_table(
        pa.table({"doc_id": ["x"]}), output / "documents" / "ingest_date=2026-11-24" / "lang=de" / "x.parquet"
    )
    report = _verify(output)
    [schema] = [c for c in report.tables["documents"].checks if c.check == "schema"]
    assert "stamped table=None" in schema.message and not report.success


def test_older_contract_versions_are_schema_checked_noted_and_reconciled(output):
    # The committed quarantine file as nerflow wrote it before contract version 2 (no `check`).
    [path] = (output / "quarantine").rglob("*.parquet")
    _rewrite(path, lambda t: t.drop_columns(["check"]).replace_schema_metadata(QUARANTINE_V1.metadata))
    report = _verify(output)
    assert report.notes == ("quarantine: 1 files of contract version 1 (current 2): schema checked, rows not",)
    assert report.tables["quarantine"].success
    assert report.success, render_report(report)  # its rows still count in the reconciliation


def test_files_of_a_batch_being_written_are_noted_not_counted(output):
    path = _entities_file(output)
    pending = path.parent / "part-b2.parquet"
    pending.write_bytes(path.read_bytes())
    (output / "_manifest" / "_pending").mkdir(exist_ok=True)
    (output / "_manifest" / "_pending" / "b2.json").write_text(
        json.dumps(
            {
                "batch_id": "b2",
                "files": [str(pending.relative_to(output))],
                "manifest": "_manifest/objects/part-b2.parquet",
            }
        )
    )
    report = _verify(output)
    assert report.success, render_report(report)
    assert "1 data files of batches being written (no manifest file yet): not checked" in report.notes


def test_an_object_committed_by_two_batches_fails(output):
    [entry] = (output / "_manifest" / "objects").glob("*.parquet")
    twice = entry.with_name("part-b2.parquet")
    table = pq.read_table(entry)
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("batch_id"),
            table.schema.field("batch_id"),
            pa.array(["b2"] * table.num_rows, pa.string()),
        ),
        twice,
    )
    check = {c.check: c for c in _verify(output).reconciliation}["objects_committed_once"]
    assert not check.success and "committed by more than one batch" in check.message


def test_a_missing_committed_file_fails(output):
    path = _entities_file(output)
    path.unlink()
    check = {c.check: c for c in _verify(output).reconciliation}["files_present"]
    assert not check.success and check.message.startswith("1 data files that _manifest/objects names are missing")


def test_a_retraction_under_way_is_honoured(output, monkeypatch):
    from nerflow.etl import manifest

    fs, root = storage.filesystem(str(output))
    entry = manifest.read_manifest(fs, root)[OBJ_A.uri]
    # A retraction killed after its intent and its first file operation: a.jsonl's rows are
    # gone from one table and not yet from the others, and the manifest still counts them.
    done = []

    def counted(real):
        def step(*args):
            if len(done) == 2:
                raise KeyboardInterrupt  # stands in for the process dying here
            done.append(args[1])
            return real(*args)

        return step

    monkeypatch.setattr(storage, "write_bytes_atomic", counted(storage.write_bytes_atomic))
    monkeypatch.setattr(storage, "remove_files", counted(storage.remove_files))
    with pytest.raises(KeyboardInterrupt):
        writing.retract(fs, root, [entry])
    monkeypatch.undo()
    report = _verify(output)
    assert any("a run is retracting" in n for n in report.notes)
    assert {c.check: c.success for c in report.reconciliation}["documents_reconcile"], render_report(report)


def test_runs_without_model_labels_skip_the_label_check(output):
    [run] = (output / "_manifest" / "runs").glob("*.parquet")
    run.unlink()
    report = _verify(output)
    assert report.notes[0] == "no run records of version 2 (model_labels): label and vector-width checks skipped"
    assert [c.check for c in report.tables["entities"].checks if c.skipped] == ["label_known"]
    assert [c.check for c in report.tables["entity_embeddings"].checks if c.skipped] == ["width_is_model_dim"]
    assert report.success


def test_a_directory_that_is_not_an_output_fails(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 1
    assert "no _manifest/ under the output" in capsys.readouterr().out


def test_the_run_record_must_carry_its_contract_results(tmp_path):
    fs, root = storage.filesystem(str(tmp_path / "out"))
    validated = validate_batch(*_inputs(), RUN, ValidateConfig(labels=LABELS))
    writing.write_batch(fs, root, validated)
    writing.write_run_record(fs, root, _record(contract_results="not json", embedding_dim=0))
    report = verify_output(fs, root)
    assert [c.check for c in report.tables["_manifest/runs"].failures()] == ["contract_results_json"]
    assert json.loads(json.dumps(report.tables["_manifest/runs"].to_dict()))["checks"]["contract_results_json"] == 1
