"""How a labelled corpus labels given strings: counts of each gold label per exact string.

Tells an annotation convention from a model error: if WikiNEuRal Russian calls "США" a
location 715 times and an organisation 7, a model that calls PUD's "США" (the US
government, ORG in PUD) a location has learned its data, not failed to.

Run:  python scripts/label_counts.py [--contexts N] --string США --string Китай FILE [FILE ...]
Prints one JSON object per file: {string: {label: count}}, exact matches of whole entities;
with ``--contexts N`` also up to N of each string's labelled mentions per label with the
text around them, which shows whether a label follows the context ("президент США").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_core.labelled import read_labelled

CONTEXT_CHARS = 40


def label_counts(
    records, strings: set[str], contexts: int = 0
) -> tuple[dict[str, Counter], dict[str, dict[str, list[str]]]]:
    """``({string: Counter(label -> entities)}, {string: {label: [up to contexts mentions]}})``.

    A mention is the entity with up to ``CONTEXT_CHARS`` characters either side, the entity
    in brackets: "избранный президент [США] Дональд".
    """
    counts: dict[str, Counter] = {s: Counter() for s in strings}
    mentions: dict[str, dict[str, list[str]]] = {s: {} for s in strings}
    for record in records:
        for start, end, label in record.entities:
            text = record.text[start:end]
            if text not in counts:
                continue
            counts[text][label] += 1
            shown = mentions[text].setdefault(label, [])
            if len(shown) < contexts:
                before = record.text[max(0, start - CONTEXT_CHARS) : start]
                after = record.text[end : end + CONTEXT_CHARS]
                shown.append(f"{before}[{text}]{after}".replace("\n", " "))
    return counts, mentions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--string", action="append", required=True, dest="strings", help="an entity string to count (repeatable)"
    )
    parser.add_argument(
        "--contexts",
        type=int,
        default=0,
        metavar="N",
        help="also show up to N mentions of each string per label, in context",
    )
    parser.add_argument("files", nargs="+", help="labelled JSONL files (sentences or documents)")
    args = parser.parse_args()
    for path in args.files:
        counts, mentions = label_counts(read_labelled(path), set(args.strings), args.contexts)
        report = {"file": path, "labels": {s: dict(c) for s, c in counts.items()}}
        if args.contexts:
            report["contexts"] = mentions
        print(json.dumps(report, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
