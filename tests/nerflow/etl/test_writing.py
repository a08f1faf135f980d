"""Writing: atomic files, deterministic names, manifest last, recovery, retraction."""

from __future__ import annotations

import io
import os
from datetime import UTC

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from data_contracts.schemas import DOCUMENTS, ENTITIES
from nerflow import storage
from nerflow.etl import manifest, writing
from nerflow.etl.errors import StorageError
from nerflow.etl.tables import build_tables
from tests.nerflow.etl.test_tables import OBJ_A, OBJ_B, RUN, _inputs


def _tables():
    return build_tables(*_inputs(), RUN)


def test_partition_files_are_named_by_batch_and_partition():
    t = _tables()
    files = writing.partition_files(ENTITIES, t.entities, "b1")
    assert [rel for rel, _ in files] == ["entities/ingest_date=2026-11-24/lang=de/part-b1.parquet"]
    _, table = files[0]
    assert "lang" not in table.column_names and "ingest_date" not in table.column_names
    assert table.schema.metadata[b"nerflow.schema_version"] == b"2"
    docs = writing.partition_files(DOCUMENTS, t.documents, "b1")
    assert sorted(rel for rel, _ in docs) == [
        "documents/ingest_date=2026-11-24/lang=de/part-b1.parquet",
        "documents/ingest_date=2026-11-24/lang=en/part-b1.parquet",
    ]
    assert writing.partition_files(ENTITIES, t.entities.slice(0, 0), "b1") == []


def test_commit_writes_data_then_manifest_last_then_drops_the_intent(memfs, monkeypatch):
    fs, root = memfs
    order = []
    real = storage.write_bytes_atomic
    monkeypatch.setattr(
        storage, "write_bytes_atomic", lambda f, p, d: (order.append(p[len(root) + 1 :]), real(f, p, d))
    )
    result = writing.commit_batch(fs, root, _tables())
    assert order[0] == "_manifest/_pending/b1.json"
    assert order[-1] == "_manifest/objects/part-b1.parquet" == result.manifest_file
    assert set(order[1:-1]) == set(result.files)
    assert not fs.exists(f"{root}/_manifest/_pending/b1.json")
    entries = manifest.read_manifest(fs, root)
    assert set(entries) == {OBJ_A.uri, OBJ_B.uri}
    assert entries[OBJ_A.uri].files == result.files
    rows = {r["source_uri"]: r for r in manifest.read_manifest_table(fs, root).to_pylist()}
    a = rows[OBJ_A.uri]
    assert (a["docs_in"], a["docs_ok"], a["docs_empty"], a["docs_quarantined"], a["entities"]) == (4, 1, 1, 2, 2)
    assert result.rows == {"documents": 2, "entities": 2, "segments": 0, "quarantine": 2}


def test_committing_a_batch_again_replaces_its_files(tmp_path):
    fs, root = storage.filesystem(str(tmp_path / "out"))
    first = writing.commit_batch(fs, root, _tables())
    second = writing.commit_batch(fs, root, _tables())
    assert first.files == second.files
    docs = ds.dataset(os.path.join(root, "documents"), format="parquet", partitioning="hive").to_table()
    assert sorted(docs.column("doc_id").to_pylist()) == ["d1", "d2"]
    assert sorted(docs.column("lang").to_pylist()) == ["de", "en"]
    names = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert not [n for n in names if n.startswith(".")], "no temporaries left behind"


def test_local_atomic_write_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    fs, root = storage.filesystem(str(tmp_path))
    target = f"{root}/x.bin"
    storage.write_bytes_atomic(fs, target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match=r"could not write: disk full \(uri='file://.*x.bin'\)"):
        storage.write_bytes_atomic(fs, target, b"new")
    assert (tmp_path / "x.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_recover_rolls_back_an_uncommitted_batch(tmp_path, monkeypatch):
    fs, root = storage.filesystem(str(tmp_path / "out"))
    real = storage.write_bytes_atomic

    def die_before_manifest(f, path, data):
        if "/_manifest/objects/" in path:
            raise KeyboardInterrupt  # stands in for the process dying here
        real(f, path, data)

    monkeypatch.setattr(storage, "write_bytes_atomic", die_before_manifest)
    with pytest.raises(KeyboardInterrupt):
        writing.commit_batch(fs, root, _tables())
    monkeypatch.setattr(storage, "write_bytes_atomic", real)
    assert (tmp_path / "out" / "documents").exists()
    (tmp_path / "out" / "entities" / ".part-b1.parquet.tmp-dead").write_bytes(b"half")

    report = writing.recover(fs, root)
    assert report.rolled_back == ("b1",) and report.files_removed == 4 and report.temporaries_removed == 1
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert manifest.read_manifest(fs, root) == {}


def test_recover_keeps_a_batch_whose_manifest_was_written(memfs):
    fs, root = memfs
    result = writing.commit_batch(fs, root, _tables())
    # Killed between the manifest and deleting the intent:
    storage.write_bytes_atomic(
        fs,
        f"{root}/_manifest/_pending/b1.json",
        b'{"batch_id": "b1", "files": %s, "manifest": "%s"}'
        % (str(list(result.files)).replace("'", '"').encode(), result.manifest_file.encode()),
    )
    report = writing.recover(fs, root)
    assert report.completed == ("b1",) and report.rolled_back == ()
    assert all(fs.exists(f"{root}/{rel}") for rel in result.files)


def test_recover_refuses_an_unreadable_intent(memfs):
    from nerflow.etl.errors import ManifestError

    fs, root = memfs
    storage.write_bytes_atomic(fs, f"{root}/_manifest/_pending/b9.json", b"{broken")
    with pytest.raises(ManifestError, match="unreadable pending-commit record"):
        writing.recover(fs, root)


def test_retract_removes_the_rows_of_changed_objects(memfs):
    fs, root = memfs
    writing.commit_batch(fs, root, _tables())
    entry = manifest.read_manifest(fs, root)[OBJ_A.uri]
    removed = writing.retract(fs, root, [entry])
    assert removed == 2 + 2 + 2  # documents, entities, quarantine rows of a.jsonl
    assert set(manifest.read_manifest(fs, root)) == {OBJ_B.uri}
    deleted = [rel for rel in entry.files if not fs.exists(f"{root}/{rel}")]
    assert deleted  # files that held only a.jsonl's rows
    # b.jsonl's entry no longer names them: a named file that is missing is always a loss.
    assert not set(manifest.read_manifest(fs, root)[OBJ_B.uri].files) & set(deleted)
    assert storage.list_files(fs, f"{root}/_manifest/_pending", ".json") == []  # the intent went last
    assert writing.retract(fs, root, [entry]) == 0  # idempotent


def test_run_record(memfs):
    from datetime import datetime

    fs, root = memfs
    now = datetime.now(UTC)
    record = {
        "run_id": "r1",
        "run_label": None,
        "status": "completed",
        "input_uri": "in",
        "output_uri": "out",
        "model_ref": "default",
        "model_id": "m",
        "model_labels": ["PER"],
        "embedding_dim": 0,
        "devices": ["cpu"],
        "parameters": "{}",
        "objects_listed": 1,
        "objects_skipped": 0,
        "objects_ignored": 0,
        "objects_processed": 1,
        "objects_superseded": 0,
        "batches": 1,
        "docs_in": 3,
        "docs_ok": 2,
        "docs_empty": 0,
        "docs_quarantined": 1,
        "entities": 5,
        "chars": 10,
        "entities_by_label": [("PER", 5)],
        "contract_results": "{}",
        "span_filter": "stored (threshold=0.03)",
        "spans": 80,
        "spans_scored": 6,
        "started_at": now,
        "finished_at": now,
        "seconds": 1.0,
    }
    rel = writing.write_run_record(fs, root, record)
    assert rel == "_manifest/runs/run-r1.parquet"
    table = pq.read_table(io.BytesIO(fs.cat_file(f"{root}/{rel}")))
    assert table.column("entities_by_label").to_pylist() == [[("PER", 5)]]
    assert table.select(["span_filter", "spans", "spans_scored"]).to_pylist() == [
        {"span_filter": "stored (threshold=0.03)", "spans": 80, "spans_scored": 6}
    ]
    assert table.schema.metadata[b"nerflow.table"] == b"_manifest/runs"
    assert table.schema.metadata[b"nerflow.schema_version"] == b"3"
