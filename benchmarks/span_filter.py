"""The span filter (``ner_core.span_filter``): recall, accuracy and speed of pruned scoring.

With the shipped default model (its filter at the stored operating point), in one process:

1. **Filter recall** on every dev set of ``../shared/data/ner/dev`` (``--dev-sentences`` of
   each, after the first ``--skip-dev``, on which the operating point was chosen): the share of gold entities and of exact mode's own entities
   whose span the filter keeps, at the operating point and along a curve of thresholds, with
   the candidate spans kept per word.
2. **Accuracy**: strict F1 (PER/ORG/LOC, and with MISC) per dev set and on long documents
   (``docs/``, the first ``--docs`` of each language) for exact, pruned and pruned+fast.
3. **Speed** on real text, side by side: SpanMarker's ``predict`` against the engine exact,
   fast, pruned and pruned+fast, in words/s, on sentences in ten languages (the dev sets, and
   Italian and French from other splits) and on whole long documents.
4. **End to end**: the extract-entities flow's documents/s, exact against pruned, on the
   same documents.

Run:  python benchmarks/span_filter.py [--dev-sentences 150] [--speed-sentences 30] [--docs 2]
      [--flow-docs 300] [--skip-flow] [--only recall|accuracy|speed|flow|reference ...]
Writes benchmarks/results/span_filter.json and the "Span filter" section of
docs/performance.md (``--report-only`` re-renders the section from the JSON; ``--only``
measures the phases named into the existing JSON, each marked with its own command and CPU).
``--recall-only --model M --out FILE [--thresholds T ...]`` measures step 1 alone for a
candidate filter, into FILE, with more thresholds on its curve. Every run of step 3 into the
shipped results file also keeps it as the latest speed of its kind of CPU (AMX, AVX-512-BF16 or neither:
benchmarks/results/span_filter_speed/) and re-renders the section that sets those side by side;
``--cpu-speed`` runs step 3 alone for that, leaving span_filter.json as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ner_core.filter_training import EncodedWindows
    from ner_core.loading import NerModel
    from ner_core.training import TrainingWindow

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from _common import NER_DATA, ROOT, labelled_sets, offline_environment
from _report import replace_section

offline_environment()
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- span-filter:begin -->", "<!-- span-filter:end -->"
# The speed phase's latest run on each kind of CPU (cpu_kind), one file per kind.
CPU_SPEEDS = RESULTS / "span_filter_speed"
CPU_BEGIN, CPU_END = "<!-- span-filter-cpus:begin -->", "<!-- span-filter-cpus:end -->"
# The kinds of CPU whose speeds differ most: what each multiplies bfloat16 with, if anything.
CPU_KINDS = {
    "amx_bf16": "AMX tiles (bf16)",
    "avx512_bf16": "AVX-512-BF16, no AMX",
    "no_bf16": "neither AMX nor AVX-512-BF16",
}
# Engine settings of each compared mode.
MODES = {
    "exact": {"span_filter": "off", "precision": "exact"},
    "fast": {"span_filter": "off", "precision": "fast"},
    "pruned": {"span_filter": "stored", "precision": "exact"},
    "pruned+fast": {"span_filter": "stored", "precision": "fast"},
}
# SpanMarker's predict reads text as it is: compare it with the engine reading it so.
AS_PREDICT = {"space_punctuation": False, "trim_unpaired_quotes": False}
PER_ORG_LOC = {"MISC": None}


def cpu_facts() -> dict:
    """The CPU (benchmarks/_common.py) and the kind of fast mode it runs."""
    from ner_core.inference import cpu_fast_kind

    return {**_common.cpu_facts(), "fast_kind": cpu_fast_kind()}


def cpu_kind(cpu: dict) -> str:
    """Which of :data:`CPU_KINDS` a CPU (:func:`cpu_facts`) is: the engine's fast mode is bf16
    on the first two and int8 on the third (``ner_core.inference.cpu_fast_kind``), and the two
    bf16 kinds multiply at very different speeds."""
    if cpu.get("amx_bf16"):
        return "amx_bf16"
    return "avx512_bf16" if cpu.get("avx512_bf16") else "no_bf16"


def speed_sentences(limit: int) -> list[str]:
    """Sentences in ten languages: the dev sets' eight, and Italian and French, which have no
    dev set (speed only: their labels are not used)."""
    from ner_core.labelled import read_labelled

    others = [NER_DATA / "test" / "kind_it_wikinews.jsonl.gz", NER_DATA / "train" / "wikineural-silver_fr.jsonl.gz"]
    sets = [*labelled_sets("dev", limit).values(), *(list(read_labelled(str(p), limit=limit)) for p in others)]
    return [r.text for records in sets for r in records]


def filter_recall(model, dev_sets: dict[str, list], extra_thresholds: tuple[float, ...] = ()) -> dict:
    """Recall of gold and of exact mode's entities at the stored point and along the curve
    (the curve's thresholds and ``extra_thresholds``), gold recall per label at the point,
    and the gold entities the filter drops there."""
    from ner_core.filter_training import CURVE_THRESHOLDS, encode_windows, model_windows, probabilities, recall_curve

    data = None
    windows = []
    for name, records in dev_sets.items():
        set_windows = model_windows(model, records)
        data = encode_windows(model, set_windows, source=name, into=data, model_entities=True)
        windows += set_windows
    probs = probabilities(model.span_filter.head, data)
    point = model.span_filter.operating_point
    curve = recall_curve(probs, data, sorted({*CURVE_THRESHOLDS, *extra_thresholds, point.threshold}, reverse=True))
    at_point = next(r for r in curve if r["threshold"] == point.threshold)
    return {
        "threshold": point.threshold,
        "at_point": at_point,
        "curve": [{k: v for k, v in r.items() if not k.endswith("by_source")} for r in curve],
        "gold_entities": int(sum(p.sum() for p in data.positive)),
        "model_entities": int(sum(p.sum() for p in data.predicted)),
        "words": int(sum(data.words)),
        **gold_by_label_and_dropped(model, windows, data, probs, point.threshold),
    }


def gold_by_label_and_dropped(
    model: NerModel, windows: list[TrainingWindow], data: EncodedWindows, probs: list[np.ndarray], threshold: float
) -> dict:
    """Gold recall per label at ``threshold``, and each gold entity the filter drops there:
    its set, label, probability and text (the window's tokens, as the tokenizer decodes them)."""
    found = dict.fromkeys(model.labels, 0)
    total = dict.fromkeys(model.labels, 0)
    dropped = []
    for w, p, positive, source in zip(windows, probs, data.positive, data.source, strict=True):
        for i in np.flatnonzero(positive):
            label = model.labels[int(w.labels[i])]
            total[label] += 1
            if p[i] >= threshold:
                found[label] += 1
                continue
            ids = w.input.input_ids[int(w.input.start_pos[i]) : int(w.input.end_pos[i]) + 1]
            text = model.tokenizer.decode(ids).strip()
            dropped.append({"set": source, "label": label, "probability": float(p[i]), "text": text})
    return {
        "gold_recall_by_label": {label: found[label] / total[label] for label in model.labels if total[label]},
        "gold_dropped": dropped,
    }


def in_quotation_marks(text: str) -> bool:
    """Whether a span begins and ends with a quotation mark (apostrophes are not ones)."""
    from ner_core.decoding import QUOTATION_MARKS

    return len(text) > 1 and text[0] in QUOTATION_MARKS and text[-1] in QUOTATION_MARKS


def accuracy(model, sets: dict[str, list], modes: list[str]) -> dict:
    """Strict F1 per set and mode, PER/ORG/LOC and with MISC, and the micro over sets."""
    from ner_core import EngineConfig, NerEngine
    from ner_core.evaluation import predict_spans
    from ner_core.metrics import score_spans

    out: dict = {}
    for mode in modes:
        rows, gold_all, pred_all = {}, [], []
        for name, records in sets.items():
            engine = NerEngine(model, EngineConfig(**MODES[mode]))
            predicted = predict_spans(engine, records)
            gold = [list(r.entities) for r in records]
            gold_all += gold
            pred_all += predicted
            rows[name] = {
                "per_org_loc": score_spans(
                    gold, predicted, label_map=PER_ORG_LOC, gold_label_map=PER_ORG_LOC
                ).as_dict()["micro"],
                "with_misc": score_spans(gold, predicted).as_dict()["micro"],
                "share_scored": engine.stats.spans_scored / max(1, engine.stats.spans),
            }
        rows["micro"] = {
            "per_org_loc": score_spans(gold_all, pred_all, label_map=PER_ORG_LOC, gold_label_map=PER_ORG_LOC).as_dict()[
                "micro"
            ],
            "with_misc": score_spans(gold_all, pred_all).as_dict()["micro"],
        }
        out[mode] = rows
        print(f"accuracy {mode}: micro F1 {100 * rows['micro']['per_org_loc']['f1']:.2f}", flush=True)
    return out


def timed_runs(engine, texts: list[str], repeats: int, *, warm_up: int = 4) -> list[float]:
    """Seconds of ``repeats`` runs of ``engine`` over ``texts``, after a warm-up on the first
    ``warm_up`` of them; the engine's stats then count its last run alone."""
    list(engine.predict(texts[:warm_up]))
    runs = []
    for _ in range(repeats):
        engine.stats.__init__()
        t0 = time.perf_counter()
        list(engine.predict(texts))
        runs.append(time.perf_counter() - t0)
    return runs


def speed(model, texts: list[str], *, label: str, repeats: int = 3) -> dict:
    """Words/s of predict and of each engine mode on the same texts (after a warm-up each).

    Each engine mode runs ``repeats`` times and reports the median: the pruned runs last a
    few seconds, and the first pass over a batch shape it has not seen (oneDNN builds a
    kernel per shape) weighs on one short run far more than on a long-running flow."""
    import statistics

    from ner_core import EngineConfig, NerEngine

    out: dict = {"texts": len(texts), "repeats": repeats}
    words = None
    for mode, settings in MODES.items():
        engine = NerEngine(model, EngineConfig(**settings, **AS_PREDICT))
        runs = timed_runs(engine, texts, repeats)
        seconds = statistics.median(runs)
        words = engine.stats.words
        out[mode] = {
            "seconds": round(seconds, 2),
            "seconds_each_run": [round(x, 2) for x in runs],
            "words_per_s": round(words / seconds, 1),
            "encoder_tokens": engine.stats.encoder_tokens,
            "share_scored": round(engine.stats.spans_scored / max(1, engine.stats.spans), 4),
        }
        print(f"speed {label} {mode}: {words / seconds:.0f} words/s (median of {repeats})", flush=True)
    out["words"] = words
    predict = predict_runs(model, texts, words, (4, 16), label=label)
    for batch_size, row in predict.items():
        out[f"predict_batch_{batch_size}"] = row
    out["predict_best_words_per_s"] = max(row["words_per_s"] for row in predict.values())
    return out


def predict_runs(model, texts: list[str], words: int, batch_sizes, *, label: str) -> dict[int, dict]:
    """Seconds and words/s of SpanMarker's own ``predict`` at each batch size: one timed run
    after a warm-up on the first four texts."""
    out = {}
    for batch_size in batch_sizes:
        model.span_marker.predict(texts[:4], batch_size=batch_size)
        t0 = time.perf_counter()
        model.span_marker.predict(texts, batch_size=batch_size)
        seconds = time.perf_counter() - t0
        out[batch_size] = {"seconds": round(seconds, 2), "words_per_s": round(words / seconds, 1)}
        print(f"speed {label} predict batch {batch_size}: {words / seconds:.0f} words/s", flush=True)
    return out


def reference_model_with_filter(work: Path, filter_sentences: int, *, device: str = "cpu") -> tuple[NerModel, dict]:
    """A random checkpoint shaped like ``tomaarsen/span-marker-mbert-base-multinerd``
    (``tests.fixtures_models.build_reference_shaped_model``) in ``work``, given a filter
    trained on the first ``filter_sentences`` of each dev set's PER/ORG/LOC, its operating
    point on their gold entities (a random model's own entities say nothing; only its speed
    counts). Returns the model loaded with its filter on ``device``, and the filter's facts."""
    from ner_core import clear_model_cache, load_model
    from ner_core.filter_training import encode_sources, train_span_filter
    from ner_core.span_filter import save_span_filter
    from tests.fixtures_models import build_reference_shaped_model

    model_dir = build_reference_shaped_model(work / "reference")
    model = load_model(model_dir, device=device)
    t0 = time.perf_counter()
    data = encode_sources(model, labelled_sets("dev", filter_sentences), label_map=PER_ORG_LOC)
    span_filter = train_span_filter(model, data, data)
    save_span_filter(model_dir, span_filter)
    facts = {
        **vars(span_filter.operating_point),
        "seconds": round(time.perf_counter() - t0, 1),
        "trained_on": f"first {filter_sentences} sentences of each dev set, gold PER/ORG/LOC",
    }
    clear_model_cache()
    return load_model(model_dir, device=device), facts  # again, now with its filter


def with_budget_mode(spans_per_word: float) -> tuple[str, dict]:
    """:data:`MODES` and a pruned mode at ``spans_per_word`` (its name, and all the modes)."""
    budget = f"budget={spans_per_word:g}"
    return budget, {**MODES, budget: {"span_filter": budget, "precision": "exact"}}


def reference_shaped(args, sentences: list[str], long_docs: list[str], work: Path) -> dict:
    """What a checkpoint shaped like the reference model costs through nerflow
    (:func:`reference_model_with_filter`): exact, fast and pruned, one run each."""
    from ner_core import EngineConfig, NerEngine

    model, filter_facts = reference_model_with_filter(work, args.reference_filter_sentences)
    out: dict = {
        "shape": "BertModel, hidden 768, 12 layers, 12 heads, intermediate 3072, e5 tokenizer (250k pieces), "
        "15 MultiNERD labels, model_max_length 256, entity_max_length 8, marker_max_length 128",
        "filter": filter_facts,
    }
    budget, modes = with_budget_mode(args.reference_budget)
    for label, texts in (("sentences", sentences), ("long_documents", long_docs)):
        row: dict = {"texts": len(texts)}
        for mode, settings in modes.items():
            engine = NerEngine(model, EngineConfig(**settings, **AS_PREDICT))
            (seconds,) = timed_runs(engine, texts, 1, warm_up=2)
            row["words"] = engine.stats.words
            row[mode] = {
                "words_per_s": round(engine.stats.words / seconds, 1),
                "seconds": round(seconds, 2),
                "share_scored": round(engine.stats.spans_scored / max(1, engine.stats.spans), 4),
            }
            print(f"reference {label} {mode}: {engine.stats.words / seconds:.0f} words/s", flush=True)
        out[label] = row
    out["budget_mode"] = budget
    return out


def end_to_end(docs: list[dict], work: Path, model_ref: str) -> dict:
    """The extract-entities flow on the same documents, every span against the filter."""
    from flows.extract_entities import ExtractParams, extract_entities

    input_dir = work / "input"
    input_dir.mkdir()
    with open(input_dir / "docs.jsonl", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    out = {"docs": len(docs)}
    # A first flow starts Prefect's temporary server and loads the model: not part of either timing.
    warm = work / "warm-up"
    warm.mkdir()
    (warm / "docs.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[:2]), encoding="utf-8"
    )
    extract_entities(
        ExtractParams(input_uri=str(warm), output_uri=str(work / "out-warm-up"), device="cpu", model=model_ref)
    )
    for mode in ("exact", "pruned"):
        params = ExtractParams(
            input_uri=str(input_dir),
            output_uri=str(work / f"out-{mode}"),
            device="cpu",
            model=model_ref,
            span_filter=MODES[mode]["span_filter"],
        )
        t0 = time.perf_counter()
        summary = extract_entities(params)
        seconds = time.perf_counter() - t0
        out[mode] = {
            "seconds": round(seconds, 1),
            "docs_per_s": round(len(docs) / seconds, 3),
            "entities": summary.entities,
            "share_scored": round(summary.share_scored, 4),
            "span_filter": summary.span_filter,
        }
        print(f"flow {mode}: {len(docs) / seconds:.2f} documents/s", flush=True)
    return out


def measure_reference(args) -> dict:
    """The reference-shaped phase on the speed sentences and the first long documents."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sentences = speed_sentences(args.speed_sentences)
    long_docs = [r.text for records in labelled_sets("docs", args.docs).values() for r in records]
    with tempfile.TemporaryDirectory() as work:
        result = reference_shaped(
            args, sentences[: args.reference_sentences], long_docs[: args.reference_docs], Path(work)
        )
    result["cpu"] = cpu_facts()
    result["command"] = " ".join(["python", "benchmarks/span_filter.py", *sys.argv[1:]])
    return result


def _about(args, model) -> dict:
    """What every result records: the command, the CPU, the model and the dev sample."""
    return {
        "command": " ".join(["python", "benchmarks/span_filter.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_facts(),
        "model": args.model,
        "model_id": model.model_id,
        "operating_point": vars(model.span_filter.operating_point),
        "dev_sentences_per_set": args.dev_sentences,
        "dev_skipped_per_set": args.skip_dev,
    }


PHASES = ("recall", "accuracy", "speed", "flow", "reference")
# Each phase's key in the result, where it differs from the phase's name.
PHASE_KEYS = {"flow": "end_to_end", "reference": "reference_shaped"}
# What a phase measured again must share with the result it joins.
SHARED_SETTINGS = ("model", "model_id", "operating_point", "dev_sentences_per_set", "dev_skipped_per_set")


def measure(args, phases: tuple[str, ...] = PHASES) -> dict:
    """The phases asked for, each under its key of the result (``PHASE_KEYS``)."""
    import torch

    from ner_core import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    model = load_model(args.model, device="cpu")
    if model.span_filter is None:
        raise SystemExit(f"benchmarks/span_filter.py: model {args.model!r} has no span filter")
    result = _about(args, model)
    t0 = time.perf_counter()
    every_dev_set = labelled_sets("dev", args.dev_sentences, skip=args.skip_dev)
    # A set with no sentences after the skip (BSNLP and the Chinese sets hold 500 to 557) has
    # nothing held out to measure: its recall is the operating point's own choice.
    result["dev_sets_left_out"] = sorted(name for name, records in every_dev_set.items() if not records)
    dev_sets = {name: records for name, records in every_dev_set.items() if records}
    needs_docs = {"accuracy", "speed"} & set(phases)
    long_docs = [r for records in labelled_sets("docs", args.docs).values() for r in records] if needs_docs else []
    if "recall" in phases:
        result["recall"] = filter_recall(model, dev_sets, tuple(args.thresholds))
        print(f"recall done in {time.perf_counter() - t0:.0f} s", flush=True)
    if "accuracy" in phases:
        sets = {**dev_sets, "long_documents": long_docs}
        result["accuracy"] = accuracy(
            model, sets, list(MODES) if args.with_fast_unpruned else ["exact", "pruned", "pruned+fast"]
        )
    if "speed" in phases:
        sentences = speed_sentences(args.speed_sentences)
        result["speed"] = {
            "sentences": speed(model, sentences, label="sentences", repeats=args.repeats),
            "long_documents": speed(model, [r.text for r in long_docs], label="documents", repeats=args.repeats),
        }
    if "flow" in phases:
        # The flow's documents come from the start of every dev set, held out or not.
        dev = labelled_sets("dev", args.flow_docs // len(every_dev_set) + 1).values()
        docs = [{"id": f"d{i}", "text": r.text} for i, r in enumerate(r for records in dev for r in records)]
        docs = docs[: args.flow_docs]
        with tempfile.TemporaryDirectory() as work:
            result["end_to_end"] = end_to_end(docs, Path(work), args.model)
    if "reference" in phases:
        result["reference_shaped"] = measure_reference(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def remeasure(args, path: Path) -> dict:
    """The existing result with ``args.only``'s phases measured again, each marked with the
    command, date and CPU of this run (the rest keep those of the run that wrote the file)."""
    result = json.loads(path.read_text())
    fresh = measure(args, tuple(args.only))
    differing = [key for key in SHARED_SETTINGS if fresh.get(key) != result.get(key)]
    if differing:
        raise SystemExit(
            f"benchmarks/span_filter.py --only: {', '.join(differing)} differ from {path}'s; "
            "run every phase, or give the settings of that run"
        )
    about = {key: fresh[key] for key in ("command", "date", "cpu", "model_id", "seconds")}
    for phase in args.only:
        key = PHASE_KEYS.get(phase, phase)
        result[key] = fresh[key]
        result.setdefault("remeasured", {})[key] = about
    return result


def speed_record(result: dict) -> dict:
    """The speed phase of a result with what it was measured with: its own command, date and
    CPU where ``--only`` measured it again, the result's otherwise."""
    about = result.get("remeasured", {}).get("speed", result)
    return {
        **{key: about[key] for key in ("command", "date", "cpu", "model_id")},
        "operating_point": result["operating_point"],
        "speed": result["speed"],
    }


def record_cpu_speed(record: dict, folder: Path | None = None) -> Path:
    """Keep ``record`` (:func:`speed_record`) as the latest speed of its kind of CPU."""
    folder = folder or CPU_SPEEDS
    path = folder / f"{cpu_kind(record['cpu'])}.json"
    _write(record, path)
    return path


def cpu_speeds(folder: Path | None = None) -> list[dict]:
    """The recorded speed of each kind of CPU, in the order of :data:`CPU_KINDS`."""
    folder = folder or CPU_SPEEDS
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda r: list(CPU_KINDS).index(cpu_kind(r["cpu"])))


def render_cpu_speeds(records: list[dict]) -> str:
    """The speed phase side by side on every kind of CPU it has run on."""
    lines = [
        CPU_BEGIN,
        "### Span filter: speed on each kind of CPU",
        "",
        "The speed phase above (the same texts, words/s, text read as `predict` reads it), as last measured on "
        "each kind of CPU, kept in `benchmarks/results/span_filter_speed/KIND.json`: every run of the phase "
        "writes its kind's file, and `--cpu-speed` runs the phase alone for that. The kind decides what fast "
        "mode is: bf16 with AMX or AVX-512-BF16, int8 without either. Compare speeds only within one CPU's rows: "
        "the machines differ in more than their instructions, and a row's model is the default one of its date. "
        "On long documents `predict` reads each one's first window only (above), so its ratio there is no "
        "comparison.",
        "",
        "| CPU | date | model (filter threshold) | workload | predict (best batch) | exact | fast | pruned | "
        "pruned+fast | pruned / exact | pruned+fast / predict |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        cpu = r["cpu"]
        about = (
            f"{cpu['model_name']}, {cpu['cores']} cores: {CPU_KINDS[cpu_kind(cpu)]}; fast mode {cpu['fast_kind']} | "
            f"{r['date']} | `{r['model_id']}` ({r['operating_point']['threshold']:.3g})"
        )
        for name, s in r["speed"].items():
            lines.append(f"| {about} | {name.replace('_', ' ')} | {_speed_cells(s)} |")
    lines += ["", "Each row's command:", ""]
    lines += [f"- {r['cpu']['model_name']} ({CPU_KINDS[cpu_kind(r['cpu'])]}): `{r['command']}`" for r in records]
    lines += ["", CPU_END]
    return "\n".join(lines) + "\n"


def _speed_cells(s: dict) -> str:
    """One workload of the speed phase as table cells: predict's best words/s, each engine
    mode's, pruned against exact and pruned+fast against predict."""
    modes = ("exact", "fast", "pruned", "pruned+fast")  # the tables' columns, in their order
    words_per_s = [s["predict_best_words_per_s"], *(s[mode]["words_per_s"] for mode in modes)]
    pruned_vs_exact = s["pruned"]["words_per_s"] / s["exact"]["words_per_s"]
    pruned_fast_vs_predict = s["pruned+fast"]["words_per_s"] / s["predict_best_words_per_s"]
    return " | ".join([*(f"{w:.0f}" for w in words_per_s), f"{pruned_vs_exact:.2f}×", f"{pruned_fast_vs_predict:.2f}×"])


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _dropped_gold_lines(rec: dict) -> list[str]:
    """What the gold entities the filter drops are: per label, per set, and in quotation marks."""
    by_label = rec["gold_recall_by_label"]
    dropped = rec["gold_dropped"]
    labels = list(by_label)
    quoted = [d for d in dropped if in_quotation_marks(d["text"])]
    lines = [
        "Gold entities kept, by label: "
        + ", ".join(f"{label} {_pct(share)}%" for label, share in by_label.items())
        + f". The {len(dropped)} gold entities dropped, by set and label "
        "(the texts and probabilities are in the JSON, `recall.gold_dropped`):",
        "",
        "| dev set | " + " | ".join(labels) + " | of them in quotation marks |",
        "|---|" + "---:|" * (len(labels) + 1),
    ]
    for name in sorted({d["set"] for d in dropped}):
        counts = [sum(d["set"] == name and d["label"] == label for d in dropped) for label in labels]
        lines.append(f"| {name} | " + " | ".join(map(str, counts)) + f" | {sum(d['set'] == name for d in quoted)} |")
    lines.append("")
    if quoted:
        lines += [
            f"{len(quoted)} of them are a name together with the quotation marks around it, as CoNLL-2002 Spanish "
            'annotates titles and some organisations (`" Daily News "`); the model, like the other gold sets and '
            "its quote-trimmed silver data, ends such a name inside the quotes, so the span with them is never its "
            "output.",
            "",
        ]
    return lines


def render(r: dict) -> str:
    cpu = r["cpu"]
    point = r["operating_point"]
    rec = r["recall"]
    lines = [
        BEGIN,
        "## Span filter: scoring only the spans that can be entities",
        "",
        f"Measured {r['date']} on **{cpu['model_name']}** ({cpu['cores']} cores; amx_bf16 {cpu['amx_bf16']}, "
        f"avx512_bf16 {cpu['avx512_bf16']}; fast mode runs **{cpu['fast_kind']}** here), model `{r['model']}` "
        f"(`{r['model_id']}`), its filter at the stored threshold {point['threshold']:.3g}. "
        f"Reproduce: `{r['command']}` (results in `benchmarks/results/span_filter.json`).",
        "",
        f"**Filter recall** on {r['dev_sentences_per_set']} sentences of each dev set after its first "
        f"{r['dev_skipped_per_set']} (on which the operating point was chosen) "
        f"({rec['words']:,} words, {rec['gold_entities']:,} gold entities, {rec['model_entities']:,} entities of exact "
        "mode): the share whose span the filter keeps.",
        "",
    ]
    if r.get("dev_sets_left_out"):
        lines += [
            f"Left out, with no sentence after the first {r['dev_skipped_per_set']}: "
            + ", ".join(r["dev_sets_left_out"])
            + " (all of their sentences are among those the operating point was chosen on).",
            "",
        ]
    lines += [
        "| dev set | gold entities kept % | exact mode's entities kept % |",
        "|---|---:|---:|",
    ]
    at = rec["at_point"]
    for name in sorted(at["gold_recall_by_source"]):
        lines.append(
            f"| {name} | {_pct(at['gold_recall_by_source'][name])} | {_pct(at['model_recall_by_source'][name])} |"
        )
    lines += [f"| **all** | {_pct(at['gold_recall'])} | {_pct(at['model_recall'])} |", ""]
    if at["model_recall"] == 1.0:
        lines += [
            "Every entity of exact mode's output keeps its span, so each gold entity the filter drops is one that "
            "exact mode does not find either: pruning costs no recall against the gold labels.",
            "",
        ]
    if "gold_dropped" in rec:
        lines += _dropped_gold_lines(rec)
    lines += [
        f"At that point the filter keeps {at['spans_per_word']:.2f} candidate spans per word, "
        f"{_pct(at['share_scored'])}% of them. The curve (all dev sets together; lowest set in brackets):",
        "",
        "| threshold | spans kept per word | share scored % | gold recall % | exact mode's entities kept % |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rec["curve"]:
        lines.append(
            f"| {row['threshold']:.3g} | {row['spans_per_word']:.2f} | {_pct(row['share_scored'])} | "
            f"{_pct(row['gold_recall'])} ({_pct(row['gold_min_recall'])}) | {_pct(row['model_recall'])} ({_pct(row['model_min_recall'])}) |"
        )
    acc = r["accuracy"]
    modes = list(acc)
    lines += [
        "",
        "**Strict F1** (PER/ORG/LOC; with MISC in brackets), the same sentences, and the first documents of each "
        "language of `docs/` (built from test sentences: used here only to compare modes, never to choose):",
        "",
        "| data | " + " | ".join(modes) + " | pruned − exact |",
        "|---|" + "---:|" * (len(modes) + 1),
    ]
    for name in acc["exact"]:
        cells = [
            f"{100 * acc[m][name]['per_org_loc']['f1']:.2f} ({100 * acc[m][name]['with_misc']['f1']:.2f})"
            for m in modes
        ]
        diff = 100 * (acc["pruned"][name]["per_org_loc"]["f1"] - acc["exact"][name]["per_org_loc"]["f1"])
        bold = "**" if name == "micro" else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + f" | {diff:+.2f} |")
    lines += [
        "",
        "**Speed** (words/s, text read as `predict` reads it; one process; after a warm-up, each engine mode "
        f"the median of {next(iter(r['speed'].values())).get('repeats', 1)} runs, predict one run per batch size):",
        "",
        "| workload | predict (best batch) | exact | fast | pruned | pruned+fast | pruned / exact | pruned+fast / predict | share scored % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in r["speed"].items():
        lines.append(
            f"| {name.replace('_', ' ')} ({s['texts']} texts, {s['words']:,} words) | {_speed_cells(s)} | "
            f"{_pct(s['pruned']['share_scored'])} |"
        )
    lines += [
        "",
        "`predict` on long documents reads only the first window of each (SpanMarker truncates a text to "
        "`model_max_length` tokens), so its figure there is not comparable with the engine's, which reads every word.",
    ]
    if r.get("reference_shaped"):
        ref = r["reference_shaped"]
        f = ref["filter"]
        budget = ref["budget_mode"]
        lines += [
            "",
            f"**A checkpoint shaped like the reference model** (`tomaarsen/span-marker-mbert-base-multinerd`): {ref['shape']}; "
            "random weights (mBERT's vocabulary is not available offline, so the e5 tokenizer stands in and the "
            f"embedding table is larger). Its filter was trained on the {f['trained_on']}, in {f['seconds']:.0f} s; its "
            f"stored point is threshold {f['threshold']:.3g} ({f['spans_per_word']:.2f} spans per word on that data), and "
            f"`{budget}` runs it at about the default model's share of spans. Words/s:",
            "",
            f"| workload | exact | fast | pruned (stored) | pruned+fast | {budget} | share scored % (stored) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ("sentences", "long_documents"):
            s = ref[name]
            lines.append(
                f"| {name.replace('_', ' ')} ({s['texts']} texts, {s['words']:,} words) | {s['exact']['words_per_s']:.0f} | "
                f"{s['fast']['words_per_s']:.0f} | {s['pruned']['words_per_s']:.0f} | {s['pruned+fast']['words_per_s']:.0f} | "
                f"{s[budget]['words_per_s']:.0f} | {_pct(s['pruned']['share_scored'])} |"
            )
    if "end_to_end" in r:
        e = r["end_to_end"]
        lines += [
            "",
            f"**End to end**, the extract-entities flow on the same {e['docs']} documents (dev sentences), model "
            f"`{r['model']}`: exact {e['exact']['docs_per_s']:.2f} documents/s ({e['exact']['seconds']} s), pruned "
            f"{e['pruned']['docs_per_s']:.2f} documents/s ({e['pruned']['seconds']} s, "
            f"{_pct(e['pruned']['share_scored'])}% of candidate spans scored): "
            f"{e['pruned']['docs_per_s'] / e['exact']['docs_per_s']:.2f}×; entities {e['exact']['entities']:,} "
            f"against {e['pruned']['entities']:,}.",
        ]
    runs: dict[str, list[str]] = {}  # the phases of each later run, by what it records of itself
    for key, about in r.get("remeasured", {}).items():
        runs.setdefault(json.dumps(about, sort_keys=True), []).append(f"`{key}`")
    for about_json, keys in runs.items():
        about = json.loads(about_json)
        cpu = about["cpu"]
        lines += [
            "",
            f"{' and '.join(keys)} {'were' if len(keys) > 1 else 'was'} measured again on {about['date']}, on "
            f"{cpu['model_name']} (amx_bf16 {cpu['amx_bf16']}, avx512_bf16 {cpu['avx512_bf16']}), model "
            f"`{about['model_id']}`: `{about['command']}`"
            + (f" ({about['seconds']:.0f} s)." if "seconds" in about else "."),
        ]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--dev-sentences", type=int, default=150, help="N sentences of each dev set")
    parser.add_argument(
        "--skip-dev",
        type=int,
        default=600,
        help="after the first K of each dev set (the shipped filter's operating point was chosen on 600)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each engine mode in the speed phase (median)")
    parser.add_argument("--speed-sentences", type=int, default=30, help="sentences of each set for the speed runs")
    parser.add_argument("--docs", type=int, default=1, help="long documents of each language")
    parser.add_argument("--flow-docs", type=int, default=300)
    parser.add_argument("--skip-flow", action="store_true")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the reference-shaped checkpoint")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PHASES,
        help="measure these phases alone and write them into the existing JSON (marked as re-measured)",
    )
    parser.add_argument("--reference-sentences", type=int, default=100, help="sentences of its speed runs")
    parser.add_argument("--reference-docs", type=int, default=2, help="long documents of its speed runs")
    parser.add_argument(
        "--reference-filter-sentences", type=int, default=100, help="dev sentences per set for its filter"
    )
    parser.add_argument(
        "--reference-budget",
        type=float,
        default=0.4,
        help="also run it at this many spans per word (about the default model's operating point)",
    )
    parser.add_argument("--with-fast-unpruned", action="store_true", help="also score fast mode without the filter")
    parser.add_argument("--out", type=Path, default=RESULTS / "span_filter.json")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--recall-only",
        action="store_true",
        help="measure the filter's recall alone into --out (another file), leaving the report as it is",
    )
    parser.add_argument("--thresholds", type=float, nargs="*", default=[], help="more thresholds for the recall curve")
    parser.add_argument(
        "--cpu-speed",
        action="store_true",
        help="measure the speed phase alone as this kind of CPU's (the JSON of every phase is left as it is)",
    )
    args = parser.parse_args(argv)
    if args.only and (args.recall_only or args.report_only or args.skip_flow or args.skip_reference):
        parser.error("--only names the phases to measure: it takes no --recall-only, --report-only or --skip-*")
    if args.cpu_speed and (args.only or args.recall_only or args.report_only):
        parser.error("--cpu-speed measures the speed phase alone: it takes no --only, --recall-only or --report-only")
    if args.cpu_speed:
        record_cpu_speed(speed_record(measure(args, ("speed",))))
        _report_cpu_speeds()
        return 0
    if args.recall_only:
        if args.out == RESULTS / "span_filter.json":
            parser.error("--recall-only writes a result of its own: give --out another file")
        _write(measure(args, ("recall",)), args.out)
        return 0
    if args.report_only:
        result, measured = json.loads(args.out.read_text()), ()
    elif args.only:
        result, measured = remeasure(args, args.out), tuple(args.only)
        _write(result, args.out)
    else:
        skipped = {"flow": args.skip_flow, "reference": args.skip_reference}
        measured = tuple(p for p in PHASES if not skipped.get(p, False))
        result = measure(args, measured)
        _write(result, args.out)
    replace_section(REPORT, BEGIN, END, render(result))
    if "speed" in measured and args.out == RESULTS / "span_filter.json":  # not a candidate's run of its own
        record_cpu_speed(speed_record(result))
    _report_cpu_speeds()
    return 0


def _report_cpu_speeds() -> None:
    replace_section(REPORT, CPU_BEGIN, CPU_END, render_cpu_speeds(cpu_speeds()))


def _write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
