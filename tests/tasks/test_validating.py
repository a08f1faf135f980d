"""The Prefect task of the validating stage: it calls the stage (tested in tests/nerflow/etl/test_validating.py)."""

from __future__ import annotations

from nerflow.etl.validating import ValidateConfig
from tests.nerflow.etl.test_tables import RUN, _inputs
from tests.nerflow.etl.test_validating import LABELS, _with_entities


def test_validate_batch_task_calls_the_stage(monkeypatch):
    from tasks import validating as validating_tasks

    monkeypatch.setattr(validating_tasks, "get_run_logger", lambda: __import__("logging").getLogger("test"))
    batch, normalised, annotation = _inputs()
    out = validating_tasks.validate_batch.fn(
        batch,
        normalised,
        _with_entities(annotation, score=[0.9, 1.5]),
        RUN,
        ValidateConfig(labels=LABELS, max_failure_rate=1.0),
        frozenset(),
    )
    assert out.validation.quarantined == {"entities.score_in_unit_interval": 1}
