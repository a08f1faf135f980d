"""Average LoRA adapters of one lineage into one (checkpoint averaging), exactly for the LoRA updates.

Two checkpoints of one training run, or two runs continued from one adapter, often score
better averaged than either alone. The LoRA updates are averaged exactly (their ranks add
up); see ``ner_core.adapters.average_adapters``. The span filter is not carried over: train
one for the average (``nerflow train-filter``).

Run:  python scripts/average_adapters.py ADAPTER ADAPTER [...] --output DIR [--weights 0.5 0.5] [--model-output DIR]
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
    parser.add_argument("--weights", nargs="+", type=float, help="one per adapter, summing to 1 (default: equal)")
    parser.add_argument("--model-output", type=Path, help="also write the full SpanMarker checkpoint here")
    args = parser.parse_args()
    out = average_adapters(args.adapters, args.output, weights=args.weights)
    print(f"adapter: {out}")
    if args.model_output:
        print(f"model: {materialise_adapter(out, args.model_output)}")


if __name__ == "__main__":
    main()
