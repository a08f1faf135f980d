"""What a run of extract-entities publishes, read back through the Prefect API: the summary
page, the top entities per label, the progress bar, and the chart written with the outputs
(which ``nerflow validate`` and ``nerflow warehouse`` must not mind)."""

from __future__ import annotations

import base64
import dataclasses
import json
from uuid import UUID

import duckdb
import pyarrow as pa
import pytest

from flows.extract_entities import extract_entities
from nerflow import storage
from nerflow.etl.verifying import verify_output
from nerflow.warehouse import build_warehouse
from tasks.reporting import PROGRESS_KEY, SUMMARY_KEY, TOP_ENTITIES_KEY
from tests.flows.test_extract_entities import params, write_corpus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_artifacts(run_id: str) -> dict[str, list]:
    """The flow run's artifacts by key, through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
    out: dict[str, list] = {}
    for artifact in found:
        out.setdefault(artifact.key, []).append(artifact)
    return out


def test_a_run_publishes_its_summary_top_entities_progress_and_chart(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path
):
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    assert summary.entities > 0, "the tiny model finds entities in the corpus"
    artifacts = run_artifacts(summary.run_id)
    assert {SUMMARY_KEY, TOP_ENTITIES_KEY, PROGRESS_KEY} <= set(artifacts)
    assert "extract-entities-contracts" not in artifacts, "the summary holds the contract sections: no copy"
    assert all(len(v) == 1 for v in artifacts.values()), "one of each per run"

    # The summary page: the counts, entities by label and language, throughput, the contract sections.
    [page] = artifacts[SUMMARY_KEY]
    md = page.data
    assert page.type == "markdown" and md.startswith("# extract-entities completed\n")
    assert "| in (records read) | 13 |" in md and "| annotated (ok) | 10 |" in md
    assert "| empty | 1 |" in md and "| quarantined | 2 |" in md
    assert f"{summary.batches} batches committed" in md and "| documents/s | characters/s |" in md
    for label, n in summary.entities_by_label.items():
        assert f"| {label} | " in md and md.split(f"| {label} | ", 1)[1].split("\n", 1)[0].endswith(f" {n:,} |")
    assert f"**{summary.entities:,}** |" in md
    assert "## Contract results" in md and "| entities | v2 | " in md and "| not JSON | 1 |" in md

    # The chart: a PNG with the run's outputs, embedded in the page (the UI renders a data URI;
    # a browser would not open the file's own URI from it).
    png = out / "_manifest" / "reports" / f"run-{summary.run_id}" / "entities.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    embedded = md.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(embedded) == png.read_bytes() and f"`{png}`" in md

    # The top entities: rows for every label that has entities, counts within the label's total.
    [top] = artifacts[TOP_ENTITIES_KEY]
    rows = json.loads(top.data)
    assert top.type == "table" and rows
    assert {r["label"] for r in rows} == set(summary.entities_by_label)
    for label, total in summary.entities_by_label.items():
        mine = [r for r in rows if r["label"] == label]
        assert [r["rank"] for r in mine] == list(range(1, len(mine) + 1))
        assert [r["count"] for r in mine] == sorted((r["count"] for r in mine), reverse=True)
        assert sum(r["count"] for r in mine) <= total and all(1 <= r["documents"] <= r["count"] for r in mine)

    # The progress bar reached the end.
    [bar] = artifacts[PROGRESS_KEY]
    assert bar.type == "progress" and float(bar.data) == 100.0
    assert bar.description == f"extract-entities completed: {summary.batches} of {summary.batches} batches committed"

    # The PNG under _manifest/ is no stray file to the readers of the output.
    fs, root = storage.filesystem(str(out))
    report = verify_output(fs, root)
    assert report.success, report
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        loaded = build_warehouse(con, fs, root)
    assert loaded.tables["entities"].rows == summary.entities

    # A run with nothing new: done at once, a summary without a chart, no top-entities table.
    again = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    artifacts = run_artifacts(again.run_id)
    assert TOP_ENTITIES_KEY not in artifacts
    assert float(artifacts[PROGRESS_KEY][0].data) == 100.0
    assert "No entities were written." in artifacts[SUMMARY_KEY][0].data
    assert not (out / "_manifest" / "reports" / f"run-{again.run_id}").exists()


def test_a_failed_run_reports_where_it_stopped(prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch):
    from nerflow.etl import annotating
    from nerflow.etl.errors import BatchRejectedError

    # Every entity of wiki.jsonl.gz's batch (the last of five) breaks the score contract.
    real = annotating.annotate_batch

    def wrong_scores(batch, config, device):
        out = real(batch, config, device)
        ents = out.entities
        scores = [
            1.7 if d.startswith("w") else s
            for d, s in zip(ents.column("doc_id").to_pylist(), ents.column("score").to_pylist())
        ]
        i = ents.schema.get_field_index("score")
        return dataclasses.replace(
            out, entities=ents.set_column(i, ents.schema.field(i), pa.array(scores, pa.float32()))
        )

    monkeypatch.setattr(annotating, "annotate_batch", wrong_scores)
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    with pytest.raises(BatchRejectedError):
        extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir, max_failure_rate=0.5))

    [run] = _runs(out)
    artifacts = run_artifacts(run["run_id"])
    [bar] = artifacts[PROGRESS_KEY]
    assert 0.0 < float(bar.data) < 100.0
    assert bar.description == "extract-entities failed: 4 of 5 batches committed"
    md = artifacts[SUMMARY_KEY][0].data
    assert md.startswith("# extract-entities failed\n") and "**Failed:** BatchRejectedError: " in md
    assert "4 batches committed" in md


def _runs(out) -> list[dict]:
    import pyarrow.parquet as pq

    return [pq.read_table(p).to_pylist()[0] for p in sorted((out / "_manifest" / "runs").glob("*.parquet"))]
