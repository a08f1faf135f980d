"""Storage port: every byte nerflow's ETL reads or writes goes through these functions.

Functions receive an fsspec filesystem and a path on it; :func:`filesystem` is the one place
that turns a URI plus ``storage_options`` into that pair (s3fs for ``s3://``, the local
filesystem for plain paths, ``memory://`` in tests). Nothing else builds a filesystem.

Atomic publication differs by backend, on purpose:

* local disks: write a hidden temporary file beside the target, ``fsync``, then
  ``os.replace`` (a rename within one directory is atomic on POSIX);
* object stores (S3, GCS, memory): one PUT; the store exposes the whole new object or the
  old one, never a torn write, and a rename would be a second full copy.
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from nerflow.errors import InputNotFoundError, InvalidURIError, storage_error

__all__ = [
    "Location",
    "StoredObject",
    "check_protocol",
    "is_local_path",
    "refuse_credentials",
    "SAFE_CREDENTIALS",
    "inside",
    "require_input",
    "unreadable_object",
    "filesystem",
    "join",
    "list_objects",
    "read_bytes",
    "write_bytes_atomic",
    "exists",
    "list_files",
    "remove_files",
    "clean_temporaries",
    "is_local",
]

_TMP_MARK = ".tmp-"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredObject:
    """One input object as listed.

    Attributes:
        uri: Canonical URI with protocol (``s3://bucket/key``, ``file:///abs/path``); the
            manifest key and the ``source_uri`` of every row read from it.
        path: The path on its filesystem (no protocol), for reading.
        relpath: Path relative to the listed root (``news/de/1.txt``); text documents take
            their ``doc_id`` from it.
        size: Bytes.
        version: What changes when the content changes: the store's ETag when it has one,
            else size and modification time.
        modified: When the object was last written (UTC), where the store says.
    """

    uri: str
    path: str
    relpath: str
    size: int
    version: str
    modified: datetime | None = None

    @property
    def key(self) -> str:
        """Identity of this content at this place (``uri@version``): the manifest's key."""
        return f"{self.uri}@{self.version}"


@dataclass(frozen=True, kw_only=True)
class Location:
    """A URI with the options needed to open it: what tasks receive instead of a live
    filesystem (which holds connections and event loops that should not travel).

    Attributes:
        uri: ``s3://bucket/prefix``, a local path, ``memory://…``.
        storage_options: fsspec options (``client_kwargs={"endpoint_url": …}``, credentials).
    """

    uri: str
    storage_options: Mapping = field(default_factory=dict, compare=False, repr=False)

    def open(self) -> tuple[AbstractFileSystem, str]:
        """``(fs, path)`` for this location (see :func:`filesystem`)."""
        return filesystem(self.uri, self.storage_options)

    def display(self) -> str:
        """The URI as a user should read it (local paths made absolute)."""
        fs, path = self.open()
        return path if is_local(fs) else fs.unstrip_protocol(path)


@functools.cache
def _store_errors() -> tuple[type[BaseException], ...]:
    """What a storage call raises when the store, not the caller, failed: OS errors (aiohttp's
    connection errors are among them), fsspec's ValueErrors, and botocore's connection and
    timeout errors, which derive from neither and so were not retried (an S3 endpoint that is
    down refused the run at once). Looked up when a call fails: botocore loads only then."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # s3fs not installed: no botocore errors to expect
        return (OSError, ValueError)
    return (OSError, ValueError, BotoConnectionError, HTTPClientError)


def filesystem(uri: str, storage_options: Mapping | None = None) -> tuple[AbstractFileSystem, str]:
    """Resolve a URI or local path into a filesystem and a path on it.

    Args:
        uri: ``s3://bucket/prefix``, ``memory://x``, ``file:///abs`` or a local path
            (relative paths are made absolute).
        storage_options: Passed to the filesystem (credentials, ``client_kwargs``).

    Returns:
        ``(fs, path)`` with ``path`` free of a trailing slash.

    Raises:
        InvalidURIError: fsspec knows no filesystem for the URI's protocol, or its package
            (``gcsfs`` for ``gs://``) is not installed.
    """
    check_protocol(uri)
    fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    return fs, path.rstrip("/") or path


def check_protocol(uri: str) -> None:
    """Raise :class:`InvalidURIError` unless fsspec can open ``uri``'s protocol (a path has none).

    Chained URIs (``simplecache::s3://…``) are left to fsspec.
    """
    if "::" in uri:
        return
    protocol, _ = fsspec.core.split_protocol(uri)
    if protocol is None:
        return
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as e:
        raise InvalidURIError(f"no filesystem for protocol {protocol!r}: {e}", uri=uri) from None


# Option names that carry a credential in fsspec's filesystems (s3fs, gcsfs, adlfs, and the
# botocore client_kwargs s3fs passes on). A name, never a value: a profile or a role ARN is fine.
_CREDENTIAL_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key",
        "secret_key",
        "account_key",
        "sas_token",
        "client_secret",
        "connection_string",
        "credentials",
    }
)

SAFE_CREDENTIALS = (
    "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the standard AWS "
    "configuration (a profile: storage option 'profile', ~/.aws/credentials, an instance or pod role)"
)
"""Where credentials come from instead of storage options (parameters are stored in clear)."""


def refuse_credentials(options: Mapping[str, Any], *, where: str = "storage_options") -> None:
    """Raise ``ValueError`` when ``options`` (nested mappings too) name a credential.

    Storage options are flow parameters, which Prefect stores with every flow run and shows
    on its Parameters tab: a secret there is readable by anyone with access to the UI.
    """
    for name, value in options.items():
        if name.lower() in _CREDENTIAL_OPTIONS:
            raise ValueError(
                f"{where}: {name!r} is a credential, and parameters are stored in clear with every flow run; "
                f"give credentials through {SAFE_CREDENTIALS}"
            )
        if isinstance(value, Mapping):
            refuse_credentials(value, where=f"{where}.{name}")


def is_local_path(uri: str) -> bool:
    """Whether ``uri`` is a plain path of this machine (no protocol, no chained URL)."""
    return "::" not in uri and fsspec.core.split_protocol(uri)[0] is None


def join(*parts: str) -> str:
    """Join path parts with ``/`` whatever the OS (object-store keys and local paths alike)."""
    return posixpath.join(*parts)


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk (where renames are atomic and temporaries can linger)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _version(info: Mapping) -> str:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    # Whatever the backend keeps: a number, a datetime, a string, or nothing.
    mtime: Any = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    stamp = f"{float(mtime):.6f}" if mtime is not None else "?"
    return f"size:{int(info.get('size') or 0)};mtime:{stamp}"


def _modified(info: Mapping) -> datetime | None:
    # Local files give "mtime" (epoch seconds), s3fs "LastModified", memory "created".
    stamp = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    if isinstance(stamp, datetime):
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if isinstance(stamp, (int, float)):
        return datetime.fromtimestamp(stamp, tz=UTC)
    return None


def _hidden(relpath: str) -> bool:
    # Hidden and underscore names (".x.tmp-…", "_SUCCESS", "_manifest/") are bookkeeping, not
    # input; the same rule pyarrow.dataset applies when it discovers files.
    return any(part.startswith((".", "_")) for part in relpath.split("/"))


def list_objects(fs: AbstractFileSystem, root: str, *, prefix: bool = False) -> list[StoredObject]:
    """Every object under ``root`` (or ``root`` itself when it is a file), sorted by path.

    Hidden and underscore-prefixed names at any depth below ``root`` and directory markers are
    left out. With ``prefix`` (the URI ended in "/"), ``root`` is a prefix even where an object
    store also holds an object of that very name ("docs" beside "docs/a.txt").

    Raises:
        InputNotFoundError: Nothing exists at ``root``.
        StorageError: The store could not be listed.
    """
    uri = fs.unstrip_protocol(root)
    require_input(fs, root)
    try:
        if not prefix and fs.isfile(root):
            infos = {root: fs.info(root)}
            base = posixpath.dirname(root)
        else:
            infos = fs.find(root, detail=True)
            base = root
    except _store_errors() as e:
        raise storage_error("could not list objects", e, uri=uri) from e
    out = []
    for path, info in sorted(infos.items()):
        if info.get("type") == "directory" or path.endswith("/"):
            continue
        relpath = path[len(base) :].lstrip("/") if base else path
        if _hidden(relpath):
            continue
        out.append(
            StoredObject(
                uri=fs.unstrip_protocol(path),
                path=path,
                relpath=relpath,
                size=int(info.get("size") or 0),
                version=_version(info),
                modified=_modified(info),
            )
        )
    return out


def require_input(fs: AbstractFileSystem, root: str) -> None:
    """Raise unless a file or prefix exists at ``root``.

    Raises:
        InputNotFoundError: Nothing exists at ``root``.
        StorageError: The store could not be asked.
    """
    uri = fs.unstrip_protocol(root)
    try:
        # A long-lived s3fs instance caches listings; this run must see the store as it is.
        fs.invalidate_cache(root)
        exists = fs.exists(root)
    except _store_errors() as e:
        raise storage_error("could not list objects", e, uri=uri) from e
    if not exists:
        raise InputNotFoundError("no file or prefix at the input URI", uri=uri)


def unreadable_object(fs: AbstractFileSystem, path: str) -> str | None:
    """Why an object that was listed cannot be read as a file, or None.

    On a local disk a listed name may be a symlink loop, a dangling symlink or (through a
    symlink) a directory: reading it fails the same way on every attempt and in every later
    run, so it is named here and quarantined, never retried. s3fs reads "?versionId=" in a key
    as a version id, so "a.txt?versionId=1.txt" would fetch "a.txt" (or nothing): such objects
    are named too, never read as someone else's bytes.
    """
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "?versionId=" in path and {"s3", "s3a"} & set(protocols):
        return (
            "unsupported object key: s3fs reads '?versionId=' in a key as a version id, so it cannot fetch this object"
        )
    if is_local(fs):
        return _local_problem(path)
    return None


def _local_problem(path: str) -> str | None:
    try:
        if os.path.isdir(path):
            return "is a directory: a directory (or a symlink to one) named like a file, not an object to read"
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop: the symlink resolves to itself, there is nothing to read"
        if e.errno == errno.ENOENT and os.path.islink(path):
            return f"dangling symlink: its target {os.readlink(path)!r} does not exist"
    return None


def inside(inner: str, outer: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies below it (both as :func:`filesystem` returns them)."""
    inner, outer = inner.rstrip("/"), outer.rstrip("/")
    return inner == outer or inner.startswith(outer + "/")


def read_bytes(fs: AbstractFileSystem, path: str) -> bytes:
    """The whole object.

    Raises:
        StorageError: The read failed (a missing object too: it was listed moments ago, so
            something else is changing the input and a retry may see it settle).
    """
    try:
        return fs.cat_file(path)
    except _store_errors() as e:
        raise storage_error("could not read", e, uri=fs.unstrip_protocol(path)) from e


def read_head(fs: AbstractFileSystem, path: str, n: int) -> bytes:
    """The first ``n`` bytes of the object (all of it when shorter).

    Raises:
        StorageError: As :func:`read_bytes`.
    """
    try:
        return fs.cat_file(path, start=0, end=n)
    except _store_errors() as e:
        raise storage_error("could not read", e, uri=fs.unstrip_protocol(path)) from e


def exists(fs: AbstractFileSystem, path: str) -> bool:
    """Whether an object or directory exists at ``path``, ignoring cached listings."""
    try:
        fs.invalidate_cache(posixpath.dirname(path))
        return fs.exists(path)
    except _store_errors() as e:
        raise storage_error("could not check existence", e, uri=fs.unstrip_protocol(path)) from e


def write_bytes_atomic(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Publish ``data`` at ``path`` so that a reader sees the old content or all of the new.

    A process killed mid-write leaves at most a hidden ``.NAME.tmp-*`` file on a local disk
    (removed by :func:`clean_temporaries`) and nothing on an object store.

    Raises:
        StorageError: The write failed.
    """
    try:
        if is_local(fs):
            parent, name = posixpath.split(path)
            os.makedirs(parent, exist_ok=True)
            tmp = join(parent, f".{name}{_TMP_MARK}{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            # The rename is durable only once the directory entry is on disk.
            dir_fd = os.open(parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        else:
            fs.pipe_file(path, data)
    except _store_errors() as e:
        raise storage_error("could not write", e, uri=fs.unstrip_protocol(path)) from e


def list_files(fs: AbstractFileSystem, directory: str, suffix: str = "") -> list[str]:
    """Paths of the files directly in ``directory`` ending with ``suffix``, sorted; empty when
    the directory does not exist. Hidden files (temporaries) are left out."""
    try:
        fs.invalidate_cache(directory)
        if not fs.exists(directory):
            return []
        entries = fs.ls(directory, detail=True)
    except FileNotFoundError:
        return []
    except _store_errors() as e:
        raise storage_error("could not list", e, uri=fs.unstrip_protocol(directory)) from e
    return sorted(
        e["name"]
        for e in entries
        if e.get("type") != "directory"
        and e["name"].endswith(suffix)
        and not posixpath.basename(e["name"]).startswith(".")
    )


def remove_files(fs: AbstractFileSystem, paths: Iterable[str]) -> int:
    """Delete the files that exist among ``paths``; returns how many were deleted."""
    removed = 0
    for path in paths:
        try:
            fs.rm_file(path)
            removed += 1
        except FileNotFoundError:
            continue
        except _store_errors() as e:
            raise storage_error("could not delete", e, uri=fs.unstrip_protocol(path)) from e
    return removed


def clean_temporaries(fs: AbstractFileSystem, root: str) -> int:
    """Delete the temporaries that killed writers left under ``root`` on a local disk.

    Only safe while no other writer is active on ``root`` (nerflow assumes one writer per
    output). Object stores never hold temporaries (see the module docstring), so this is a
    no-op there, which also spares a full listing of a large bucket.
    """
    if not is_local(fs) or not os.path.isdir(root):
        return 0
    removed = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and _TMP_MARK in name:
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed
