"""Listing: objects under a URI, manifest skip, batching, deterministic batch ids."""

from __future__ import annotations

from datetime import UTC

import pytest

from nerflow import storage
from nerflow.etl.errors import InputNotFoundError
from nerflow.etl.listing import Batch, BatchingConfig, batch_id, group_batches, plan_batches
from nerflow.storage import StoredObject
from tests.conftest import put


def _obj(name: str, size: int = 10, version: str = "v1") -> StoredObject:
    return StoredObject(uri=f"memory:///in/{name}", path=f"/in/{name}", relpath=name, size=size, version=version)


def test_list_objects_skips_hidden_and_underscore_names_and_sorts(memfs):
    fs, root = memfs
    for rel in ["b.jsonl", "a/x.txt", "_SUCCESS", ".a.tmp-1", "_tmp/y.jsonl", "a/.hidden.txt"]:
        put(fs, f"{root}/{rel}", b"{}")
    listed = storage.list_objects(fs, root)
    assert [o.relpath for o in listed] == ["a/x.txt", "b.jsonl"]
    assert listed[0].uri == f"memory://{root}/a/x.txt"
    assert listed[0].size == 2 and listed[0].version.startswith("size:2;")


def test_list_objects_of_a_single_file(memfs):
    fs, root = memfs
    put(fs, f"{root}/one.txt", "hello")
    [obj] = storage.list_objects(fs, f"{root}/one.txt")
    assert obj.relpath == "one.txt"


def test_a_key_s3fs_would_read_as_a_version_id_is_named_not_fetched():
    import s3fs

    s3 = s3fs.S3FileSystem(anon=True)
    assert "versionId" in storage.unreadable_object(s3, "bucket/docs/y.txt?versionId=1.txt")
    assert storage.unreadable_object(s3, "bucket/docs/y.txt?v=1.txt") is None
    assert storage.unreadable_object(__import__("fsspec").filesystem("memory"), "/docs/y.txt?versionId=1.txt") is None


def test_inside_compares_whole_path_segments():
    assert storage.inside("b/docs/out", "b/docs") and storage.inside("b/docs/", "b/docs")
    assert not storage.inside("b/docs2/out", "b/docs") and not storage.inside("b", "b/docs")


def test_list_objects_raises_for_a_missing_input(memfs):
    fs, root = memfs
    with pytest.raises(InputNotFoundError, match=r"no file or prefix at the input URI \(uri='memory://.*/nope'\)"):
        storage.list_objects(fs, f"{root}/nope")


def test_batching_config_checks_its_limits():
    with pytest.raises(ValueError, match="batch_docs must be positive"):
        BatchingConfig(batch_docs=0)
    with pytest.raises(ValueError, match="batch_bytes must be positive"):
        BatchingConfig(batch_bytes=0)
    with pytest.raises(ValueError, match="input_format must be one of"):
        BatchingConfig(input_format="csv")


def test_group_batches_closes_on_documents_and_bytes():
    objects = [_obj(f"{i}.txt", size=40) for i in range(5)]
    by_docs = group_batches(objects, BatchingConfig(batch_docs=2, batch_bytes=10_000))
    assert [len(b.objects) for b in by_docs] == [2, 2, 1]
    assert [b.index for b in by_docs] == [0, 1, 2]
    by_bytes = group_batches(objects, BatchingConfig(batch_docs=100, batch_bytes=100))
    assert [len(b.objects) for b in by_bytes] == [2, 2, 1]
    # An object over the byte limit is a batch of its own, never split or dropped.
    big = group_batches([_obj("a", 500), _obj("b", 5)], BatchingConfig(batch_bytes=100))
    assert [[o.relpath for o in b.objects] for b in big] == [["a"], ["b"]]


def test_batch_id_depends_on_uris_and_versions_only():
    a, b = _obj("a"), _obj("b")
    assert batch_id([a, b]) == batch_id([_obj("a"), _obj("b")])
    assert batch_id([a, b]) != batch_id([b, a])
    assert batch_id([a]) != batch_id([_obj("a", version="v2")])
    assert batch_id([a]).startswith("b") and len(batch_id([a])) == 25


def _commit(fs, out_root: str, batch: Batch) -> None:
    """A manifest entry for ``batch`` as writing records it."""
    import pyarrow as pa

    from data_contracts.schemas import MANIFEST_OBJECTS
    from nerflow.etl import manifest
    from nerflow.etl.writing import parquet_bytes

    rows = [
        {
            "source_uri": o.uri,
            "object_version": o.version,
            "size": o.size,
            "batch_id": batch.batch_id,
            "run_id": "r",
            "model_id": "m",
            "docs_in": 1,
            "docs_ok": 1,
            "docs_empty": 0,
            "docs_quarantined": 0,
            "entities": 0,
            "files": [f"documents/part-{batch.batch_id}.parquet"],
            "committed_at": 0,
        }
        for o in batch.objects
    ]
    table = pa.Table.from_pylist(rows, schema=MANIFEST_OBJECTS.schema)
    storage.write_bytes_atomic(fs, manifest.entry_path(out_root, batch.batch_id), parquet_bytes(table))


def test_plan_skips_objects_in_the_manifest_and_reprocesses_changed_ones(memfs):
    fs, root = memfs
    inp, out = f"{root}/in", f"{root}/out"
    for name in ["a.txt", "b.txt", "c.jsonl", "notes.csv"]:
        put(fs, f"{inp}/{name}", "x")
    first = plan_batches(fs, inp, fs, out, BatchingConfig(batch_docs=2))
    # An unsupported name is counted as ignored and still batched: reading quarantines it.
    assert first.listed == 4 and first.objects == 4
    assert [o.relpath for o in first.ignored] == ["notes.csv"]
    _commit(fs, out, first.batches[0])  # a.txt, b.txt done

    put(fs, f"{inp}/d.txt", "new")
    second = plan_batches(fs, inp, fs, out, BatchingConfig(batch_docs=2))
    assert sorted(o.relpath for o in second.skipped) == ["a.txt", "b.txt"]
    assert [o.relpath for b in second.batches for o in b.objects] == ["c.jsonl", "d.txt", "notes.csv"]
    assert second.changed == ()
    _commit(fs, out, second.batches[1])  # d.txt, notes.csv done
    third = plan_batches(fs, inp, fs, out, BatchingConfig(batch_docs=2))
    assert third.ignored == () and "notes.csv" in [o.relpath for o in third.skipped]

    # A done object whose version changes is planned again, with its old entry attached.
    put(fs, f"{inp}/a.txt", "changed content")
    fourth = plan_batches(fs, inp, fs, out, BatchingConfig(batch_docs=10))
    assert [c.object.relpath for c in fourth.changed] == ["a.txt"]
    assert fourth.changed[0].previous.batch_id == first.batches[0].batch_id
    assert "a.txt" in [o.relpath for b in fourth.batches for o in b.objects]


def test_an_output_inside_the_input_is_not_input(memfs):
    fs, root = memfs
    inp, out = f"{root}/in", f"{root}/in/ner"
    put(fs, f"{inp}/a.jsonl", "x")
    put(fs, f"{out}/documents/ingest_date=2026-12-04/lang=en/part-1.parquet", "tables")
    put(fs, f"{inp}/nerd/b.jsonl", "x")  # a sibling whose name begins like the output's
    plan = plan_batches(fs, inp, fs, out, BatchingConfig())
    assert [o.relpath for b in plan.batches for o in b.objects] == ["a.jsonl", "nerd/b.jsonl"]
    assert plan.listed == 2


def test_plan_with_a_forced_format_reads_every_name(memfs):
    fs, root = memfs
    put(fs, f"{root}/in/notes.csv", "x")
    plan = plan_batches(fs, f"{root}/in", fs, f"{root}/out", BatchingConfig(input_format="text"))
    assert plan.objects == 1 and plan.ignored == ()


def test_a_modified_time_range_leaves_other_objects_for_later_runs():
    from datetime import datetime

    from nerflow.etl.listing import BatchingConfig

    config = BatchingConfig(modified_after=datetime(2026, 1, 1), modified_before=datetime(2026, 2, 1, tzinfo=UTC))
    assert config.in_range(datetime(2026, 1, 1, tzinfo=UTC)), "the start is inclusive; naive times are UTC"
    assert not config.in_range(datetime(2026, 2, 1, tzinfo=UTC)), "the end is exclusive"
    assert not config.in_range(None), "an object of unknown time is not in a range"
    assert BatchingConfig().in_range(None)
    with pytest.raises(ValueError, match="must be before"):
        BatchingConfig(modified_after=datetime(2026, 2, 1), modified_before=datetime(2026, 1, 1))
