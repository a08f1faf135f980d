"""Commit a batch's tables to the output, crash-safely; roll back what a killed run left.

A batch commits in four steps, each file published atomically (:func:`storage.write_bytes_atomic`):

1. an *intent* record ``_manifest/_pending/<batch>.json`` naming every file the batch will write;
2. the data files, ``<table>/<key>=<value>/…/part-<batch>.parquet``: the names depend only on
   the batch (its objects and their versions) and the partition values, so writing a batch
   again replaces its files instead of adding copies;
3. the manifest file ``_manifest/objects/part-<batch>.parquet``, **last**: its presence is the
   commit, and the next run skips the batch's objects;
4. the intent record is deleted.

A process killed anywhere in 1-3 leaves an intent without a manifest file. :func:`recover`
(run at the start of every run, with no other writer active) deletes the files such an intent
names, so the next run processes those objects again from scratch, whatever batches it cuts
them into. Killed in 4, the manifest exists and only the intent is removed.

:func:`retract` removes the rows of input objects that changed since they were committed
(filtering the files of their old batch) before the new version is processed, under an intent
record of its own that readers honour and :func:`recover` completes.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import urllib.parse
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from data_contracts.schemas import MANIFEST_OBJECTS, MANIFEST_RUNS, TableContract
from nerflow import storage
from nerflow.etl import manifest
from nerflow.etl.errors import ManifestError
from nerflow.etl.manifest import ManifestEntry
from nerflow.etl.report import BatchReport, batch_report
from nerflow.etl.tables import BatchTables
from nerflow.etl.validating import ValidatedBatch

__all__ = [
    "CommitResult",
    "RecoveryReport",
    "partition_files",
    "commit_batch",
    "write_batch",
    "recover",
    "retract",
    "write_run_record",
    "parquet_bytes",
]


@dataclass(frozen=True, kw_only=True)
class CommitResult:
    """What a batch commit wrote.

    Attributes:
        batch_id: The batch.
        files: Data files, relative to the output root, in writing order.
        manifest_file: The manifest file, relative to the output root.
        rows: Rows written per table name.
    """

    batch_id: str
    files: tuple[str, ...]
    manifest_file: str
    rows: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class RecoveryReport:
    """What :func:`recover` found.

    Attributes:
        rolled_back: Batches whose files were deleted (killed before their manifest).
        completed: Batches that had committed but not yet removed their intent.
        files_removed: Data files deleted.
        temporaries_removed: Half-written temporary files deleted (local disks).
        retractions_finished: Objects whose interrupted retraction was completed.
    """

    rolled_back: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    files_removed: int = 0
    temporaries_removed: int = 0
    retractions_finished: int = 0


def _segment(column: str, value: str) -> str:
    # URI-encoded as pyarrow's HivePartitioning decodes by default (segment_encoding="uri").
    return f"{column}={urllib.parse.quote(value, safe='')}"


def partition_files(contract: TableContract, table: pa.Table, batch_id: str) -> list[tuple[str, pa.Table]]:
    """Split a table into its partition files.

    Args:
        contract: The table's contract (name and partition columns).
        table: Rows fitting ``contract.schema``.
        batch_id: Names the files.

    Returns:
        ``(path relative to the output root, file table)`` per partition present in
        ``table``, in order of first appearance; the file tables hold
        ``contract.file_schema`` (no partition columns). Empty for an empty table.
    """
    if table.num_rows == 0:
        return []
    name = f"part-{batch_id}.parquet"
    file_table = table.drop_columns(list(contract.partition_by)).cast(contract.file_schema)
    if not contract.partition_by:
        return [(storage.join(contract.name, name), file_table)]
    keys = list(zip(*(table.column(c).to_pylist() for c in contract.partition_by)))
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    out = []
    for key, rows in groups.items():
        directory = "/".join(_segment(c, v) for c, v in zip(contract.partition_by, key))
        out.append((storage.join(contract.name, directory, name), file_table.take(pa.array(rows, pa.int64()))))
    return out


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as Parquet file bytes (zstd)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _pending_path(root: str, batch_id: str) -> str:
    return storage.join(manifest.pending_dir(root), f"{batch_id}.json")


def commit_batch(
    fs: AbstractFileSystem, root: str, tables: BatchTables, *, committed_at: datetime | None = None
) -> CommitResult:
    """Write a batch's tables and record its objects in the manifest, in that order.

    Args:
        fs: The output filesystem.
        root: The output path.
        tables: The batch's tables (see :func:`nerflow.etl.tables.build_tables`).
        committed_at: Commit time (UTC now by default).

    Returns:
        The files written.

    Raises:
        StorageError: A write failed (retryable: writing the batch again is idempotent).
    """
    batch = tables.batch
    planned = [
        (rel, t)
        for contract, table in tables.contracts()
        for rel, t in partition_files(contract, table, batch.batch_id)
    ]
    files = tuple(rel for rel, _ in planned)
    manifest_rel = posixpath.relpath(manifest.entry_path(root, batch.batch_id), root)
    intent = {"batch_id": batch.batch_id, "files": list(files), "manifest": manifest_rel}
    storage.write_bytes_atomic(fs, _pending_path(root, batch.batch_id), json.dumps(intent, indent=1).encode())
    for rel, table in planned:
        storage.write_bytes_atomic(fs, storage.join(root, rel), parquet_bytes(table))
    when = committed_at or datetime.now(UTC)
    counts = {row["source_uri"]: row for row in tables.object_counts.to_dicts()}
    rows = []
    for obj in batch.objects:
        c = counts[obj.uri]
        rows.append(
            {
                "source_uri": obj.uri,
                "object_version": obj.version,
                "size": obj.size,
                "batch_id": batch.batch_id,
                "run_id": tables.run.run_id,
                "model_id": tables.model_id,
                "docs_in": c["docs_ok"] + c["docs_empty"] + c["docs_quarantined"],
                "docs_ok": c["docs_ok"],
                "docs_empty": c["docs_empty"],
                "docs_quarantined": c["docs_quarantined"],
                "entities": c["entities"],
                "files": list(files),
                "committed_at": when,
            }
        )
    entry = pa.Table.from_pylist(rows, schema=MANIFEST_OBJECTS.schema)
    storage.write_bytes_atomic(fs, storage.join(root, manifest_rel), parquet_bytes(MANIFEST_OBJECTS.conform(entry)))
    storage.remove_files(fs, [_pending_path(root, batch.batch_id)])
    return CommitResult(
        batch_id=batch.batch_id,
        files=files,
        manifest_file=manifest_rel,
        rows={contract.name: table.num_rows for contract, table in tables.contracts()},
    )


def write_batch(fs: AbstractFileSystem, root: str, validated: ValidatedBatch) -> BatchReport:
    """Commit a validated batch's tables and report what was written.

    Args:
        fs: The output filesystem.
        root: The output path.
        validated: The batch's tables after validation (see
            :func:`nerflow.etl.validating.validate_batch`).

    Returns:
        The batch's counts and files.

    Raises:
        StorageError: A write failed (retryable).
    """
    result = commit_batch(fs, root, validated.tables)
    return batch_report(
        validated.tables,
        result.files,
        device=validated.device,
        annotate_seconds=validated.annotate_seconds,
        docs_in=validated.validation.reconciliation.docs_in,
        spans=validated.spans,
        spans_scored=validated.spans_scored,
    )


def recover(fs: AbstractFileSystem, root: str) -> RecoveryReport:
    """Undo what killed runs left: files of uncommitted batches and temporaries; and finish
    the retractions they began.

    Must run while no other run writes to ``root``.

    Raises:
        ManifestError: An intent record is unreadable.
        StorageError: The store could not be read or written.
    """
    rolled_back, completed, removed, retracted = [], [], 0, 0
    for path in storage.list_files(fs, manifest.pending_dir(root), ".json"):
        try:
            intent = json.loads(storage.read_bytes(fs, path))
            if "retraction" in intent:
                retracted += len(intent["retraction"])
                _apply_retraction(fs, root, intent)
                storage.remove_files(fs, [path])
                continue
            batch_id, files, manifest_rel = intent["batch_id"], intent["files"], intent["manifest"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"unreadable pending-commit record: {e}", uri=fs.unstrip_protocol(path)) from e
        if storage.exists(fs, storage.join(root, manifest_rel)):
            completed.append(batch_id)
        else:
            removed += storage.remove_files(fs, [storage.join(root, rel) for rel in files])
            rolled_back.append(batch_id)
        storage.remove_files(fs, [path])
    temporaries = storage.clean_temporaries(fs, root)
    return RecoveryReport(
        rolled_back=tuple(rolled_back),
        completed=tuple(completed),
        files_removed=removed,
        temporaries_removed=temporaries,
        retractions_finished=retracted,
    )


def _retraction_path(root: str, uris: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(uris)).encode()).hexdigest()[:24]
    return storage.join(manifest.pending_dir(root), f"retract-{digest}.json")


def retract(fs: AbstractFileSystem, root: str, entries: Sequence[ManifestEntry]) -> int:
    """Remove the committed rows of input objects (changed since, or gone from the input).

    An intent record (``_manifest/_pending/retract-….json``) names the objects first; then
    each affected batch's data files are rewritten without their rows (deleted when nothing
    is left), then its manifest file without the objects and without the deleted files, and
    the intent goes last. While the intent exists, readers (:mod:`nerflow.warehouse`,
    ``nerflow validate``) leave the objects' rows out, so no reader sees an object's
    documents gone and its entities still there; a run killed half-way is finished by
    :func:`recover` (filtering is idempotent).

    Args:
        fs: The output filesystem.
        root: The output path.
        entries: The objects' manifest entries.

    Returns:
        Rows removed, over all tables.
    """
    if not entries:
        return 0
    by_manifest: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        by_manifest[e.manifest_file].add(e.source_uri)
    files_of = {e.manifest_file: list(e.files) for e in entries}
    intent: dict[str, Any] = {
        "retraction": sorted({e.source_uri for e in entries}),
        "batches": {
            rel: {"source_uris": sorted(uris), "files": files_of[rel]} for rel, uris in sorted(by_manifest.items())
        },
    }
    path = _retraction_path(root, intent["retraction"])
    storage.write_bytes_atomic(fs, path, json.dumps(intent, indent=1).encode())
    removed = _apply_retraction(fs, root, intent)
    storage.remove_files(fs, [path])
    return removed


def _apply_retraction(fs: AbstractFileSystem, root: str, intent: dict) -> int:
    removed = 0
    for manifest_rel, batch in intent["batches"].items():
        drop = pa.array(batch["source_uris"], pa.string())
        emptied = set()
        for rel in batch["files"]:
            path = storage.join(root, rel)
            if not storage.exists(fs, path):
                emptied.add(rel)  # deleted by an earlier, interrupted attempt
                continue
            table = pq.read_table(io.BytesIO(storage.read_bytes(fs, path)))
            keep = table.filter(pc.invert(pc.is_in(table.column("source_uri"), value_set=drop)))
            if keep.num_rows == table.num_rows:
                continue
            removed += table.num_rows - keep.num_rows
            if keep.num_rows:
                storage.write_bytes_atomic(fs, path, parquet_bytes(keep))
            else:
                storage.remove_files(fs, [path])
                emptied.add(rel)
        path = storage.join(root, manifest_rel)
        if not storage.exists(fs, path):
            continue
        table = pq.read_table(io.BytesIO(storage.read_bytes(fs, path)))
        keep = table.filter(pc.invert(pc.is_in(table.column("source_uri"), value_set=drop)))
        if emptied and keep.num_rows:
            # The surviving objects' entries stop naming deleted files, so that a file the
            # manifest names and the store lacks is always a loss, never a retraction.
            files = [[f for f in fs_ if f not in emptied] for fs_ in keep.column("files").to_pylist()]
            index = keep.schema.get_field_index("files")
            keep = keep.set_column(index, keep.schema.field(index), pa.array(files, keep.schema.field(index).type))
        if keep.num_rows == table.num_rows and not emptied:
            continue
        if keep.num_rows:
            storage.write_bytes_atomic(fs, path, parquet_bytes(MANIFEST_OBJECTS.conform(keep)))
        else:
            storage.remove_files(fs, [path])
    return removed


def write_run_record(fs: AbstractFileSystem, root: str, record: dict) -> str:
    """Write one run's record (:data:`MANIFEST_RUNS`); returns its path relative to ``root``.

    Raises:
        SchemaMismatchError: ``record`` lacks a column or has a wrong type.
        StorageError: The write failed.
    """
    table = MANIFEST_RUNS.conform(pa.Table.from_pylist([record], schema=MANIFEST_RUNS.schema))
    rel = posixpath.relpath(storage.join(manifest.runs_dir(root), f"run-{record['run_id']}.parquet"), root)
    storage.write_bytes_atomic(fs, storage.join(root, rel), parquet_bytes(table))
    return rel
