"""Fast precision against exact, with a trained model, on the dev sets.

Issue 2 asks of fast mode (bf16 on CPUs with AMX/AVX-512-BF16 or on GPUs, int8 elsewhere)
that at least 99% of its entities are identical to exact mode's and that strict F1 on the
dev sets stays within 0.5 points. This runs the same sentences of every dev set in
``../shared/data/ner/dev`` through the engine twice, exact and fast, one after the other
in one process, and reports per set and over all sets: strict F1 (PER/ORG/LOC, as the
model card's targets) of each, the exact entities fast mode reproduces (span and label),
the entities either mode alone finds, and the words per second of each.

Run:  python benchmarks/fast_precision.py [--model default] [--sentences 300]
Writes benchmarks/results/fast_precision.json and its section of docs/performance.md
(``--report-only`` re-renders that section from the JSON).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import NER_DATA as DATA
from _common import ROOT, cpu_description, labelled_sets, offline_environment

offline_environment()

RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- fast_precision:begin -->", "<!-- fast_precision:end -->"
IGNORE = {"MISC": None}
# One simplified-Chinese set: uner_zh_gsd holds the same sentences in traditional script.
SKIP = {"uner_zh_gsd"}


def run(engine, records, set_name: str) -> tuple[list[list[tuple[int, int, str]]], dict[tuple, float], float]:
    """Entities per record, the score of each ``(set, record, start, end, label)``, and seconds."""
    from ner_core import Doc

    t0 = time.perf_counter()
    spans, scores = [], {}
    for i, res in enumerate(engine.predict(Doc(doc_id=str(i), text=r.text) for i, r in enumerate(records))):
        spans.append([(e.start, e.end, e.label) for e in res.entities])
        scores.update({(set_name, i, e.start, e.end, e.label): e.score for e in res.entities})
    return spans, scores, time.perf_counter() - t0


def compare(records, exact, fast) -> dict:
    from ner_core.metrics import score_spans

    gold = [list(r.entities) for r in records]
    (e_spans, e_scores, e_secs), (f_spans, f_scores, f_secs) = exact, fast
    same = e_scores.keys() & f_scores.keys()
    f1 = {
        name: score_spans(gold, spans, label_map=IGNORE, gold_label_map=IGNORE).micro.f1
        for name, spans in (("exact", e_spans), ("fast", f_spans))
    }
    return {
        "sentences": len(records),
        "exact_entities": len(e_scores),
        "fast_entities": len(f_scores),
        "identical_entities": len(same),
        "only_exact": len(e_scores) - len(same),
        "only_fast": len(f_scores) - len(same),
        "identical_fraction": len(same) / len(e_scores) if e_scores else 1.0,
        "max_score_difference": max((abs(e_scores[k] - f_scores[k]) for k in same), default=0.0),
        "f1_exact": f1["exact"],
        "f1_fast": f1["fast"],
        "exact_seconds": e_secs,
        "fast_seconds": f_secs,
    }


def measure(model_ref: str, sentences: int) -> dict:
    import torch

    from ner_core import EngineConfig, NerEngine, load_model
    from ner_core.inference import cpu_fast_kind

    model = load_model(model_ref)
    # Every span scored: this compares precisions, not the span filter (benchmarks/span_filter.py).
    engines = {p: NerEngine(model, EngineConfig(precision=p, span_filter="off")) for p in ("exact", "fast")}
    loaded = {name: records for name, records in labelled_sets("dev", sentences).items() if name not in SKIP}
    warm = [r for records in loaded.values() for r in records[:4]]
    for engine in engines.values():
        list(engine.predict(r.text for r in warm))

    out = {
        "command": f"python benchmarks/fast_precision.py --model {model_ref} --sentences {sentences}",
        "machine": {
            "cpu": cpu_description(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "fast_precision_kind": cpu_fast_kind(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "model": model_ref,
        "sets": {},
    }
    runs = {}
    for name, records in loaded.items():
        runs[name] = exact, fast = run(engines["exact"], records, name), run(engines["fast"], records, name)
        out["sets"][name] = compare(records, exact, fast)
        print(name, json.dumps(out["sets"][name]), flush=True)
    out["all"] = compare(
        [r for records in loaded.values() for r in records],
        *(_pooled([pair[mode] for pair in runs.values()]) for mode in (0, 1)),
    )
    return out


def _pooled(parts):
    """One ``run`` result from those of several sets (their score keys name the set)."""
    return (
        [s for spans, _, _ in parts for s in spans],
        {k: v for _, scores, _ in parts for k, v in scores.items()},
        sum(secs for _, _, secs in parts),
    )


def render_markdown(r: dict) -> str:
    a = r["all"]
    lines = [
        BEGIN,
        "## Fast precision against exact, with the trained default model",
        "",
        f"Command: `{r['command']}` (results: `benchmarks/results/fast_precision.json`). "
        f"Machine: {r['machine'].get('cpu', 'not recorded')}, CPU capability {r['machine']['cpu_capability']}: fast precision here is **{r['machine']['fast_precision_kind']}**. "
        "The first sentences of every dev set, each run exact and then fast in one process. "
        "F1 is strict, on PER/ORG/LOC.",
        "",
        "| dev set | sentences | exact entities | identical in fast | only exact | only fast | F1 exact | F1 fast | F1 fast − exact | fast / exact speed |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for name, s in list(r["sets"].items()) + [("**all**", a)]:
        lines.append(
            f"| {name} | {s['sentences']} | {s['exact_entities']} | {s['identical_fraction']:.2%} | {s['only_exact']} | "
            f"{s['only_fast']} | {100 * s['f1_exact']:.2f} | {100 * s['f1_fast']:.2f} | "
            f"{100 * (s['f1_fast'] - s['f1_exact']):+.2f} | {s['exact_seconds'] / s['fast_seconds']:.2f}x |"
        )
    lines += [
        "",
        f"Over all sets fast mode reproduced {a['identical_fraction']:.2%} of exact mode's entities (target ≥ 99%) and "
        f"moved strict F1 by {100 * (a['f1_fast'] - a['f1_exact']):+.2f} points (target within ±0.5); scores of the "
        f"entities both found differ by at most {a['max_score_difference']:.3f}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--sentences", type=int, default=300, help="first sentences of each dev set")
    parser.add_argument("--out", type=Path, default=RESULTS / "fast_precision.json")
    parser.add_argument("--report-only", action="store_true", help="re-render docs/performance.md from --out")
    args = parser.parse_args()
    if args.report_only:
        result = json.loads(args.out.read_text())
    else:
        if not (DATA / "dev").is_dir():
            raise SystemExit(f"no dev data at {DATA / 'dev'}")
        result = measure(args.model, args.sentences)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    from _report import replace_section

    replace_section(REPORT, BEGIN, END, render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
