"""Windowed documents against their sentences, on dev data: the long-document check of
``evaluate_default_model.py`` (whose documents come from the test splits) on data that settings
may be chosen on.

Each dev set's first ``--sentences`` texts are joined, ``--per-doc`` at a time and one per line
as the test documents of ``docs/`` are, into pseudo-documents. Both run through the engine in
exact mode (span filter off), the documents windowed with ``--window-tokens`` and
``--overlap-tokens`` (the model's defaults without them), the sentences one by one; strict
PER/ORG/LOC (MISC left out on both sides). Sentences joined in file order are not a real
document where a set's sentences were shuffled, but the windowing sees what it sees in
documents: several sentences per window, windows cut between them, overlaps merged. Each set's
difference comes with a 95% bootstrap interval over its documents, and the per-document counts
are kept for ``benchmarks/document_gap.py`` (two models on the same documents).

Run:  python benchmarks/dev_documents.py [--model default] [--sets uner_zh_gsd,uner_zh_gsdsimp]
          [--sentences 300] [--per-doc 60] [--window-tokens N --overlap-tokens N] --out JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import NER_DATA, cpu_description, offline_environment, sibling

document_gap = sibling("document_gap")

IGNORE = {"MISC": None}


def pseudo_documents(records: list, per_doc: int, name: str) -> list:
    """``records`` joined ``per_doc`` at a time, one per line (``ner_core.labelled.join_texts``),
    without word offsets, as the test documents are scored."""
    from dataclasses import replace

    from ner_core.labelled import join_texts

    return [
        replace(join_texts(records[i : i + per_doc]), id=f"dev-doc:{name}:{i}", tokens=None)
        for i in range(0, len(records), per_doc)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--sets", help="comma-separated dev sets (default: all of them)")
    parser.add_argument("--sentences", type=int, default=300, help="first N texts of each set")
    parser.add_argument("--per-doc", type=int, default=60, help="sentences per pseudo-document")
    parser.add_argument("--window-tokens", type=int)
    parser.add_argument("--overlap-tokens", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    offline_environment()
    from ner_core import EngineConfig, load_model
    from ner_core.evaluation import evaluate_records
    from ner_core.labelled import read_labelled
    from ner_core.metrics import PRF, pooled

    model = load_model(args.model, device="cpu")
    names = (
        args.sets.split(",")
        if args.sets
        else sorted(p.name.split(".", 1)[0] for p in (NER_DATA / "dev").glob("*.jsonl.gz"))
    )
    doc_config = EngineConfig(span_filter="off", window_tokens=args.window_tokens, overlap_tokens=args.overlap_tokens)
    sentence_config = EngineConfig(span_filter="off")
    result: dict = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "model_id": model.model_id,
        "cpu": cpu_description(),
        "scoring": "strict entity-level, PER/ORG/LOC (MISC ignored on both sides), exact mode",
        "sentences_per_set": args.sentences,
        "sentences_per_document": args.per_doc,
        "window_tokens": args.window_tokens or model.model_max_length,
        "overlap_tokens": args.overlap_tokens,
        "sets": {},
    }
    started = time.perf_counter()
    counts = {kind: PRF(0, 0, 0) for kind in ("documents", "sentences")}
    for name in names:
        sentences = list(read_labelled(str(NER_DATA / "dev" / f"{name}.jsonl.gz"), limit=args.sentences))
        docs = pseudo_documents(sentences, args.per_doc, name)
        row: dict = {"n_documents": len(docs), "n_sentences": len(sentences)}
        per_text = {}
        for kind, records, config in (("documents", docs, doc_config), ("sentences", sentences, sentence_config)):
            report = evaluate_records(
                model, records, name=name, label_map=IGNORE, gold_label_map=IGNORE, engine_config=config
            )
            row[kind] = report.scores.micro.as_dict()
            per_text[kind] = report.per_text
            counts[kind] = pooled([counts[kind], report.scores.micro])
        row["delta_f1"] = 100 * (row["documents"]["f1"] - row["sentences"]["f1"])
        ends = [min(i + args.per_doc, len(sentences)) for i in range(0, len(sentences), args.per_doc)]
        row["per_document"] = document_gap.per_document(
            [d.id for d in docs], per_text["documents"], per_text["sentences"], ends
        )
        row["delta_f1_interval"] = document_gap.gap_interval(row["per_document"])
        result["sets"][name] = row
        low, high = row["delta_f1_interval"]
        print(
            f"{name}: windowed F1 {100 * row['documents']['f1']:.2f} vs sentences {100 * row['sentences']['f1']:.2f}"
            f" ({row['delta_f1']:+.2f}, 95% interval {low:+.2f} to {high:+.2f};"
            f" {len(docs)} documents, {len(sentences)} sentences)",
            flush=True,
        )
    result["pooled"] = {kind: c.as_dict() for kind, c in counts.items()}
    result["pooled"]["delta_f1"] = 100 * (result["pooled"]["documents"]["f1"] - result["pooled"]["sentences"]["f1"])
    result["pooled"]["delta_f1_interval"] = document_gap.gap_interval(
        [d for row in result["sets"].values() for d in row["per_document"]]
    )
    print(f"pooled: {result['pooled']['delta_f1']:+.2f}")
    result["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
