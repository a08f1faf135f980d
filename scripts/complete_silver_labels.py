"""Complete silver training labels with a model's own confident entities (issue 32).

Silver sets (WikiNEuRal, WikiANN) were annotated automatically, and an entity their annotator
missed is labelled "O": training on it teaches a model to leave such entities out. This
writes a copy of each silver file in which every entity the model finds with at least
``--min-score`` is added, where it lines up with the record's tokens and overlaps no silver
entity. Silver entities are never removed or relabelled. The copies keep the records' order
and ids, so a training config that names them reads the same texts (``max_records`` and
``join`` unchanged).

Run:  python scripts/complete_silver_labels.py --model default --limit 2000 --min-score 0.75 \\
          --output runs/silver-completed ../shared/data/ner/train/wikineural-silver_*.jsonl.gz \\
          ../shared/data/ner/train/wikiann-silver_ru.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_core import EngineConfig, NerEngine, load_model
from ner_core.labelled import LabelledText, read_labelled


def added_spans(record: LabelledText, entities, min_score: float) -> list[tuple[int, int, str]]:
    """Token spans ``(first, end, label)`` of the model's entities that silver lacks."""
    starts = {s: i for i, (s, _) in enumerate(record.tokens)}
    ends = {e: i + 1 for i, (_, e) in enumerate(record.tokens)}
    taken = [(s, e) for s, e, _ in record.entities]
    out = []
    for ent in entities:
        if ent.score < min_score or ent.start not in starts or ent.end not in ends:
            continue
        if any(ent.start < e and s < ent.end for s, e in taken):
            continue
        out.append((starts[ent.start], ends[ent.end], ent.label))
        taken.append((ent.start, ent.end))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="silver JSONL files (tokens and ner_tags)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, required=True, help="first N records of each file (the rest is dropped)")
    parser.add_argument("--min-score", type=float, default=0.75)
    parser.add_argument("--output", required=True, help="directory for the completed copies (same file names)")
    args = parser.parse_args()

    model = load_model(args.model)
    engine = NerEngine(model, EngineConfig(precision="fast"))
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for path in args.files:
        t0 = time.perf_counter()
        with gzip.open(path, "rt", encoding="utf-8") as f:
            raw = [json.loads(line) for line in islice(f, args.limit)]
        records = list(read_labelled(path, limit=args.limit))
        results = engine.predict([r.text for r in records])
        added = 0
        for row, record, result in zip(raw, records, results):
            new = added_spans(record, result.entities, args.min_score)
            tags = list(row["ner_tags"])
            for first, end, label in new:
                tags[first:end] = [f"B-{label}"] + [f"I-{label}"] * (end - first - 1)
            row["ner_tags"] = tags
            row["spans"] = sorted([*map(list, row.get("spans", [])), *([a, b, c] for a, b, c in new)])
            added += len(new)
        with gzip.open(out_dir / Path(path).name, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in raw)
        silver = sum(len(r.entities) for r in records)
        summary[Path(path).name] = {"records": len(records), "silver_entities": silver, "added": added}
        print(
            f"{Path(path).name}: {len(records)} records, {silver} silver entities, {added} added "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    (out_dir / "summary.json").write_text(
        json.dumps({"model": args.model, "min_score": args.min_score, **summary}, indent=2)
    )


if __name__ == "__main__":
    main()
