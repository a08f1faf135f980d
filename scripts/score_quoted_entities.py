"""Recall of dev-set entities written inside quotation marks, in text as it is written.

Every sentence of the European dev sets that holds a PER/ORG/LOC entity directly between
quotation marks is rejoined as running text ("сообщает «Интерфакс»", not "« Интерфакс »";
``ner_core.labelled.as_written``), with quotes taken off gold entity edges first (BSNLP puts
them inside, UNER and CoNLL-02 outside: ``trim_entity_quotes``). Counts the quoted entities
each model finds exactly (span and label), through the full engine. Dev data only.

Run:  python scripts/score_quoted_entities.py [--read-as-is] MODEL [MODEL ...]
Prints one JSON object per model: found, quoted, recall, and [found, quoted] per dev set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ner_core import EngineConfig, load_model  # noqa: E402
from ner_core.engine import NerEngine  # noqa: E402
from ner_core.evaluation import predict_spans  # noqa: E402
from ner_core.labelled import as_written, read_labelled, trim_entity_quotes  # noqa: E402

DEV = Path(os.environ.get("NERFLOW_NER_DATA", ROOT.parent / "shared" / "data" / "ner")) / "dev"
SETS = ["conll02_es", "conll02_nl", "germeval2014_de", "uner_en_ewt", "uner_pt_bosque", "bsnlp_pl", "bsnlp_ru"]
# Double quotes and guillemets only, not ner_core.labelled's wider set: an apostrophe before a
# name is an elision or a possessive ("l'ONU"), not a quotation.
QUOTES = set('"«»„“”')
LABELS = {"PER", "ORG", "LOC"}


def quoted_sentences():
    """``(set, record, quoted entities)`` for every dev sentence with a quoted entity."""
    for name in SETS:
        for record in read_labelled(str(DEV / f"{name}.jsonl.gz")):
            record = as_written(trim_entity_quotes(record))
            text = record.text
            quoted = [
                (s, e, label)
                for s, e, label in record.entities
                if label in LABELS and s > 0 and text[s - 1] in QUOTES and e < len(text) and text[e] in QUOTES
            ]
            if quoted:
                yield name, record, quoted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model references (directories, URIs, 'default')")
    parser.add_argument(
        "--read-as-is",
        action="store_true",
        help="read the text as it is: no spaces set around punctuation, no quotes taken off "
        "entity edges (the engine before 2026-12-03)",
    )
    args = parser.parse_args()
    sentences = list(quoted_sentences())
    for ref in args.models:
        reading = (
            EngineConfig(space_punctuation=False, trim_unpaired_quotes=False) if args.read_as_is else EngineConfig()
        )
        engine = NerEngine(load_model(ref, device="cpu"), reading)
        predicted = predict_spans(engine, [record for _, record, _ in sentences])
        per_set: dict[str, list[int]] = {}
        for (name, _, quoted), spans in zip(sentences, predicted):
            found = set(spans)
            counts = per_set.setdefault(name, [0, 0])
            counts[0] += sum(entity in found for entity in quoted)
            counts[1] += len(quoted)
        found, total = sum(c[0] for c in per_set.values()), sum(c[1] for c in per_set.values())
        print(
            json.dumps(
                {
                    "model": ref,
                    "read_as_is": args.read_as_is,
                    "found": found,
                    "quoted": total,
                    "recall": round(found / total, 3),
                    "per_set": per_set,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
