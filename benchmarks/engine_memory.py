"""The engine's resident memory over a stream of documents, with the default model: what the
lookahead costs, and what handing freed heap back to the system (``ner_core.memory``) changes.

Each configuration runs in a fresh child process (a heap of its own): ``NerEngine.predict``
over the flow benchmark's short documents (``flow_overhead.corpus``), with
``lookahead_tokens`` set as asked, and the heap trimmed in one of three ways: ``off`` (never),
``guard`` (as shipped: ``HeapGuard``, when resident memory has grown by 256 MB since the last
trim) and ``every`` (after every batch that grew it). A thread samples the process's
resident memory twice a second.

``--long-document`` measures instead one document at the reader's limit
(``MAX_DOCUMENT_CHARS``, 10 million characters: issue 31 asks that memory for a document at
the limit stay bounded): the same short documents joined into one text, one paragraph each,
through the engine as shipped (exact precision, default lookahead, heap guard).

Run:  python benchmarks/engine_memory.py [--docs 400] [--lookahead 8192 65536] [--trimming off guard every]
      [--model default]
      python benchmarks/engine_memory.py --long-document [--chars 10000000]
Writes benchmarks/results/engine_memory.json (``engine_memory_long_document.json``) and its
section of docs/performance.md (``--report-only`` re-renders the section from the JSON).
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
from _common import ROOT, cpu_description, offline_environment, proc_status_kb, sibling

offline_environment()
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- engine_memory:begin -->", "<!-- engine_memory:end -->"
LONG_BEGIN, LONG_END = "<!-- engine_memory_long_document:begin -->", "<!-- engine_memory_long_document:end -->"


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
    measured = _measure(engine, [Doc(doc_id=d["id"], text=d["text"]) for d in docs])
    return {
        "docs": n_docs,
        "lookahead_tokens": lookahead,
        "trimming": trimming,
        "trims": engine.heap_guard.trims,
        "model": model_ref,
        "docs_per_s": round(n_docs / measured["seconds"], 2),
        **measured,
    }


def child_long_document(n_chars: int, model_ref: str, seconds: float) -> dict:
    """One document of ``n_chars``; after ``seconds`` of scoring (when it has not finished) the
    measurement so far is printed with the document's planned work, and the process ends."""
    import torch

    from ner_core import Doc, EngineConfig, NerEngine, load_model

    torch.set_num_threads(os.cpu_count() or 1)
    parts, length = [], 0
    for d in sibling("flow_overhead").corpus(n_chars // 200 + 1):
        if length + len(d["text"]) + 1 > n_chars:
            break
        parts.append(d["text"])
        length += len(d["text"]) + 1
    text = "\n".join(parts)
    engine = NerEngine(load_model(model_ref, device="cpu"), EngineConfig())
    doc = Doc(doc_id="long", text=text)
    context = {"chars": len(text), "paragraphs": len(parts), "model": model_ref}

    def stop_early(measured: dict) -> None:
        # The peak is taken; planning the document again now only sizes the whole run.
        inputs = engine.window_inputs(doc)
        planned = {"windows": len(inputs), "window_tokens": sum(engine.scorer.cost(x) for x in inputs)}
        print(json.dumps({**context, **measured, "finished": False, "planned": planned}), flush=True)
        os._exit(0)

    measured = _measure(engine, [doc], deadline=seconds, on_deadline=stop_early)
    return {**context, **measured, "finished": True}


def _measure(engine, docs: list, deadline: float | None = None, on_deadline=None) -> dict:
    """Run ``docs`` through ``engine``, sampling resident memory twice a second; past
    ``deadline`` seconds, hand the measurement so far to ``on_deadline``."""
    loaded = proc_status_kb("VmRSS") // 1024
    trace: list[tuple[float, int]] = []
    stop = threading.Event()

    def measurement(seconds: float, n_entities: int | None) -> dict:
        # Resident memory at each quarter of the run: growth that goes on shows here.
        quarters = [max((r for t, r in trace if t <= seconds * q / 4), default=loaded) for q in (1, 2, 3, 4)]
        return {
            "seconds": round(seconds, 1),
            "entities": n_entities,
            "batches": engine.stats.batches,
            "window_tokens": engine.stats.encoder_tokens,
            "rss_after_loading_mb": loaded,
            "peak_rss_mb": proc_status_kb("VmHWM") // 1024,
            "rss_by_quarter_mb": quarters,
        }

    def sample() -> None:
        while not stop.wait(0.5):
            now = time.perf_counter() - t0
            trace.append((now, proc_status_kb("VmRSS") // 1024))
            if deadline is not None and now > deadline:
                on_deadline(measurement(now, None))

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n_entities = sum(len(r.entities) for r in engine.predict(iter(docs)))
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return measurement(seconds, n_entities)


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


def render_long_document(r: dict) -> str:
    x = r["run"]
    lines = [
        LONG_BEGIN,
        "## One document at the length limit",
        "",
        f"Command: `{r['command']}` (results: `benchmarks/results/engine_memory_long_document.json`). "
        f"Machine: {r['machine']}, torch {r['torch']}. Model `{x['model']}`, exact precision, the engine's defaults "
        f"(lookahead, heap guard). One document of {x['chars']:,} characters (the reader's `max_document_chars` is "
        f"{r['max_document_chars']:,}): {x['paragraphs']:,} of the flow benchmark's short documents, one paragraph "
        "each, ten languages in turn.",
        "",
        "| scored window tokens | batches | seconds | after loading (MB) | by quarter of the run (MB) | peak (MB) |",
        "| --: | --: | --: | --: | --- | --: |",
        f"| {x['window_tokens']:,} | {x['batches']:,} | {x['seconds']} | {x['rss_after_loading_mb']} "
        f"| {', '.join(str(q) for q in x['rss_by_quarter_mb'])} | {x['peak_rss_mb']} |",
        "",
    ]
    if x["finished"]:
        lines.append(f"The document was annotated whole: {x['entities']:,} entities.")
    else:
        planned = x["planned"]
        share = x["window_tokens"] / planned["window_tokens"]
        lines.append(
            f"Scoring was stopped after {x['seconds']} s (tokenising and cutting the document included), at "
            f"{share:.1%} of the document's {planned['windows']:,} windows ({planned['window_tokens']:,} window "
            "tokens, text and markers). The engine holds the document's tokens and windows whole from the first "
            "quarter, and builds the model inputs of its windows a lookahead (`lookahead_tokens`) at a time; "
            "what follows adds the decoded candidates of scored windows and heap growth, which the heap guard "
            "trims every 256 MB. The whole run's peak was not measured: at the engine's 100-180 words/s on 2 "
            "cores the document takes hours."
        )
    lines.append(LONG_END)
    return "\n".join(lines) + "\n"


def write_report(r: dict) -> None:
    from _report import replace_section

    if "run" in r:
        replace_section(REPORT, LONG_BEGIN, LONG_END, render_long_document(r))
    else:
        replace_section(REPORT, BEGIN, END, render_markdown(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--lookahead", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--model", default="default")
    parser.add_argument("--trimming", nargs="+", choices=list(TRIMMING), default=list(TRIMMING))
    parser.add_argument("--long-document", action="store_true", help="one document at the length limit")
    parser.add_argument("--chars", type=int, help="the long document's length (default: max_document_chars)")
    parser.add_argument("--seconds", type=float, default=900, help="stop the long document's scoring after this")
    parser.add_argument("--out")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("DOCS", "LOOKAHEAD", "MODEL", "TRIMMING"), help=argparse.SUPPRESS)
    parser.add_argument("--child-long", nargs=3, metavar=("CHARS", "MODEL", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, lookahead, model, trimming = args.child
        print(json.dumps(child_run(int(n), int(lookahead), model, trimming)))
        return
    if args.child_long:
        chars, model, seconds = args.child_long
        print(json.dumps(child_long_document(int(chars), model, float(seconds))))
        return
    name = "engine_memory_long_document.json" if args.long_document else "engine_memory.json"
    out = Path(args.out or RESULTS / name)
    if args.report_only:
        write_report(json.loads(out.read_text()))
        return
    import torch

    if args.long_document:
        from nerflow.etl.reading import MAX_DOCUMENT_CHARS

        chars = args.chars or MAX_DOCUMENT_CHARS
        child = subprocess.run(
            [sys.executable, __file__, "--child-long", str(chars), args.model, str(args.seconds)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        long_result = {
            "command": " ".join(["python benchmarks/engine_memory.py", *sys.argv[1:]]),
            "machine": cpu_description(),
            "torch": torch.__version__,
            "max_document_chars": MAX_DOCUMENT_CHARS,
            "run": json.loads(child.stdout.strip().splitlines()[-1]),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(long_result, indent=2) + "\n")
        if not args.out:
            write_report(long_result)
        print(render_long_document(long_result))
        return
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
        "machine": cpu_description(),
        "torch": torch.__version__,
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_report(result)
    print(render_markdown(result))


if __name__ == "__main__":
    main()
