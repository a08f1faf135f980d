"""What a model predicts on each gold entity's characters: a confusion table of labels.

For every gold PER/ORG/LOC entity of a labelled file: the label the model gives the very same
characters, or "boundary" (a predicted entity overlaps it with other edges) or "missed"
(nothing overlaps it). For every predicted entity matching no gold one: "gold MISC" (the
same characters are MISC in the gold), "boundary" or "spurious". Also strict F1 with ORG and
LOC counted as one label, which tells a disagreement about what a name is (a country as a
place or as a government) from a failure to find it. The spurious strings listed, and the
count of those the file's gold labels elsewhere, tell wrong entities from gold that leaves
names out (BSNLP's files label a name in some sentences and not in others). Scores through
the full engine, as ``nerflow evaluate`` does.

``--relabel STRING=LABEL`` also scores the predictions with every predicted entity whose
characters are STRING given LABEL: what following one data set's convention for one name
(PUD's "США" as ORG) would do to it, and to another data set with the opposite convention.

This explains scores; it does not choose models (choose on dev data only).

Run:  python scripts/label_confusion.py [--model default] [--max-records N] [--relabel США=ORG] FILE [FILE ...]
Prints one JSON object per file: confusion counts, the gold strings most often given another
label, the spurious strings most often predicted, strict F1, F1 with ORG and LOC merged, and
strict F1 after each relabelling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_core import EngineConfig, load_model
from ner_core.engine import NerEngine
from ner_core.evaluation import predict_spans
from ner_core.labelled import read_labelled
from ner_core.metrics import score_spans

LABELS = {"PER", "ORG", "LOC"}


def confusion(records, predicted, gold_strings: frozenset[str] = frozenset()) -> tuple[Counter, Counter, Counter]:
    """``(counts of (gold, predicted) outcomes, gold strings given another label, spurious
    predicted strings)``. A spurious entity whose string is in ``gold_strings`` (the gold
    entities of the whole file) also counts as "spurious, gold elsewhere": the gold names it
    in another text and leaves it out in this one."""
    counts: Counter = Counter()
    relabelled: Counter = Counter()
    spurious: Counter = Counter()
    for record, spans in zip(records, predicted):
        gold = {(s, e): label for s, e, label in record.entities if label in LABELS}
        gold_any = {(s, e): label for s, e, label in record.entities}
        pred = {(s, e): label for s, e, label in spans if label in LABELS}
        for (s, e), label in gold.items():
            got = pred.get((s, e))
            if got is None:
                got = "boundary" if any(a < e and s < b for a, b in pred) else "missed"
            elif got != label:
                relabelled[f"{label}->{got}: {record.text[s:e]}"] += 1
            counts[f"{label}->{got}"] += 1
        for (s, e), label in pred.items():
            if (s, e) in gold:
                continue
            if gold_any.get((s, e)) == "MISC":
                kind = "gold MISC"
            elif any(a < e and s < b for a, b in gold):
                kind = "boundary"
            else:
                kind = "spurious"
                spurious[f"{label}: {record.text[s:e]}"] += 1
                if record.text[s:e] in gold_strings:
                    counts["spurious, gold elsewhere"] += 1
            counts[f"{kind}->{label}"] += 1
    return counts, relabelled, spurious


def relabel_predictions(records, predicted, string: str, label: str) -> tuple[list[list[tuple[int, int, str]]], int]:
    """``(predictions with every entity spelled ``string`` labelled ``label``, entities changed)``."""
    changed = 0
    out = []
    for record, spans in zip(records, predicted, strict=True):
        new = []
        for s, e, old in spans:
            if record.text[s:e] == string and old != label:
                old, changed = label, changed + 1
            new.append((s, e, old))
        out.append(new)
    return out, changed


def _relabelling(value: str) -> tuple[str, str]:
    string, sep, label = value.rpartition("=")
    if not sep or not string or label not in LABELS:
        raise argparse.ArgumentTypeError(f"expected STRING=LABEL with LABEL one of {sorted(LABELS)}, got {value!r}")
    return string, label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model reference (default: the shipped default model)")
    parser.add_argument(
        "--top", type=int, default=15, help="gold strings given another label (and spurious ones) to list"
    )
    parser.add_argument("--max-records", type=int, help="score only the first N texts of each file")
    parser.add_argument(
        "--relabel",
        action="append",
        default=[],
        type=_relabelling,
        metavar="STRING=LABEL",
        help="also score with every predicted STRING labelled LABEL (repeatable)",
    )
    parser.add_argument("files", nargs="+", help="labelled JSONL files (sentences or documents)")
    args = parser.parse_args()
    engine = NerEngine(load_model(args.model, device="cpu"), EngineConfig())
    ignore = {"MISC": None}
    merged = {"ORG": "LOC/ORG", "LOC": "LOC/ORG", "MISC": None}
    for file in args.files:
        every_record = list(read_labelled(file))
        records = every_record[: args.max_records]
        predicted = predict_spans(engine, records)
        gold = [list(r.entities) for r in records]
        gold_strings = frozenset(r.text[s:e] for r in every_record for s, e, _ in r.entities)
        counts, relabelled, spurious = confusion(records, predicted, gold_strings)
        strict = score_spans(gold, predicted, label_map=ignore, gold_label_map=ignore)
        org_loc = score_spans(gold, predicted, label_map=merged, gold_label_map=merged)
        relabelled_f1 = {}
        for string, label in args.relabel:
            changed_predictions, changed = relabel_predictions(records, predicted, string, label)
            score = score_spans(gold, changed_predictions, label_map=ignore, gold_label_map=ignore)
            relabelled_f1[f"{string}={label}"] = {
                "entities_changed": changed,
                "strict_f1": round(100 * score.micro.f1, 1),
            }
        print(
            json.dumps(
                {
                    "file": file,
                    "model": args.model,
                    "texts": len(records),
                    "strict_f1": round(100 * strict.micro.f1, 1),
                    "f1_org_loc_merged": round(100 * org_loc.micro.f1, 1),
                    "confusion": dict(sorted(counts.items())),
                    "relabelled": dict(relabelled.most_common(args.top)),
                    "spurious": dict(spurious.most_common(args.top)),
                    **({"strict_f1_after": relabelled_f1} if relabelled_f1 else {}),
                },
                ensure_ascii=False,
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
