"""Resident memory and time of ``NerEngine.predict`` with a model over a stream of the flow
benchmark's documents: a diagnostic for the engine's memory in flight (docs/performance.md).

Run:  python benchmarks/engine_memory.py DOCS LOOKAHEAD_TOKENS [--model default]
Prints the process's resident memory and the seconds elapsed every 50 documents; results
arrive a lookahead at a time, so with a lookahead larger than the stream they all print at
the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import offline_environment, sibling  # noqa: E402

offline_environment()


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", type=int)
    parser.add_argument("lookahead_tokens", type=int)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    import torch

    from ner_core import Doc, EngineConfig, NerEngine, load_model

    torch.set_num_threads(2)
    docs = sibling("flow_overhead").corpus(args.docs)
    engine = NerEngine(load_model(args.model, device="cpu"), EngineConfig(lookahead_tokens=args.lookahead_tokens))
    print("start rss MB", rss_mb(), flush=True)
    t0 = time.perf_counter()
    for i, _ in enumerate(engine.predict(Doc(doc_id=d["id"], text=d["text"]) for d in docs), 1):
        if i % 50 == 0:
            print(i, "rss MB", rss_mb(), "s", round(time.perf_counter() - t0, 1), flush=True)


if __name__ == "__main__":
    main()
