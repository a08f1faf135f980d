"""Stage tests run on fsspec's in-memory filesystem, each under its own root."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from nerflow import storage


@pytest.fixture
def memfs():
    """``(fs, root)``: the in-memory filesystem and a fresh directory on it, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex}"
    fs.mkdir(root)
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def put(fs, path: str, data: bytes | str) -> str:
    """Write ``data`` at ``path`` and return the path."""
    fs.pipe_file(path, data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def make_batch(memfs):
    """Write ``{relpath: data}`` under ``<root>/in`` and return them as one batch."""
    from nerflow.etl.listing import Batch, batch_id

    fs, root = memfs

    def make(files: dict[str, bytes | str]):
        for rel, data in files.items():
            put(fs, storage.join(root, "in", rel), data)
        objects = tuple(storage.list_objects(fs, storage.join(root, "in")))
        return Batch(batch_id=batch_id(objects), index=0, objects=objects)

    return make
