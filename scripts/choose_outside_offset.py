"""Choose a model's "O" offset (and, with ``--tune-labels``, an offset per entity label) on
dev data, and write the adapter with them folded in.

One encoder pass over the dev sample (the first ``--max-records`` texts of each file, after
``--skip-records``: choose on one slice, score the choice on another), then
every setting decoded from the kept logits (``ner_core.calibration``): strict P/R/F1 pooled and
per data set, PER/ORG/LOC (``--ignore-label MISC``). The chosen "O" offset maximises pooled
micro F1; ``--tune-labels PER ORG LOC`` then adds to each label's logit the amount of
``--label-grid`` that raises pooled F1 most, one label at a time (``--label-rounds`` passes).
``--apply ADAPTER --adapter-output DIR`` writes a copy of the adapter with the chosen setting
folded into the classifier's bias and recorded as ``outside_offset`` and ``label_offsets`` in
its config (added to any applied before); ``--model-output`` also writes its full checkpoint,
which ``--model`` scores (on other texts: ``--skip-records``). The span filter files are copied along; retrain the
filter for the new model (``nerflow train-filter``), since the model's entities changed.

Run:  python scripts/choose_outside_offset.py --model MODEL --data '../shared/data/ner/dev/*.jsonl.gz' \\
          --ignore-label MISC --max-records 300 --output benchmarks/results/outside_offset.json \\
          [--tune-labels PER ORG LOC] [--apply ADAPTER_DIR --adapter-output DIR [--model-output DIR]]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import cpu_description
from flows.evaluate import dropping, expand
from ner_core import load_model
from ner_core.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from ner_core.calibration import OffsetScores, OffsetSweep, best_offset, logit_shift
from ner_core.labelled import read_labelled

OFFSETS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]
LABEL_GRID = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--ignore-label", action="append", default=[])
    parser.add_argument("--max-records", type=int, default=300)
    parser.add_argument("--skip-records", type=int, default=0, help="texts of each file to pass over first")
    parser.add_argument("--offsets", type=float, nargs="+", default=OFFSETS)
    parser.add_argument("--tune-labels", nargs="*", default=[], help="entity labels to give an offset each")
    parser.add_argument("--label-grid", type=float, nargs="+", default=LABEL_GRID)
    parser.add_argument("--label-rounds", type=int, default=2, help="passes over the labels")
    parser.add_argument("--output", required=True, help="JSON of the sweep")
    parser.add_argument("--apply", help="adapter directory to write a calibrated copy of")
    parser.add_argument("--adapter-output", help="where the calibrated adapter goes")
    parser.add_argument("--model-output", help="also write the calibrated adapter's full checkpoint here (to score it)")
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    data = {}
    for uri in expand(args.data):
        records = read_labelled(uri, limit=args.skip_records + args.max_records)
        data[Path(uri).name.split(".", 1)[0]] = list(islice(records, args.skip_records, None))
    started = time.perf_counter()
    ignored = dropping({}, args.ignore_label)  # out of gold and predictions alike, as `nerflow evaluate`
    with OffsetSweep(model, data, label_map=ignored, gold_label_map=ignored) as offset_sweep:
        sweep = [offset_sweep.score(offset) for offset in args.offsets]
        best = best_offset(sweep)
        tuned: list[OffsetScores] = []
        if args.tune_labels:
            tuned = offset_sweep.tune(
                args.tune_labels, args.label_grid, outside_offset=best.offset, rounds=args.label_rounds
            )
            best = best_offset([best, *tuned])
    seconds = time.perf_counter() - started

    def row(m):
        return {"precision": m.precision, "recall": m.recall, "f1": m.f1, "tp": m.tp, "fp": m.fp, "fn": m.fn}

    def setting(s: OffsetScores) -> dict:
        return {
            "offset": s.offset,
            "label_offsets": s.label_offsets,
            "pooled": row(s.pooled.micro),
            "per_label": {label: row(prf) for label, prf in s.pooled.per_label.items()},
            "per_set": {name: row(scores.micro) for name, scores in s.per_set.items()},
        }

    result = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "model_id": model.model_id,
        "max_records": args.max_records,
        "skip_records": args.skip_records,
        "ignore_labels": args.ignore_label,
        "cpu": cpu_description(),
        "seconds": round(seconds, 1),
        "chosen_offset": best.offset,
        "chosen_label_offsets": best.label_offsets,
        "sweep": [setting(s) for s in sweep],
        "label_tuning": [setting(s) for s in tuned],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for s in [*sweep, *tuned]:
        m = s.pooled.micro
        mark = " <- chosen" if s is best else ""
        labels = "".join(f" {label} {amount:+.2f}" for label, amount in s.label_offsets.items())
        print(
            f"offset {s.offset:5.2f}{labels}: P {100 * m.precision:5.1f} R {100 * m.recall:5.1f} F1 {100 * m.f1:5.1f}{mark}"
        )
    if args.apply:
        write_calibrated_adapter(Path(args.apply), Path(args.adapter_output), best, model.labels, model.outside_id)
        if args.model_output:
            from ner_core.adapters import materialise_adapter

            print(f"model: {materialise_adapter(Path(args.adapter_output), Path(args.model_output))}")


def write_calibrated_adapter(
    source: Path, dest: Path, chosen: OffsetScores, labels: tuple[str, ...], outside_id: int
) -> None:
    from safetensors.torch import load_file, save_file

    if dest.exists():
        raise SystemExit(f"{dest} exists")
    shutil.copytree(source, dest)
    weights = load_file(dest / ADAPTER_WEIGHTS)
    bias = weights["classifier.bias"]
    bias += logit_shift(labels, outside_id, chosen.offset, chosen.label_offsets).to(bias.dtype)
    save_file(weights, dest / ADAPTER_WEIGHTS)
    config = json.loads((dest / ADAPTER_CONFIG).read_text())
    config["outside_offset"] = round(config.get("outside_offset", 0.0) + chosen.offset, 6)
    applied = config.get("label_offsets", {})
    for label, amount in chosen.label_offsets.items():
        applied[label] = round(applied.get(label, 0.0) + amount, 6)
    if applied:
        config["label_offsets"] = applied
    (dest / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {dest} with outside_offset {config['outside_offset']} and label_offsets {applied}")


if __name__ == "__main__":
    main()
