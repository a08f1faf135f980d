"""How a labelled corpus labels given strings: counts of each gold label per exact string.

Tells an annotation convention from a model error: if WikiNEuRal Russian calls "США" a
location 715 times and an organisation 7, a model that calls PUD's "США" (the US
government, ORG in PUD) a location has learned its data, not failed to.

Run:  python scripts/label_counts.py --string США --string Китай FILE [FILE ...]
Prints one JSON object per file: {string: {label: count}}, exact matches of whole entities.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_core.labelled import read_labelled  # noqa: E402


def label_counts(records, strings: set[str]) -> dict[str, Counter]:
    """``{string: Counter(label -> entities)}`` over the records' gold entities."""
    counts: dict[str, Counter] = {s: Counter() for s in strings}
    for record in records:
        for start, end, label in record.entities:
            text = record.text[start:end]
            if text in counts:
                counts[text][label] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--string", action="append", required=True, dest="strings",
                        help="an entity string to count (repeatable)")
    parser.add_argument("files", nargs="+", help="labelled JSONL files (sentences or documents)")
    args = parser.parse_args()
    for path in args.files:
        counts = label_counts(read_labelled(path), set(args.strings))
        print(json.dumps({"file": path, "labels": {s: dict(c) for s, c in counts.items()}},
                         ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
