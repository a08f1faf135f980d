"""The Prefect task of the normalising stage: it calls the stage (tested in tests/nerflow/etl/test_normalising.py)."""

from __future__ import annotations

from nerflow.etl.normalising import NormaliseConfig
from tests.nerflow.etl.test_normalising import _read


def test_normalise_task_calls_the_stage(monkeypatch):
    from tasks import normalising as normalising_tasks

    monkeypatch.setattr(normalising_tasks, "get_run_logger", lambda: __import__("logging").getLogger("test"))
    out = normalising_tasks.normalise_batch.fn(_read({"text": "", "lang": "en"}), NormaliseConfig())
    assert out.documents.get_column("status").to_list() == ["empty"]
