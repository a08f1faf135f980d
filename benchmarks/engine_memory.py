"""The engine's resident memory over a stream of documents, with the default model: what the
lookahead costs, and what handing freed heap back to the system (``ner_core.memory``) changes.

Each configuration runs in a fresh child process (a heap of its own): ``NerEngine.predict``
over the flow benchmark's short documents (``flow_overhead.corpus``), with
``lookahead_tokens`` set as asked, and the heap trimmed in one of three ways: ``off`` (never),
``guard`` (as shipped: ``HeapGuard``, when resident memory has grown by 256 MB since the last
trim) and ``every`` (after every batch that grew it). A thread samples the process's
resident memory twice a second.

Run:  python benchmarks/engine_memory.py [--docs 400] [--lookahead 8192 65536] [--trimming off guard every]
      [--model default]
Writes benchmarks/results/engine_memory.json and its section of docs/performance.md
(``--report-only`` re-renders the section from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, offline_environment, proc_status_kb, sibling

offline_environment()
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- engine_memory:begin -->", "<!-- engine_memory:end -->"


TRIMMING = {"off": 1 << 62, "guard": None, "every": 0}  # HeapGuard slack in bytes; None: the default


def child_run(n_docs: int, lookahead: int, model_ref: str, trimming: str) -> dict:
    import torch

    from ner_core import Doc, EngineConfig, NerEngine, load_model
    from ner_core.memory import HeapGuard

    torch.set_num_threads(os.cpu_count() or 1)
    docs = sibling("flow_overhead").corpus(n_docs)
    engine = NerEngine(load_model(model_ref, device="cpu"), EngineConfig(lookahead_tokens=lookahead))
    if TRIMMING[trimming] is not None:
        engine.heap_guard = HeapGuard(slack_bytes=TRIMMING[trimming])
    loaded = proc_status_kb("VmRSS") // 1024
    trace: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            trace.append((time.perf_counter() - t0, proc_status_kb("VmRSS") // 1024))

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n_entities = sum(len(r.entities) for r in engine.predict(Doc(doc_id=d["id"], text=d["text"]) for d in docs))
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    # Resident memory at each quarter of the run: growth that goes on shows here.
    quarters = [max((r for t, r in trace if t <= seconds * q / 4), default=loaded) for q in (1, 2, 3, 4)]
    return {
        "docs": n_docs,
        "lookahead_tokens": lookahead,
        "trimming": trimming,
        "trims": engine.heap_guard.trims,
        "model": model_ref,
        "seconds": round(seconds, 1),
        "docs_per_s": round(n_docs / seconds, 2),
        "entities": n_entities,
        "batches": engine.stats.batches,
        "window_tokens": engine.stats.encoder_tokens,
        "rss_after_loading_mb": loaded,
        "peak_rss_mb": proc_status_kb("VmHWM") // 1024,
        "rss_by_quarter_mb": quarters,
    }


def render_markdown(r: dict) -> str:
    runs = r["runs"]
    lines = [
        BEGIN,
        "## The engine's memory in flight",
        "",
        f"Command: `{r['command']}` (results: `benchmarks/results/engine_memory.json`). "
        f"Machine: {r['machine']}, torch {r['torch']}. Model `{runs[0]['model']}`, {runs[0]['docs']} short documents "
        "(the flow benchmark's), each configuration in a fresh process; resident memory sampled twice a second.",
        "",
        "Trimming: `off` never, `guard` as shipped (`ner_core.memory.HeapGuard`: once resident memory has grown "
        "by 256 MB since the last trim), `every` after every batch that grew it.",
        "",
        "| lookahead_tokens | trimming | trims | batches | seconds | documents/s | after loading (MB) "
        "| by quarter of the run (MB) | peak (MB) |",
        "| --: | --- | --: | --: | --: | --: | --: | --- | --: |",
    ]
    for x in runs:
        lines.append(
            f"| {x['lookahead_tokens']} | {x['trimming']} | {x['trims']} | {x['batches']} | {x['seconds']} | {x['docs_per_s']} "
            f"| {x['rss_after_loading_mb']} | {', '.join(str(q) for q in x['rss_by_quarter_mb'])} | {x['peak_rss_mb']} |"
        )
    lines += [END]
    return "\n".join(lines) + "\n"


def write_report(r: dict) -> None:
    from _report import replace_section

    replace_section(REPORT, BEGIN, END, render_markdown(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--lookahead", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--model", default="default")
    parser.add_argument("--trimming", nargs="+", choices=list(TRIMMING), default=list(TRIMMING))
    parser.add_argument("--out", default=str(RESULTS / "engine_memory.json"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("DOCS", "LOOKAHEAD", "MODEL", "TRIMMING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, lookahead, model, trimming = args.child
        print(json.dumps(child_run(int(n), int(lookahead), model, trimming)))
        return
    out = Path(args.out)
    if args.report_only:
        write_report(json.loads(out.read_text()))
        return
    import torch

    bench = sibling("engine_vs_spanmarker")
    runs = []
    for lookahead in args.lookahead:
        for trimming in args.trimming:
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(args.docs), str(lookahead), args.model, trimming],
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    result = {
        "command": " ".join(["python benchmarks/engine_memory.py", *sys.argv[1:]]),
        "machine": bench.cpu_model(),
        "torch": torch.__version__,
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_report(result)
    print(render_markdown(result))


if __name__ == "__main__":
    main()
