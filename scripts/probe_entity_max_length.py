"""Would longer candidate spans find more entities, and at what cost? (issue 32; one-off probe)

A model scores only spans of up to ``entity_max_length`` words, so a longer gold entity cannot
be found. The default model's words in Chinese are the tokenizer's pieces (``cjk_words =
"pieces"``), and Chinese names of organisations and places run longer than 8 of them
("第18屆華北運動會籌備委員會", "四川省資陽市雁江區碑記鎮"). This scores the same checkpoint with
each length in ``--lengths`` (no training: the classifier reads a span through its start and end
markers, whatever its width), in exact mode and with its span filter at the stored point, on the
first ``--max-records`` texts of every dev set, PER/ORG/LOC strict as ``nerflow evaluate
--ignore-label MISC`` scores them, and records the candidate spans, the spans scored, the
encoder tokens and the seconds of each run.

Run:  python scripts/probe_entity_max_length.py --output benchmarks/results/entity_max_length_probe.json
      (about 25 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import NER_DATA, cpu_description, offline_environment  # noqa: E402

offline_environment()

from flows.evaluate import dropping  # noqa: E402
from ner_core import load_model  # noqa: E402
from ner_core.engine import EngineConfig, NerEngine  # noqa: E402
from ner_core.evaluation import predict_spans  # noqa: E402
from ner_core.labelled import LabelledText, read_labelled  # noqa: E402
from ner_core.metrics import score_spans  # noqa: E402

MODES = {"exact": "off", "pruned": "auto"}
"""The engine's ``span_filter`` setting of each mode."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 12])
    parser.add_argument("--max-records", type=int, default=300)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    data = {
        path.name.split(".", 1)[0]: list(read_labelled(str(path), limit=args.max_records))
        for path in sorted((NER_DATA / "dev").glob("*.jsonl.gz"))
    }
    ignored = dropping({}, ["MISC"])
    started = time.perf_counter()
    runs = []
    for length in args.lengths:
        at_length = dataclasses.replace(model, entity_max_length=length)
        entities = {}
        for mode, span_filter in MODES.items():
            run, entities[mode] = _run(at_length, span_filter, data, ignored)
            runs.append({"entity_max_length": length, "mode": mode, **run})
            print(
                f"length {length:2d} {mode:6s}: F1 {run['pooled']['f1']:.2f} "
                f"(P {run['pooled']['precision']:.2f} R {run['pooled']['recall']:.2f}), "
                f"{run['spans_scored']:,} of {run['spans']:,} spans scored, {run['seconds']:.1f} s"
            )
        kept = sum(len(e & p) for e, p in zip(entities["exact"], entities["pruned"], strict=True))
        total = sum(len(e) for e in entities["exact"])
        runs[-1]["exact_entities_kept"] = {"kept": kept, "of": total}
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.date.today().isoformat(),
        "model": args.model,
        "model_id": model.model_id,
        "shipped_entity_max_length": model.entity_max_length,
        "max_records": args.max_records,
        "cpu": cpu_description(),
        "seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def _run(model, span_filter: str, data: dict[str, list[LabelledText]], ignored: dict) -> tuple[dict, list[set]]:
    """One engine pass over every dev set: scores per set and pooled, the engine's counts, and
    each text's entities (all labels) to compare modes by."""
    engine = NerEngine(model, EngineConfig(span_filter=span_filter))
    per_set, gold_all, predicted_all = {}, [], []
    t0 = time.perf_counter()
    for name, records in data.items():
        predicted = predict_spans(engine, records)
        gold = [list(r.entities) for r in records]
        per_set[name] = _prf(score_spans(gold, predicted, label_map=ignored, gold_label_map=ignored).micro)
        gold_all += gold
        predicted_all += predicted
    seconds = time.perf_counter() - t0
    pooled = score_spans(gold_all, predicted_all, label_map=ignored, gold_label_map=ignored).micro
    stats = engine.stats
    run = {
        "pooled": _prf(pooled),
        "per_set": per_set,
        "spans": stats.spans,
        "spans_scored": stats.spans_scored,
        "encoder_tokens": stats.encoder_tokens,
        "words": stats.words,
        "seconds": round(seconds, 1),
    }
    return run, [set(p) for p in predicted_all]


def _prf(scores) -> dict:
    return {
        "precision": round(100 * scores.precision, 2),
        "recall": round(100 * scores.recall, 2),
        "f1": round(100 * scores.f1, 2),
        "tp": scores.tp,
        "fp": scores.fp,
        "fn": scores.fn,
    }


if __name__ == "__main__":
    main()
