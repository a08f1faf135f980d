"""The run's reports: top entities per batch and per run, the summary page, the table rows,
the progress percentage and the chart (nerflow.etl.run_report), and the chart task."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pyarrow as pa
import pytest

from nerflow.etl import run_report
from nerflow.etl.report import (
    BATCH_TOP_K,
    BatchReport,
    TopEntity,
    merge_top_entities,
    render_contract_report,
    summarise,
    top_entities,
)
from tests.test_layout import REPO_ROOT

RESULTS = {
    "batches": 2,
    "quarantined": {},
    "reconciliation": {
        "docs_in": 7,
        "docs_ok": 5,
        "docs_empty": 1,
        "docs_quarantined": 1,
        "entities": 9,
        "entities_counted": 9,
        "vectors": None,
        "ok": True,
    },
    "tables": {
        "entities": {"version": 1, "rows": 9, "checks": {"schema": 0, "score_in_unit_interval": 0}, "success": True}
    },
}


def _entities(rows: list[tuple[str, str, str]]) -> pa.Table:
    doc_ids, texts, labels = zip(*rows)
    return pa.table({"doc_id": list(doc_ids), "text": list(texts), "label": list(labels)})


def _report(index: int, counts: dict[tuple[str, str], int], top: tuple[TopEntity, ...] = (), **kw) -> BatchReport:
    n = sum(counts.values())
    fields = dict(
        batch_id=f"b{index}",
        index=index,
        objects=1,
        bytes=100,
        docs_in=4,
        docs_ok=3,
        docs_empty=1,
        docs_quarantined=0,
        entities=n,
        chars=300,
        entity_counts=counts,
        top_entities=top,
    )
    return BatchReport(**{**fields, **kw})


def _summary(reports: list[BatchReport], **kw):
    fields = dict(
        run_id="run-1",
        run_label="nightly",
        input_uri="s3://in/docs",
        output_uri="/data/out",
        model_id="m123",
        devices=["cpu"],
        listed=3,
        skipped=1,
        ignored=0,
        superseded=0,
        seconds=2.0,
        tables={"documents": "/data/out/documents/"},
    )
    return summarise(reports, **{**fields, **kw})


def _two_batches():
    first = _report(
        0,
        {("PER", "en"): 3, ("LOC", "en"): 1, ("LOC", "de"): 2},
        top=top_entities(
            _entities(
                [
                    ("d1", "Merkel", "PER"),
                    ("d1", "Merkel", "PER"),
                    ("d2", "Merkel", "PER"),
                    ("d1", "Paris", "LOC"),
                    ("d2", "Berlin", "LOC"),
                    ("d3", "Berlin", "LOC"),
                ]
            )
        ),
    )
    second = _report(
        1,
        {("PER", "fr"): 2, ("ORG", "fr"): 1},
        top=top_entities(
            _entities(
                [
                    ("d4", "Macron", "PER"),
                    ("d5", "Merkel", "PER"),
                    ("d5", "ONU", "ORG"),
                ]
            )
        ),
    )
    return [first, second]


# Top entities.


def test_a_batch_keeps_its_most_frequent_texts_per_label_with_counts_and_documents():
    table = _entities(
        [
            ("d1", "Merkel", "PER"),
            ("d1", "Merkel", "PER"),
            ("d2", "Merkel", "PER"),
            ("d2", "Scholz", "PER"),
            ("d3", "Obama", "PER"),
            ("d3", "Obama", "PER"),
            ("d1", "Paris", "LOC"),
        ]
    )
    assert top_entities(table, k=2) == (
        TopEntity(label="LOC", text="Paris", count=1, docs=1),
        TopEntity(label="PER", text="Merkel", count=3, docs=2),
        TopEntity(label="PER", text="Obama", count=2, docs=1),
    )
    assert top_entities(table.slice(0, 0)) == ()


def test_a_batch_keeps_at_most_batch_top_k_texts_per_label():
    table = _entities([(f"d{i}", f"name {i}", "PER") for i in range(BATCH_TOP_K + 10)])
    assert len(top_entities(table)) == BATCH_TOP_K


def test_a_run_adds_up_its_batches_top_entities():
    merged = merge_top_entities(
        [
            (
                TopEntity(label="PER", text="Merkel", count=3, docs=2),
                TopEntity(label="PER", text="Obama", count=2, docs=1),
            ),
            (
                TopEntity(label="PER", text="Obama", count=2, docs=2),
                TopEntity(label="ORG", text="ONU", count=1, docs=1),
            ),
        ],
        k=1,
    )
    assert merged == (
        TopEntity(label="ORG", text="ONU", count=1, docs=1),
        TopEntity(label="PER", text="Obama", count=4, docs=3),
    )


def test_the_run_summary_holds_the_merged_top_entities():
    summary = _summary(_two_batches())
    assert [(e.label, e.text, e.count, e.docs) for e in summary.top_entities] == [
        ("LOC", "Berlin", 2, 2),
        ("LOC", "Paris", 1, 1),
        ("ORG", "ONU", 1, 1),
        ("PER", "Merkel", 4, 3),
        ("PER", "Macron", 1, 1),
    ]


def test_top_entity_rows_rank_within_each_label():
    rows = run_report.top_entity_rows(_summary(_two_batches()).top_entities)
    assert rows[0] == {"label": "LOC", "rank": 1, "text": "Berlin", "count": 2, "documents": 2}
    assert [(r["label"], r["rank"]) for r in rows] == [("LOC", 1), ("LOC", 2), ("ORG", 1), ("PER", 1), ("PER", 2)]
    assert json.loads(json.dumps(rows)) == rows, "what a table artifact stores"
    assert run_report.top_entity_rows(()) == []


# Progress.


@pytest.mark.parametrize(
    ("done_bytes", "total_bytes", "done_batches", "total_batches", "percent"),
    [
        (0, 200, 0, 2, 0.0),
        (50, 200, 1, 2, 25.0),
        (200, 200, 2, 2, 100.0),
        (0, 0, 1, 4, 25.0),
        (0, 0, 0, 0, 100.0),
        (300, 200, 3, 2, 100.0),
    ],
)
def test_progress_goes_by_bytes_then_batches(done_bytes, total_bytes, done_batches, total_batches, percent):
    assert run_report.progress_percent(done_bytes, total_bytes, done_batches, total_batches) == percent


# The summary page.


def test_the_summary_page_has_the_counts_the_entities_by_label_and_language_and_the_contract_sections():
    summary = _summary(_two_batches())
    text = run_report.render_run_summary(
        summary,
        RESULTS,
        status="completed",
        chart_uri="/data/out/_manifest/reports/run-run-1/entities.png",
        top_entities_key="extract-entities-top-entities",
    )
    assert text.startswith("# extract-entities completed\n") and text.count("\n# ") == 0, "one title"
    assert "Run `run-1` (nightly), model `m123` on cpu: 2 batches committed in 2.0 s." in text
    assert "| in (records read) | 8 |" in text and "| annotated (ok) | 6 |" in text
    assert "| empty | 2 |" in text and "| quarantined | 0 |" in text
    assert "| 4.00 | 300 | 2.0 | cpu |" in text  # 8 documents and 600 characters in 2 s
    # Languages by entities, most first; a row per label and a total.
    assert "| label | en | fr | de | total |" in text
    assert "| PER | 3 | 2 | 0 | 5 |" in text and "| LOC | 1 | 0 | 2 | 3 |" in text and "| ORG | 0 | 1 | 0 | 1 |" in text
    assert "| **total** | 4 | 3 | 2 | **9** |" in text
    assert "Chart: [entities.png](file:///data/out/_manifest/reports/run-run-1/entities.png)" in text
    assert "table artifact `extract-entities-top-entities`" in text
    # The contract report's sections, once, as render_contract_report renders them.
    sections = render_contract_report(summary, RESULTS, status="completed", heading=False)
    assert sections.startswith("## Reconciliation\n") and sections in text
    assert text.count("## Reconciliation") == 1 and "## Quarantine by reason" in text


def test_the_summary_page_embeds_the_chart_and_links_the_top_entities_when_the_ui_is_known():
    summary = _summary(_two_batches())
    text = run_report.render_run_summary(
        summary,
        RESULTS,
        status="completed",
        chart_uri="s3://bucket/out/_manifest/reports/run-run-1/entities.png",
        chart_png=b"\x89PNG-bytes",
        top_entities_key="extract-entities-top-entities",
        top_entities_url="http://prefect:4200/artifacts/key/extract-entities-top-entities",
    )
    assert "![Entities by label and language](data:image/png;base64,iVBORy1ieXRlcw==)" in text
    assert "`s3://bucket/out/_manifest/reports/run-run-1/entities.png`" in text and "Chart: [" not in text
    assert "[extract-entities-top-entities](http://prefect:4200/artifacts/key/extract-entities-top-entities)" in text
    one = dataclasses.replace(summary, batches=1)
    assert "1 batch committed" in run_report.render_run_summary(one, RESULTS, status="completed")


def test_the_summary_page_of_a_failed_run_says_why_and_escapes_input():
    summary = dataclasses.replace(_summary(_two_batches(), run_label="a | b"), quarantine_reasons={"not JSON": 1})
    text = run_report.render_run_summary(summary, RESULTS, status="failed", error="BatchRejectedError: 3 | 4")
    assert text.startswith("# extract-entities failed\n")
    assert "(a \\| b)" in text and "**Failed:** BatchRejectedError: 3 \\| 4" in text and text.count("**Failed:**") == 1
    assert "No chart: nothing to draw." in text and "table artifact" not in text
    assert "| not JSON | 1 |" in text


def test_the_summary_page_of_a_run_without_entities():
    text = run_report.render_run_summary(_summary([]), {}, status="completed")
    assert "No entities were written." in text and "| in (records read) | 0 |" in text


def test_languages_beyond_the_chart_limit_are_added_up_as_other():
    langs = [f"l{i:02d}" for i in range(run_report.CHART_LANGUAGES + 2)]
    counts = {("PER", lang): 100 - i for i, lang in enumerate(langs)}
    summary = _summary([_report(0, counts)])
    text = run_report.render_run_summary(summary, {}, status="completed")
    header = next(line for line in text.splitlines() if line.startswith("| label |"))
    assert header.endswith("| l11 | other | total |")
    assert f"| {100 - 12 + 100 - 13:,} | {sum(counts.values()):,} |" in text
    assert "other: l12, l13." in text


# The chart.


def test_the_chart_is_a_png_drawn_the_same_way_every_time():
    summary = _summary(_two_batches())
    png = run_report.entity_chart_png(summary)
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert run_report.entity_chart_png(summary) == png
    assert b"matplotlib" not in png, "no Software stamp"


def test_no_chart_without_entities():
    assert run_report.entity_chart_png(_summary([])) is None


def test_matplotlib_is_imported_only_to_draw():
    code = "import sys, nerflow.etl.run_report, tasks.reporting; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
