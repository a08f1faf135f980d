"""Names in table cells, read as one run of text and read apart (``Doc.breaks``).

A spreadsheet, a slide's table or a DOCX table holds names one per cell, without the
sentence around them the model learnt from. The readers lay cells out one per line, and the
flow breaks the model's context at every segment (``nerflow.etl.annotating.segment_breaks``),
so each cell is read on its own. This measures what that changes, on tables built from the
dev sets' own gold entities: each set's PER, ORG and LOC names (the first ``--records`` texts,
each distinct name once, in file order) laid out three cells to a row, ``--rows`` rows to a
table, cells one per line and rows apart by a blank line, as the XLSX reader writes them.
Every cell is a gold entity whose label is the name's gold label; the model may find it, miss
it, or find something else in the run. Scored strictly on PER/ORG/LOC (MISC predictions left
out), with the engine's defaults (the model's span filter, exact precision), once without
breaks and once with a break before every cell; the same tables, the same process.

The same tables are also set as PDFs (``tests.samples_pdf.table_of``: each row's cells at
columns 250 pt apart, 9 pt DejaVu Sans, whose glyphs cover every set but the two Chinese
ones; names over 40 characters left out, as they would reach into the next column) and read
by the PDF reader twice: as before, each row one text line and the page's lines run on, and
as now, each row cut at its gaps into ``line_part`` segments read apart. A cell's gold span
is where its name is found, in order, in the text read.

Run:  python benchmarks/table_cells.py [--model default] [--records 600] [--rows 20] [--skip-pdf]
Writes benchmarks/results/table_cells.json and its section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_description, labelled_sets, offline_environment
from _report import replace_section

sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- table-cells:begin -->", "<!-- table-cells:end -->"
LABELS = ("PER", "ORG", "LOC")


def tables(records: list, rows: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """``(text, gold cells)`` of tables of the records' distinct PER/ORG/LOC names."""
    names: dict[tuple[str, str], None] = {}
    for r in records:
        for start, end, label in r.entities:
            name = " ".join(r.text[start:end].split())
            if label in LABELS and name:
                names.setdefault((name, label), None)
    cells = list(names)
    out = []
    per_table = 3 * rows
    for t in range(0, len(cells), per_table):
        text, gold = "", []
        for i, (name, label) in enumerate(cells[t : t + per_table]):
            if i:
                text += "\n\n" if i % 3 == 0 else "\n"
            gold.append((len(text), len(text) + len(name), label))
            text += name
        out.append((text, gold))
    return out


def pdf_tables(docs: list[tuple[str, list]], *, cut_rows: bool) -> tuple[list, int]:
    """The tables of ``docs`` set as PDFs and read back: ``([(text, gold, breaks)], cells not
    found)``; ``cut_rows=False`` reads as the PDF reader did before rows were cut at gaps."""
    from contextlib import nullcontext
    from unittest import mock

    import polars as pl

    from nerflow.etl.annotating import segment_breaks
    from nerflow.etl.extraction import pdf
    from tests.samples_pdf import table_of

    out, missing = [], 0
    for text, gold in docs:
        cells = [(text[a:b], label) for a, b, label in gold if b - a <= 40]
        rows = [tuple(name for name, _ in cells[i : i + 3]) for i in range(0, len(cells), 3)]
        as_before = mock.patch.object(pdf, "_parts", lambda boxes: [(0, len(boxes))])
        with nullcontext() if cut_rows else as_before:
            read = pdf.extract_pdf(table_of(rows, size=9))
        found, cursor = [], 0
        for name, label in cells:
            at = read.text.find(name, cursor)
            if at < 0:
                missing += 1
                continue
            found.append((at, at + len(name), label))
            cursor = at + len(name)
        segments = pl.DataFrame(
            {"doc_id": "t", "start": [s.start for s in read.segments], "kind": [s.kind for s in read.segments]}
        )
        out.append((read.text, found, segment_breaks(segments).get("t", ())))
    return out, missing


def score(engine, docs: list[tuple[str, list]], *, apart: bool, breaks: list | None = None) -> dict:
    from ner_core import Doc
    from ner_core.metrics import score_spans

    if breaks is None:
        breaks = [tuple(start for start, _, _ in gold[1:]) if apart else () for _, gold in docs]
    inputs = [Doc(doc_id=str(i), text=text, breaks=b) for i, ((text, _), b) in enumerate(zip(docs, breaks))]
    spans = engine.stats.spans
    t0 = time.perf_counter()
    results = list(engine.predict(inputs))
    seconds = time.perf_counter() - t0
    predicted = [[(e.start, e.end, e.label) for e in r.entities] for r in results]
    scores = score_spans([g for _, g in docs], predicted, label_map={"MISC": None})
    return {
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.micro.as_dict().items()},
        "windows": sum(r.n_windows for r in results),
        "candidate_spans": engine.stats.spans - spans,
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--skip-pdf", action="store_true", help="leave out the tables set as PDFs")
    args = parser.parse_args()
    offline_environment()
    from ner_core import EngineConfig, NerEngine, load_model

    engine = NerEngine(load_model(args.model, device="cpu"), EngineConfig())
    sets = {}
    for name, records in labelled_sets("dev", args.records).items():
        docs = tables(records, args.rows)
        sets[name] = {
            "cells": sum(len(g) for _, g in docs),
            "run_on": score(engine, docs, apart=False),
            "apart": score(engine, docs, apart=True),
        }
        if not args.skip_pdf and not name.startswith("uner_zh"):
            before, missing_before = pdf_tables(docs, cut_rows=False)
            now, missing_now = pdf_tables(docs, cut_rows=True)
            sets[name]["pdf"] = {
                "cells": sum(len(g) for _, g, _ in now),
                "not_found": {"lines": missing_before, "parts": missing_now},
                "lines": score(engine, [(t, g) for t, g, _ in before], apart=False, breaks=[b for *_, b in before]),
                "parts": score(engine, [(t, g) for t, g, _ in now], apart=True, breaks=[b for *_, b in now]),
            }
        print(name, json.dumps(sets[name]), flush=True)
    pooled = {mode: _pooled([s[mode] for s in sets.values()]) for mode in ("run_on", "apart")}
    with_pdf = [s["pdf"] for s in sets.values() if "pdf" in s]
    if with_pdf:
        pooled["pdf"] = {mode: _pooled([p[mode] for p in with_pdf]) for mode in ("lines", "parts")}
        pooled["pdf"]["cells"] = sum(p["cells"] for p in with_pdf)
    result = {
        "command": "python benchmarks/table_cells.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_description(),
        "args": vars(args),
        "sets": sets,
        "pooled": pooled,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table_cells.json").write_text(json.dumps(result, indent=2) + "\n")
    replace_section(REPORT, BEGIN, END, render(result))


def _pooled(parts: list[dict]) -> dict:
    p = {k: sum(x[k] for x in parts) for k in ("tp", "fp", "fn", "windows", "candidate_spans", "seconds")}
    p["precision"] = p["tp"] / max(p["tp"] + p["fp"], 1)
    p["recall"] = p["tp"] / max(p["tp"] + p["fn"], 1)
    p["f1"] = 2 * p["tp"] / max(2 * p["tp"] + p["fp"] + p["fn"], 1)
    return p


def render(r: dict) -> str:
    def row(name: str, cells: int, a: dict, b: dict) -> str:
        return (
            f"| {name} | {cells:,} | {100 * a['precision']:.1f} / {100 * a['recall']:.1f} / {100 * a['f1']:.1f} | "
            f"{100 * b['precision']:.1f} / {100 * b['recall']:.1f} / {100 * b['f1']:.1f} | "
            f"{a['windows']:,} / {b['windows']:,} | {a['seconds']:.1f} / {b['seconds']:.1f} |"
        )

    p = r["pooled"]
    cells = sum(s["cells"] for s in r["sets"].values())
    lines = [
        BEGIN,
        "## Names in table cells",
        "",
        f"`{r['command']}` on {r['cpu']}: tables built from each dev set's distinct gold PER/ORG/LOC",
        f"names (first {r['args']['records']} texts; three cells to a row, {r['args']['rows']} rows to a table, laid",
        "out as the XLSX reader writes cells), read by the default model as one run of text and with the",
        "context broken before every cell (`Doc.breaks`, which the flow sets between segments). Strict",
        "P / R / F1 against the cells' gold labels; windows and seconds for the same tables.",
        "",
        "| dev set | cells | run on: P / R / F1 | apart: P / R / F1 | windows (run on / apart) | seconds |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, s in r["sets"].items():
        lines.append(row(name, s["cells"], s["run_on"], s["apart"]))
    lines.append(row("**pooled**", cells, p["run_on"], p["apart"]))
    lines += [
        "",
        f"Read apart, {100 * p['apart']['recall']:.1f}% of the names are found with their label against "
        f"{100 * p['run_on']['recall']:.1f}% in one run, and it takes "
        f"{p['apart']['seconds'] / max(p['run_on']['seconds'], 1e-9):.2f}x the time: a window per cell adds "
        f"its special tokens, but no candidate span crosses a cell ({p['apart']['candidate_spans']:,} candidate "
        f"spans against {p['run_on']['candidate_spans']:,}).",
    ]
    if "pdf" in p:
        lines += [
            "",
            "The same tables set as PDFs (every set but the two Chinese ones) and read by the PDF reader: as",
            "before, each row one text line and a page's lines run on; as now, each row cut at its gaps into",
            "`line_part` segments read apart. Cells whose name was not found in the text read are left out",
            "of both (`not_found` in the JSON).",
            "",
            "| dev set | cells | lines: P / R / F1 | parts: P / R / F1 | windows (lines / parts) | seconds |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for name, s in r["sets"].items():
            if "pdf" in s:
                lines.append(row(name, s["pdf"]["cells"], s["pdf"]["lines"], s["pdf"]["parts"]))
        lines.append(row("**pooled**", p["pdf"]["cells"], p["pdf"]["lines"], p["pdf"]["parts"]))
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
