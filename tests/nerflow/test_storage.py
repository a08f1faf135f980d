"""Storage failures: what is retried (the store may recover) and what fails at once."""

from __future__ import annotations

import errno
import socket

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from ner_core.errors import TerminalError, TransientError
from nerflow import storage
from nerflow.errors import StorageError, StorageRefusedError


class _FailingWrites(MemoryFileSystem):
    """An in-memory store whose writes fail with one OS error."""

    def __init__(self, error: OSError) -> None:
        super().__init__(skip_instance_cache=True)
        self.error = error

    def pipe_file(self, path, value, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only file system"), (errno.EDQUOT, "quota")],
)
def test_a_full_or_read_only_store_is_refused_at_once_not_retried(code, words):
    fs = _FailingWrites(OSError(code, "the OS said no"))
    with pytest.raises(StorageRefusedError, match=words) as info:
        storage.write_bytes_atomic(fs, "/out/part.parquet", b"x")
    assert isinstance(info.value, TerminalError) and not isinstance(info.value, TransientError)


def test_other_write_errors_stay_transient():
    fs = _FailingWrites(OSError(errno.EIO, "input/output error"))
    with pytest.raises(StorageError, match=r"could not write: .*input/output error") as info:
        storage.write_bytes_atomic(fs, "/out/part.parquet", b"x")
    assert isinstance(info.value, TransientError)


def test_an_s3_endpoint_that_refuses_connections_is_a_transient_storage_error(monkeypatch):
    # botocore's connection errors derive from neither OSError nor ValueError: raised as they
    # were, the I/O tasks did not retry them and a run failed on the first refused connection.
    pytest.importorskip("s3fs")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    fs = fsspec.filesystem(
        "s3",
        client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
        config_kwargs={"retries": {"max_attempts": 1}},
        skip_instance_cache=True,
    )
    with pytest.raises(StorageError, match="could not list objects: Could not connect") as info:
        storage.require_input(fs, "nerflow/in")
    assert isinstance(info.value, TransientError)
