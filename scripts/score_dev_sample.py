"""Score models on a training config's dev sample, as the trainer's model selection does.

The trainer records dev F1 only for its own checkpoints; this scores any model (a stage
shipped before, another run's export) on the very same sample (the config's ``dev`` sources,
sampled with its seed, ``dev_ignore_labels`` left out), so that runs can be compared.

Run:  python scripts/score_dev_sample.py --config configs/default-model-stage3.toml [--read-as-is] MODEL [MODEL ...]
Prints one JSON object per model: pooled micro F1, F1 per dev set, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.train import load_config
from ner_core import EngineConfig, load_model
from ner_core.training import dev_evaluator, read_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a training config (TOML) whose dev sample to use")
    parser.add_argument("models", nargs="+", help="model references (directories, URIs, 'default')")
    parser.add_argument(
        "--read-as-is",
        action="store_true",
        help="read the text as it is: no spaces set around punctuation, no quotes taken off "
        "entity edges (the engine before 2026-12-03)",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    dev = read_sources(config.dev, seed=config.seed, storage_options=config.storage_options)
    reading = EngineConfig(space_punctuation=False, trim_unpaired_quotes=False) if args.read_as_is else None
    score = dev_evaluator(config.dev_ignore_labels, reading)
    for ref in args.models:
        model = load_model(ref, device="cpu")
        started = time.perf_counter()
        scores = score(model.span_marker, dev)
        print(json.dumps({"model": ref, **scores, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
