"""The output's writer lease: one run writes an output at a time; a dead run's lease is taken over."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from nerflow import storage
from nerflow.etl.errors import OutputBusyError
from nerflow.etl.lease import OutputLease, lease_path


def _held(fs, root) -> dict:
    return json.loads(fs.cat_file(lease_path(root)))


def _check_one_writer(fs, root):
    with OutputLease(fs, root, holder="flow run A"):
        assert _held(fs, root)["holder"] == "flow run A"
        with pytest.raises(
            OutputBusyError,
            match=r"another run is writing to this output: flow run A on .* \(pid \d+\), "
            r"since .*Wait for it to end",
        ):
            OutputLease(fs, root, holder="flow run B").acquire()
        assert _held(fs, root)["holder"] == "flow run A"
    assert not fs.exists(lease_path(root))  # released
    with OutputLease(fs, root, holder="flow run B"):
        pass


def test_one_writer_at_a_time_on_a_local_disk(tmp_path):
    _check_one_writer(*storage.filesystem(str(tmp_path / "out")))


def test_one_writer_at_a_time_in_memory(memfs):
    _check_one_writer(*memfs)


def test_one_writer_at_a_time_on_s3(s3):
    _check_one_writer(*storage.filesystem("s3://nerflow/out", s3))


def _plant(fs, root, **record):
    now = datetime.now(UTC).isoformat()
    fs.makedirs(storage.join(root, "_manifest"), exist_ok=True)
    fs.pipe_file(
        lease_path(root),
        json.dumps(
            {
                "token": "old",
                "holder": "flow run dead",
                "host": "elsewhere",
                "pid": 1,
                "started_at": now,
                "renewed_at": now,
                **record,
            }
        ).encode(),
    )


def test_a_lease_not_renewed_in_time_is_taken_over(memfs):
    fs, root = memfs
    _plant(fs, root, renewed_at=(datetime.now(UTC) - timedelta(minutes=10)).isoformat())
    with OutputLease(fs, root, holder="flow run B"):
        assert _held(fs, root)["holder"] == "flow run B"
    _plant(fs, root)  # renewed just now, on another host: busy
    with pytest.raises(OutputBusyError, match="expires at"):
        OutputLease(fs, root, holder="flow run C").acquire()


def test_a_lease_of_a_process_of_this_host_that_is_gone_is_taken_over_at_once(memfs):
    import socket

    fs, root = memfs
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant(fs, root, host=socket.gethostname(), pid=dead.pid)
    with OutputLease(fs, root, holder="flow run B"):
        assert _held(fs, root)["holder"] == "flow run B"


def test_the_lease_is_renewed_while_held(memfs):
    fs, root = memfs
    with OutputLease(fs, root, holder="flow run A", renew_every=0.05):
        first = _held(fs, root)["renewed_at"]
        time.sleep(0.3)
        held = _held(fs, root)
        assert held["renewed_at"] > first and held["started_at"] == first


def test_a_lease_that_cannot_be_given_back_does_not_hide_the_runs_own_error(memfs, monkeypatch):
    fs, root = memfs
    lease = OutputLease(fs, root, holder="flow run failing")

    def store_down(*args, **kwargs):
        raise RuntimeError("the object store is down")

    with pytest.raises(ValueError, match="the run's own error"), lease:
        monkeypatch.setattr(lease, "release", store_down)
        raise ValueError("the run's own error")
    # Without a failure of the run, a release that fails is raised as it is.
    with pytest.raises(RuntimeError, match="store is down"), OutputLease(fs, root + "/2", holder="run") as other:
        monkeypatch.setattr(other, "release", store_down)
