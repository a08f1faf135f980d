"""The Prefect task of the writing stage: it calls the stage (tested in tests/nerflow/etl/test_writing.py)."""

from __future__ import annotations

from nerflow.etl.validating import ValidateConfig, validate_batch
from tests.nerflow.etl.test_tables import RUN, _inputs


def test_write_batch_task_calls_the_stage(memfs):
    from nerflow.storage import Location
    from tasks import writing as writing_tasks

    fs, root = memfs
    validated = validate_batch(*_inputs(), RUN, ValidateConfig(labels=("PER", "LOC")))
    report = writing_tasks.write_batch.fn(Location(uri=f"memory://{root}"), validated)
    assert (report.docs_in, report.docs_ok, report.docs_empty, report.docs_quarantined, report.entities) == (
        4,
        1,
        1,
        2,
        2,
    )
    assert report.entity_counts == {("PER", "de"): 1, ("LOC", "de"): 1}
    assert report.quarantine_reasons == {"not JSON": 1, "engine failed": 1}
    assert fs.exists(f"{root}/_manifest/objects/part-b1.parquet")
