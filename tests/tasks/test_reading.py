"""The Prefect task of the reading stage: it calls the stage (tested in tests/nerflow/etl/test_reading.py)."""

from __future__ import annotations

from nerflow.etl.reading import ReadConfig
from tests.nerflow.etl.test_reading import _jsonl


def test_read_batch_task_calls_the_stage(make_batch, memfs, monkeypatch):
    from nerflow.storage import Location
    from tasks import reading as reading_tasks

    _fs, root = memfs
    batch = make_batch({"d.jsonl": _jsonl({"id": "a", "text": "x"}, "oops")})
    monkeypatch.setattr(reading_tasks, "get_run_logger", lambda: __import__("logging").getLogger("test"))
    read = reading_tasks.read_batch.fn(Location(uri=f"memory://{root}"), batch, ReadConfig())
    assert read.records.height == 1 and read.quarantine.height == 1
