"""Windowed documents against their sentences, with the uncertainty of a small sample.

``evaluate_default_model.py`` (test documents) and ``dev_documents.py`` (dev pseudo-documents)
score each document both ways and keep its counts (``per_document``). Twenty documents are few:
one entity is a tenth of a point or more, so a difference near the 1-point target needs an
interval. This module derives, from those counts:

* the difference in points (the documents' pooled F1 minus their sentences');
* its 95% percentile bootstrap interval, documents resampled each with its own sentences;
* for two runs on the same documents (two models), the difference of their differences, and of
  their windowed F1, each with its interval, the documents resampled in pairs.

Run:  python benchmarks/document_gap.py FIRST.json SECOND.json
      (two runs of either script on the same documents: the first's difference minus the second's)
      python benchmarks/document_gap.py --pooled RUN.json [RUN.json ...]
      (the difference over every document of the runs together, with its interval)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from ner_core.metrics import PRF, bootstrap_interval, pooled


def per_document(ids: Sequence[str], documents: Sequence[PRF], sentences: Sequence[PRF], ends: Sequence[int]) -> list:
    """Each document's counts and its sentences' (``sentences[previous end:end]``), as JSON."""
    starts = [0, *ends[:-1]]
    return [
        {"id": i, "documents": _counts(d), "sentences": _counts(pooled(sentences[a:b]))}
        for i, d, a, b in zip(ids, documents, starts, ends, strict=True)
    ]


def gap(documents: list[dict], idx: Iterable[int]) -> float:
    """The documents' pooled F1 minus their sentences', in points, over documents ``idx``."""
    idx = list(idx)
    return windowed_f1(documents, idx) - _pooled_f1(documents, idx, "sentences")


def windowed_f1(documents: list[dict], idx: Iterable[int]) -> float:
    """The documents' pooled F1 through the windowed engine, in points, over documents ``idx``."""
    return _pooled_f1(documents, idx, "documents")


def gap_interval(documents: list[dict]) -> list[float]:
    """95% interval of ``gap`` over all documents."""
    return list(bootstrap_interval(partial(gap, documents), len(documents)))


def compare(first: dict[str, list], second: dict[str, list]) -> dict:
    """Per set (or language) of both runs: each run's difference, and the first's minus the
    second's with its interval, the same documents resampled for both; likewise the first's
    windowed F1 minus the second's (is the first model better on the documents themselves?)."""
    out = {}
    for name in sorted(set(first) & set(second)):
        a, b = first[name], second[name]
        if [d["id"] for d in a] != [d["id"] for d in b]:
            raise ValueError(f"{name}: the two runs scored different documents")
        everything = range(len(a))
        out[name] = {
            "documents": len(a),
            "first": gap(a, everything),
            "second": gap(b, everything),
            "difference": _gap_difference(a, b, everything),
            "difference_interval": list(bootstrap_interval(partial(_gap_difference, a, b), len(a))),
            "windowed_difference": _windowed_difference(a, b, everything),
            "windowed_difference_interval": list(bootstrap_interval(partial(_windowed_difference, a, b), len(a))),
        }
    return out


def pooled_gap(runs: Iterable[dict]) -> dict:
    """The difference over every document of ``runs`` together (several languages, say)."""
    documents = [d for run in runs for group in documents_of(run).values() for d in group]
    return {
        "documents": len(documents),
        "gap": gap(documents, range(len(documents))),
        "interval": gap_interval(documents),
    }


def documents_of(run: dict) -> dict[str, list]:
    """The per-document counts of a run of either script, by language or set."""
    groups = run.get("docs") or run.get("sets") or {}
    return {name: g["per_document"] for name, g in groups.items() if g.get("per_document")}


def _pooled_f1(documents: list[dict], idx: Iterable[int], side: str) -> float:
    return 100 * pooled(PRF(**documents[i][side]) for i in idx).f1


def _gap_difference(first: list[dict], second: list[dict], idx: Sequence[int]) -> float:
    return gap(first, idx) - gap(second, idx)


def _windowed_difference(first: list[dict], second: list[dict], idx: Sequence[int]) -> float:
    return windowed_f1(first, idx) - windowed_f1(second, idx)


def _counts(prf: PRF) -> dict:
    return {"tp": prf.tp, "fp": prf.fp, "fn": prf.fn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN.json")
    parser.add_argument("--pooled", action="store_true", help="every document of the runs together")
    args = parser.parse_args()
    runs = [json.loads(Path(f).read_text()) for f in args.runs]
    if args.pooled:
        row = pooled_gap(runs)
        low, high = row["interval"]
        print(f"{row['documents']} documents: {row['gap']:+.2f} (95% interval {low:+.2f} to {high:+.2f})")
        return
    if len(runs) != 2:
        parser.error("give two runs to compare, or --pooled")
    first, second = (documents_of(run) for run in runs)
    for name, row in compare(first, second).items():
        low, high = row["difference_interval"]
        w_low, w_high = row["windowed_difference_interval"]
        print(
            f"{name}: documents against sentences {row['first']:+.2f} and {row['second']:+.2f} over "
            f"{row['documents']} documents, difference {row['difference']:+.2f} (95% interval {low:+.2f} to "
            f"{high:+.2f}); windowed F1 {row['windowed_difference']:+.2f} ({w_low:+.2f} to {w_high:+.2f})"
        )


if __name__ == "__main__":
    main()
