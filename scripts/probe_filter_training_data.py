"""Does other training data raise the span filter's gold recall? (issue 29; one-off probe)

Heads trained on gold entities alone (``positives="gold"``, the default config otherwise), on
three selections of the training files, measured on held-out dev sentences (601 to 1000 of
each set, as ``benchmarks/span_filter.py`` holds out) at equal candidate spans per word,
beside the shipped head:

- ``first600``: the first 600 sentences of each training file (what ``train-filter
  --max-records 600`` reads);
- ``first600+gold``: those, plus sentences 601 to 4,000 of each gold (not silver) file;
- ``random600``: 600 sentences of each file drawn at random across it (seed 0), as
  ``nerflow train`` samples.

Run:  python scripts/probe_filter_training_data.py   (about 20 minutes on 2 cores)
Prints, per head and budget, gold recall overall, on the lowest set, and per set.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import NER_DATA, offline_environment  # noqa: E402

offline_environment()

from ner_core import load_model  # noqa: E402
from ner_core.filter_training import (  # noqa: E402
    EncodedWindows,
    FilterTrainConfig,
    encode_windows,
    model_windows,
    probabilities,
    recall_curve,
    train_span_filter,
)
from ner_core.labelled import read_labelled  # noqa: E402

HELD_OUT = (600, 1000)
SPANS_PER_WORD = (0.6, 0.9)


def encoded(model, files: list[Path], choose) -> EncodedWindows:
    """The text pass over the records ``choose(records)`` picks from each file."""
    data = None
    for path in files:
        records = choose(list(read_labelled(str(path))))
        if records:
            data = encode_windows(model, model_windows(model, records), source=path.name.split(".")[0], into=data)
    return data


def joined(*parts: EncodedWindows) -> EncodedWindows:
    out = EncodedWindows()
    for part in parts:
        for f in dataclasses.fields(out):
            getattr(out, f.name).extend(getattr(part, f.name))
    return out


def sampled(records: list, n: int = 600, seed: int = 0) -> list:
    if len(records) <= n:
        return records
    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), n))]


def report(name: str, head, held_out: EncodedWindows) -> None:
    probs = probabilities(head, held_out)
    ranked = np.sort(np.concatenate(probs))[::-1]
    for budget in SPANS_PER_WORD:
        threshold = float(ranked[int(budget * sum(held_out.words))])
        row = recall_curve(probs, held_out, [threshold])[0]
        per_set = {k: round(v, 4) for k, v in row["gold_recall_by_source"].items()}
        print(
            f"{name}: {budget} spans per word (threshold {threshold:.2g}): gold {100 * row['gold_recall']:.2f}% "
            f"(lowest set {100 * row['gold_min_recall']:.2f}%) {per_set}",
            flush=True,
        )


def main() -> None:
    model = load_model("default", device="cpu")
    train_files = sorted((NER_DATA / "train").glob("*.jsonl.gz"))
    gold_files = [p for p in train_files if "silver" not in p.name]
    held_out = encoded(model, sorted((NER_DATA / "dev").glob("*.jsonl.gz")), lambda r: r[slice(*HELD_OUT)])
    report("shipped head", model.span_filter.head, held_out)
    first = encoded(model, train_files, lambda r: r[:600])
    heads = {
        "first600": first,
        "first600+gold": joined(first, encoded(model, gold_files, lambda r: r[600:4000])),
        "random600": encoded(model, train_files, sampled),
    }
    config = FilterTrainConfig(positives="gold")
    for name, train in heads.items():
        print(f"{name}: {len(train)} training windows", flush=True)
        # The operating point it picks does not matter here: each head is read at equal budgets.
        report(name, train_span_filter(model, train, held_out, config).head, held_out)


if __name__ == "__main__":
    main()
