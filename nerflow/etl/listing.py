"""List the input, leave out what the output's manifest already holds, group the rest into
batches.

An object is *done* when the manifest records its URI with the same version (ETag, or size and
mtime); it is *changed* when the URI is recorded with another version: it is processed again and
its earlier rows are retracted first (:func:`nerflow.etl.writing.retract`). Objects whose
name maps to no reader (``input_format="auto"``) are counted as *ignored* and still batched:
reading quarantines each with one row (``unsupported file type``) without fetching it, and
the manifest records it, so it is reported once rather than skipped silently on every run.

A run can be limited to objects last written in a time range (``modified_after`` inclusive,
``modified_before`` exclusive): a backfill reprocesses one period. Objects outside it are
counted in the plan, not processed and not recorded, so a later run still sees them.

A batch is a run of whole objects in path order, closed before it would pass ``batch_bytes``
or hold more than ``batch_docs`` documents. Documents are counted where the listing knows them
(a text file is one document); a JSONL or Parquet object counts as one until it is read, so
``batch_bytes`` is what bounds batches of record files. The batch id is a digest of its objects'
URIs and versions: the same objects always make the same batch, and the same file names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fsspec import AbstractFileSystem

from nerflow import storage
from nerflow.etl.formats import FORMATS, detect_format
from nerflow.etl.manifest import ManifestEntry, read_manifest
from nerflow.storage import StoredObject

__all__ = ["BatchingConfig", "Batch", "Changed", "Plan", "batch_id", "group_batches", "plan_batches"]


@dataclass(frozen=True, kw_only=True)
class BatchingConfig:
    """How to cut the input into batches.

    Attributes:
        batch_docs: Most objects per batch: documents where the listing can count them (a
            text file is one), else files (a JSONL or Parquet file is one until it is read; see
            the module docstring).
        batch_bytes: Most input bytes per batch; an object larger than this is a batch alone.
        input_format: One of :data:`nerflow.etl.formats.FORMATS`.
        modified_after: Only objects last written at or after this time (naive: UTC).
        modified_before: Only objects last written before this time (naive: UTC).
    """

    batch_docs: int = 1000
    batch_bytes: int = 64 << 20
    input_format: str = "auto"
    modified_after: datetime | None = None
    modified_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.batch_docs < 1:
            raise ValueError(f"batch_docs must be positive, got {self.batch_docs}")
        if self.batch_bytes < 1:
            raise ValueError(f"batch_bytes must be positive, got {self.batch_bytes}")
        if self.input_format not in FORMATS:
            raise ValueError(f"input_format must be one of {FORMATS}, got {self.input_format!r}")
        after, before = _utc(self.modified_after), _utc(self.modified_before)
        if after is not None and before is not None and after >= before:
            raise ValueError(f"modified_after ({after}) must be before modified_before ({before})")

    def in_range(self, modified: datetime | None) -> bool:
        """Whether an object written at ``modified`` belongs to this run (unknown: only
        when no range is set)."""
        after, before = _utc(self.modified_after), _utc(self.modified_before)
        if after is None and before is None:
            return True
        if modified is None:
            return False
        return (after is None or modified >= after) and (before is None or modified < before)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """Objects read, annotated and committed together.

    Attributes:
        batch_id: ``b`` + 24 hex digits of the objects' keys: names the batch's files.
        index: Position in this run's plan (for logs and progress only).
        objects: The objects, in path order.
    """

    batch_id: str
    index: int
    objects: tuple[StoredObject, ...]

    @property
    def size(self) -> int:
        """Input bytes."""
        return sum(o.size for o in self.objects)


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed:
    """An object processed before with another version."""

    object: StoredObject
    previous: ManifestEntry


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one run will do.

    Attributes:
        batches: Batches to process, in order.
        listed: Objects found under the input URI (hidden names excluded).
        skipped: Objects the manifest holds with the same version.
        ignored: Objects to process that no reader takes (also in ``batches``: each becomes
            one quarantine row).
        changed: Objects to process again; their earlier rows are retracted first.
        out_of_range: Objects left out by the modified-time range.
    """

    batches: tuple[Batch, ...]
    listed: int
    skipped: tuple[StoredObject, ...]
    ignored: tuple[StoredObject, ...]
    changed: tuple[Changed, ...]
    out_of_range: tuple[StoredObject, ...] = ()

    @property
    def objects(self) -> int:
        """Objects to process."""
        return sum(len(b.objects) for b in self.batches)

    @property
    def bytes(self) -> int:
        """Input bytes to process."""
        return sum(b.size for b in self.batches)


def batch_id(objects: Sequence[StoredObject]) -> str:
    """A batch's id: a digest of its objects' keys (URI and version) in order."""
    digest = hashlib.sha256("\n".join(o.key for o in objects).encode())
    return "b" + digest.hexdigest()[:24]


def group_batches(objects: Sequence[StoredObject], config: BatchingConfig) -> list[Batch]:
    """Cut ``objects`` (in order) into batches under the config's limits."""
    batches: list[Batch] = []
    current: list[StoredObject] = []
    size = 0
    for obj in objects:
        if current and (size + obj.size > config.batch_bytes or len(current) >= config.batch_docs):
            batches.append(Batch(batch_id=batch_id(current), index=len(batches), objects=tuple(current)))
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        batches.append(Batch(batch_id=batch_id(current), index=len(batches), objects=tuple(current)))
    return batches


def plan_batches(
    in_fs: AbstractFileSystem,
    in_root: str,
    out_fs: AbstractFileSystem,
    out_root: str,
    config: BatchingConfig,
    *,
    prefix: bool = False,
) -> Plan:
    """List the input and plan this run's batches.

    An output inside the input ("s3://b/" in, "s3://b/ner/" out) is not input: its tables
    would otherwise be read back as documents by the next run.

    Args:
        in_fs: The input filesystem.
        in_root: Input path (a prefix/directory, or a single file).
        out_fs: The output filesystem (for the manifest).
        out_root: Output path.
        config: Batch limits and input format.
        prefix: ``in_root`` is a prefix even if an object has its name (the URI ended in "/").

    Returns:
        The plan; ``plan.batches`` is empty when everything is done.

    Raises:
        InputNotFoundError: Nothing exists at ``in_root``.
        ManifestError: The output's manifest is unreadable.
        StorageError: Listing failed.
    """
    listed = storage.list_objects(in_fs, in_root, prefix=prefix)
    if type(in_fs) is type(out_fs) and storage.inside(out_root, in_root):
        listed = [obj for obj in listed if not storage.inside(obj.path, out_root)]
    done = read_manifest(out_fs, out_root)
    todo, skipped, ignored, changed, out_of_range = [], [], [], [], []
    for obj in listed:
        if not config.in_range(obj.modified):
            out_of_range.append(obj)
            continue
        previous = done.get(obj.uri)
        if previous is not None and previous.object_version == obj.version:
            skipped.append(obj)
            continue
        if previous is not None:
            changed.append(Changed(object=obj, previous=previous))
        if detect_format(obj.relpath, config.input_format) is None:
            # Still batched: reading quarantines it (without fetching it), so it shows in the
            # quarantine table and the manifest instead of vanishing from the accounts.
            ignored.append(obj)
        todo.append(obj)
    return Plan(
        batches=tuple(group_batches(todo, config)),
        listed=len(listed),
        skipped=tuple(skipped),
        ignored=tuple(ignored),
        changed=tuple(changed),
        out_of_range=tuple(out_of_range),
    )
