"""A model shaped like the reference (mBERT size, 15 MultiNERD labels) through the whole flow,
with a span filter added by ``nerflow train-filter``: contracts, tables, reports, the chart
and the warehouse hold for a 15-label model. Slow: the checkpoint is about 1 GB."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from nerflow.cli import main
from tests.fixtures_models import REFERENCE_LABELS, build_reference_shaped_model
from tests.flows.test_extract_entities import write_corpus

pytestmark = pytest.mark.slow


def test_a_reference_shaped_model_with_a_filter_goes_through_the_flow(prefect_harness, tmp_path, capsys):
    model_dir = build_reference_shaped_model(tmp_path / "reference")
    data = tmp_path / "labelled.jsonl"
    rows = [
        {
            "text": "Angela Merkel visited Paris and the United Nations in New York .",
            "entities": [[0, 13, "PER"], [22, 27, "LOC"], [36, 50, "ORG"], [54, 62, "LOC"]],
        },
        {
            "text": "John Smith works for the European Commission in Brussels .",
            "entities": [[0, 10, "PER"], [25, 44, "ORG"], [48, 56, "LOC"]],
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    filtered = tmp_path / "filtered"
    assert (
        main(
            [
                "train-filter",
                "--model",
                str(model_dir),
                "--data",
                str(data),
                "--dev",
                str(data),
                "--output",
                str(filtered),
                "--epochs",
                "2",
            ]
        )
        == 0
    )

    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(inp),
                str(out),
                "--model",
                str(filtered),
                "--device",
                "cpu",
                "--no-progress",
                "--batch-docs",
                "4",
                "--span-filter",
                "auto",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "span filter stored (threshold=" in printed
    runs = pq.read_table(next((out / "_manifest" / "runs").rglob("*.parquet"))).to_pylist()
    assert runs[0]["model_labels"] == list(REFERENCE_LABELS[1:])
    assert runs[0]["status"] == "completed" and 0 < runs[0]["spans_scored"] <= runs[0]["spans"]
    labels = {
        label
        for path in (out / "entities").rglob("*.parquet")
        for label in pq.read_table(path).column("label").to_pylist()
    }
    assert labels <= set(REFERENCE_LABELS[1:])
    if labels:  # a random model may find nothing in a small corpus; its chart is drawn when it does
        assert (out / "_manifest" / "reports" / f"run-{runs[0]['run_id']}" / "entities.png").is_file()

    assert main(["validate", str(out)]) == 0
    warehouse = tmp_path / "warehouse.duckdb"
    assert main(["warehouse", str(out), "--duckdb", str(warehouse)]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from entities").fetchone()[0] == sum(
            pq.read_table(p).num_rows for p in (out / "entities").rglob("*.parquet")
        )
