"""The Prefect task of the listing stage: it calls the stage (tested in tests/nerflow/etl/test_listing.py)."""

from __future__ import annotations

from nerflow.etl.listing import BatchingConfig
from tests.conftest import put


def test_plan_batches_task_calls_the_stage(memfs, monkeypatch):
    from nerflow.storage import Location
    from tasks import listing as listing_tasks

    fs, root = memfs
    put(fs, f"{root}/in/a.txt", "x")
    monkeypatch.setattr(listing_tasks, "get_run_logger", lambda: __import__("logging").getLogger("test"))
    plan = listing_tasks.plan_batches.fn(
        Location(uri=f"memory://{root}/in"), Location(uri=f"memory://{root}/out"), BatchingConfig()
    )
    assert plan.objects == 1
