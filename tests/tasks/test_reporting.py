"""The Prefect task of the reporting stage: it calls the stage (tested in tests/nerflow/etl/test_reporting.py)."""

from __future__ import annotations

import uuid

from nerflow.storage import Location
from tests.nerflow.etl.test_reporting import _summary, _two_batches


def test_the_chart_task_writes_the_png_under_the_runs_report_directory():
    from tasks.reporting import write_entity_chart

    root = f"memory://reports-{uuid.uuid4().hex}"
    summary = _summary(_two_batches(), output_uri=root)
    output = Location(uri=root)
    chart = write_entity_chart.fn(output, summary)
    fs, path = output.open()
    assert chart.uri == fs.unstrip_protocol(f"{path}/_manifest/reports/run-run-1/entities.png")
    assert fs.cat_file(f"{path}/_manifest/reports/run-run-1/entities.png") == chart.png
    assert chart.png.startswith(b"\x89PNG")
    fs.rm(path, recursive=True)
