"""The output's manifest: which input objects are committed, in which batch and files.

``_manifest/objects/part-<batch>.parquet`` holds one row per input object of a committed
batch (schema :data:`data_contracts.schemas.MANIFEST_OBJECTS`); it is the last file a
batch writes, so its presence *is* the commit. ``_manifest/runs/`` holds one row per run and
``_manifest/_pending/`` the intent records of batches being written and of retractions under
way (see :mod:`nerflow.etl.writing`).
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from data_contracts.schemas import MANIFEST_OBJECTS
from nerflow import storage
from nerflow.etl.errors import ManifestError, StorageError

__all__ = [
    "ManifestEntry",
    "objects_dir",
    "runs_dir",
    "pending_dir",
    "entry_path",
    "read_manifest",
    "read_manifest_table",
    "Retracting",
    "read_retracting",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """One committed input object.

    Attributes:
        source_uri: The object's URI.
        object_version: Its version when it was processed (see :class:`StoredObject`).
        batch_id: The batch that wrote its rows.
        files: That batch's data files, relative to the output root.
        manifest_file: The manifest file holding this entry, relative to the output root.
    """

    source_uri: str
    object_version: str
    batch_id: str
    files: tuple[str, ...]
    manifest_file: str


def objects_dir(root: str) -> str:
    """Directory of the per-batch object manifests."""
    return storage.join(root, "_manifest", "objects")


def runs_dir(root: str) -> str:
    """Directory of the per-run records."""
    return storage.join(root, "_manifest", "runs")


def pending_dir(root: str) -> str:
    """Directory of the intent records of batches being written."""
    return storage.join(root, "_manifest", "_pending")


def entry_path(root: str, batch_id: str) -> str:
    """The manifest file of one batch."""
    return storage.join(objects_dir(root), f"part-{batch_id}.parquet")


def read_manifest_table(fs: AbstractFileSystem, root: str) -> pa.Table:
    """Every committed object row, with a ``manifest_file`` column added (relative path).

    Returns:
        A table of :data:`MANIFEST_OBJECTS` columns plus ``manifest_file``; empty (with
        that schema) when nothing was committed yet.

    Raises:
        ManifestError: A manifest file is not a readable Parquet file of the contract.
        StorageError: The store could not be read.
    """
    tables = []
    for path in storage.list_files(fs, objects_dir(root), ".parquet"):
        data = storage.read_bytes(fs, path)
        try:
            table = MANIFEST_OBJECTS.conform(pq.read_table(io.BytesIO(data)))
        except (pa.ArrowException, ValueError) as e:
            raise ManifestError(f"unreadable manifest file: {e}", uri=fs.unstrip_protocol(path)) from e
        rel = posixpath.relpath(path, root)
        tables.append(table.append_column("manifest_file", pa.array([rel] * table.num_rows, pa.string())))
    if not tables:
        schema = MANIFEST_OBJECTS.schema.append(pa.field("manifest_file", pa.string()))
        return schema.empty_table()
    return pa.concat_tables(tables)


def read_manifest(fs: AbstractFileSystem, root: str) -> dict[str, ManifestEntry]:
    """The committed objects of the output at ``root``, by source URI.

    When one URI was committed more than once (a manual re-run after deleting part of the
    manifest), the latest commit wins.

    Raises:
        ManifestError: A manifest file is unreadable.
        StorageError: The store could not be read.
    """
    table = read_manifest_table(fs, root)
    rows = sorted(table.to_pylist(), key=lambda r: r["committed_at"])
    return {
        r["source_uri"]: ManifestEntry(
            source_uri=r["source_uri"],
            object_version=r["object_version"],
            batch_id=r["batch_id"],
            files=tuple(r["files"]),
            manifest_file=r["manifest_file"],
        )
        for r in rows
    }


@dataclass(frozen=True, kw_only=True)
class Retracting:
    """Retractions under way (or interrupted): what readers must leave out.

    Attributes:
        source_uris: Objects whose rows are being removed.
        files: Data files the retractions may delete.
    """

    source_uris: frozenset[str] = frozenset()
    files: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.source_uris)


def read_retracting(fs: AbstractFileSystem, root: str) -> Retracting:
    """The retraction intents in ``_manifest/_pending`` (batch intents are ignored).

    Raises:
        ManifestError: An intent record is unreadable.
        StorageError: The store could not be read.
    """
    uris: set[str] = set()
    files: set[str] = set()
    for path in storage.list_files(fs, pending_dir(root), ".json"):
        if not posixpath.basename(path).startswith("retract-"):
            continue
        try:
            data = storage.read_bytes(fs, path)
        except StorageError:
            if not storage.exists(fs, path):
                continue  # finished between listing and reading
            raise
        try:
            intent = json.loads(data)
            uris.update(intent["retraction"])
            for batch in intent["batches"].values():
                files.update(batch["files"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"unreadable retraction record: {e}", uri=fs.unstrip_protocol(path)) from e
    return Retracting(source_uris=frozenset(uris), files=frozenset(files))
