"""Average LoRA adapters of one lineage into one (checkpoint averaging), exactly for the LoRA updates.

Two checkpoints of one training run, or two runs continued from one adapter, often score
better averaged than either alone. The LoRA updates are averaged exactly (their ranks add
up); see ``ner_core.adapters.average_adapters``. The span filter is not carried over: train
one for the average (``nerflow train-filter``).

``--max-rank R`` keeps the average within rank R (each update's truncated SVD), so that a
soup of many members fits the artifact's size limit.

Run:  python scripts/average_adapters.py ADAPTER ADAPTER [...] --output DIR [--weights 0.5 0.5] [--max-rank 64]
          [--model-output DIR]
``--model-output`` also writes the full SpanMarker checkpoint, for ``nerflow evaluate`` and
``scripts/choose_outside_offset.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_core.adapters import average_adapters, materialise_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapters", nargs="+", type=Path, help="nerflow adapter directories")
    parser.add_argument("--output", required=True, type=Path, help="directory of the averaged adapter")
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        help="one per adapter, summing to 1 (default: equal); a negative weight extrapolates",
    )
    parser.add_argument("--max-rank", type=int, help="truncate the averaged LoRA updates to this rank")
    parser.add_argument("--model-output", type=Path, help="also write the full SpanMarker checkpoint here")
    args = parser.parse_args()
    out = average_adapters(args.adapters, args.output, weights=args.weights, max_rank=args.max_rank)
    print(f"adapter: {out}")
    if args.model_output:
        print(f"model: {materialise_adapter(out, args.model_output)}")


if __name__ == "__main__":
    main()
