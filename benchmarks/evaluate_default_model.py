"""The default model's strict F1 on the gold test sets, and windowed documents against the
sentences they were built from.

Every text goes through the full engine (``ner_core.evaluation``; exact precision). Scores
are strict entity-level F1 on PER/ORG/LOC: MISC is left out of gold and predictions, as the
targets (the MultiNERD paper's models, which have no MISC class) are defined.

* Test sets: the benchmarks of the issue's targets (CoNLL-02 es/nl, BSNLP pl/ru, UNER PUD
  de/en/pt/ru/zh), plus the other gold test sets with ``--all``.
* Documents: ``docs/docs_<lang>.jsonl.gz`` run as long documents (windows, overlap, merge),
  against the document's own lines run one by one: the sentences of ``test/`` it was built
  from, character for character as the document writes them (Chinese without any space).

Run:  python benchmarks/evaluate_default_model.py [--model default] [--docs-per-lang 2] [--all] [--fast-check 100]
      [--max-sentences N] [--sets conll02_es,...|none] [--doc-langs es,nl] [--window-tokens N] [--overlap-tokens N]
Writes benchmarks/results/default_model_eval.json and its section of docs/model-card.md
(``--report-only`` re-renders that section from the JSON). An exploratory run (``--sets``,
``--doc-langs``, ``--window-tokens``, ``--overlap-tokens``) writes only the JSON named by ``--out``; the card
shows the standard settings.

Twenty documents are a small sample, so each language's difference comes with a 95% bootstrap
interval over its documents, and the per-document counts are kept in the JSON for
``benchmarks/document_gap.py`` (two models on the same documents).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _common import NER_DATA as DATA
from _common import ROOT, cpu_description, sibling

document_gap = sibling("document_gap")

RESULTS = ROOT / "benchmarks" / "results"
CARD = ROOT / "docs" / "model-card.md"
BEGIN, END = "<!-- default_model_eval:begin -->", "<!-- default_model_eval:end -->"

# Data set -> the target strict F1 (PER/ORG/LOC) of the issue; None: reported, no target.
TARGETS = {
    "conll02_es": 78.2,
    "conll02_nl": 77.8,
    "bsnlp_pl": 62.9,
    "bsnlp_ru": 67.4,
    "uner_de_pud": 75.0,
    "uner_en_pud": 75.0,
    "uner_pt_pud": 75.0,
    "uner_ru_pud": 75.0,
    "uner_zh_pud": 70.0,
}
OTHER_SETS = [
    "germeval2014_de",
    "uner_en_ewt",
    "kind_it_wikinews",
    "kind_it_fiction",
    "kind_it_degasperi",
    "uner_pt_bosque",
    "uner_zh_gsdsimp",
]
DOC_LANGS = ["de", "en", "es", "it", "nl", "pt", "ru", "zh"]
IGNORE = {"MISC": None}
_DOC_ID = re.compile(r"^doc:(?P<lang>[a-z]+):\d+:(?P<file>[^:]+):test:(?P<a>\d+)-(?P<b>\d+)$")


def _report(rep) -> dict:
    d = rep.as_dict()
    return {
        "texts": d["texts"],
        "words": d["words"],
        "seconds": d["seconds"],
        "micro": d["micro"],
        "per_label": dict(d["per_label"].items()),
    }


def fast_agreement(model, records, name: str) -> dict:
    """Exact against fast precision on the same sentences: F1 of each, and how many of the
    exact entities fast mode reproduces (span, label) — issue 2's fast-mode question, asked
    of a trained model."""
    from ner_core import EngineConfig, NerEngine
    from ner_core.evaluation import evaluate_records, predict_spans

    out = {}
    preds = {}
    for precision in ("exact", "fast"):
        config = EngineConfig(precision=precision, span_filter="off")  # the model's own figures: every span
        rep = evaluate_records(model, records, name=name, label_map=IGNORE, gold_label_map=IGNORE, engine_config=config)
        preds[precision] = predict_spans(NerEngine(model, config), records)
        out[precision] = {"f1": rep.scores.micro.f1, "seconds": rep.seconds, "words": rep.words}
    same = sum(len(set(a) & set(b)) for a, b in zip(preds["exact"], preds["fast"]))
    total = sum(len(a) for a in preds["exact"])
    out["entities_agreeing"] = same / total if total else 1.0
    from ner_core.inference import cpu_fast_kind

    out["fast_kind"] = cpu_fast_kind()
    return out


def evaluate(
    model_ref: str,
    *,
    docs_per_lang: int,
    all_sets: bool,
    fast_check: int = 0,
    max_sentences: int = 0,
    sets: list[str] | None = None,
    doc_config=None,
    doc_langs: list[str] | None = None,
) -> dict:
    """``sets`` replaces the test sets scored; ``doc_config`` (an ``EngineConfig``) is the
    windowing of the long documents (their sentences always run with the defaults)."""
    from ner_core import EngineConfig, load_model
    from ner_core.evaluation import evaluate_records
    from ner_core.labelled import read_labelled, split_lines

    t0 = time.perf_counter()
    model = load_model(model_ref, device="cpu")
    load_seconds = time.perf_counter() - t0
    out: dict = {
        "model": model_ref,
        "model_id": model.model_id,
        "load_seconds": round(load_seconds, 1),
        "machine": {"cpu": cpu_description(), "cores": os.cpu_count()},
        "scoring": "strict entity-level, PER/ORG/LOC (MISC ignored on both sides), exact precision",
        "space_punctuation": EngineConfig().space_punctuation,
        "trim_unpaired_quotes": EngineConfig().trim_unpaired_quotes,
        "test": {},
        "docs": {},
        "max_sentences": max_sentences or None,
        "doc_windows": {
            "window_tokens": getattr(doc_config, "window_tokens", None),
            "overlap_tokens": getattr(doc_config, "overlap_tokens", None),
        },
    }
    if sets is None:
        sets = list(TARGETS) + (OTHER_SETS if all_sets else [])
    for name in sets:
        records = list(read_labelled(str(DATA / "test" / f"{name}.jsonl.gz"), limit=max_sentences or None))
        rep = evaluate_records(model, records, name=name, label_map=IGNORE, gold_label_map=IGNORE)
        out["test"][name] = {**_report(rep), "target_f1": TARGETS.get(name)}
        print(f"{name}: F1 {100 * rep.scores.micro.f1:.1f} ({rep.texts} sentences, {rep.seconds:.0f}s)", flush=True)

    if fast_check:
        records = []
        for name in TARGETS:
            records += list(read_labelled(str(DATA / "test" / f"{name}.jsonl.gz"), limit=fast_check))
        out["fast_check"] = fast_agreement(model, records, "targets")
        print(f"fast check: {out['fast_check']}", flush=True)

    for lang in (doc_langs or DOC_LANGS) if docs_per_lang else []:
        docs = list(read_labelled(str(DATA / "docs" / f"docs_{lang}.jsonl.gz")))[:docs_per_lang]
        sentences = []
        ends = []
        for d in docs:
            m = _DOC_ID.match(d.id)
            if m is None:
                raise ValueError(f"unexpected document id {d.id}")
            lines = split_lines(d)
            if len(lines) != int(m["b"]) - int(m["a"]) + 1:
                raise ValueError(f"{d.id}: {len(lines)} lines, not the sentences {m['a']}-{m['b']}")
            sentences += lines
            ends.append(len(sentences))
        doc_rep = evaluate_records(
            model, docs, name=f"docs_{lang}", label_map=IGNORE, gold_label_map=IGNORE, engine_config=doc_config
        )
        sen_rep = evaluate_records(model, sentences, name=f"sentences_{lang}", label_map=IGNORE, gold_label_map=IGNORE)
        counts = document_gap.per_document([d.id for d in docs], doc_rep.per_text, sen_rep.per_text, ends)
        out["docs"][lang] = {
            "documents": _report(doc_rep),
            "sentences": _report(sen_rep),
            "delta_f1": 100 * (doc_rep.scores.micro.f1 - sen_rep.scores.micro.f1),
            "delta_f1_interval": document_gap.gap_interval(counts),
            "per_document": counts,
        }
        print(
            f"docs {lang}: windowed F1 {100 * doc_rep.scores.micro.f1:.1f} vs sentences "
            f"{100 * sen_rep.scores.micro.f1:.1f} ({len(docs)} docs, {len(sentences)} sentences)",
            flush=True,
        )
    return out


def render_markdown(r: dict) -> str:
    lines = [
        f"Model `{r['model']}` (`{r['model_id']}`); {r['scoring']}. "
        "Command: `python benchmarks/evaluate_default_model.py`; raw figures in "
        "`benchmarks/results/default_model_eval.json`.",
        "",
        *(
            [
                f"Only the first {r['max_sentences']} sentences of each test set were scored "
                f"(`--max-sentences {r['max_sentences']}`): the figures are estimates of the full test sets' F1.",
                "",
            ]
            if r.get("max_sentences")
            else []
        ),
        "| test set | sentences | P | R | F1 | target | PER | ORG | LOC |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, t in r["test"].items():
        m = t["micro"]
        target = t.get("target_f1")
        verdict = "" if target is None else (f"{target} ✔" if 100 * m["f1"] > target else f"{target} ✘")
        per = [f"{100 * t['per_label'][k]['f1']:.1f}" if k in t["per_label"] else "–" for k in ("PER", "ORG", "LOC")]
        lines.append(
            f"| {name} | {t['texts']} | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | "
            f"**{100 * m['f1']:.1f}** | {verdict} | " + " | ".join(per) + " |"
        )
    fc = r.get("fast_check")
    if fc:
        lines += [
            "",
            f"Fast precision ({fc['fast_kind']} on this CPU) against exact on the first sentences of each target "
            f"set: F1 {100 * fc['fast']['f1']:.1f} vs {100 * fc['exact']['f1']:.1f}, "
            f"{100 * fc['entities_agreeing']:.1f}% of the exact entities reproduced; "
            f"{fc['fast']['words'] / fc['fast']['seconds']:.0f} vs {fc['exact']['words'] / fc['exact']['seconds']:.0f} words/s.",
        ]
    if r["docs"]:
        lines += [
            "",
            "Long documents through the windowed engine against the same sentences one by one "
            "(target: windowed at most 1 F1 point below)"
            + "".join(f", {k.replace('_', ' ')} {v}" for k, v in (r.get("doc_windows") or {}).items() if v is not None)
            + ":",
            "",
            "| lang | documents | words | windowed F1 | sentence F1 | difference | 95% interval |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for lang, d in r["docs"].items():
            ok = "✔" if d["delta_f1"] >= -1.0 else "✘"
            interval = d.get("delta_f1_interval")
            lines.append(
                f"| {lang} | {d['documents']['texts']} | {d['documents']['words']} | "
                f"{100 * d['documents']['micro']['f1']:.1f} | {100 * d['sentences']['micro']['f1']:.1f} | "
                f"{d['delta_f1']:+.1f} {ok} | "
                + (f"{interval[0]:+.1f} to {interval[1]:+.1f}" if interval else "–")
                + " |"
            )
    return "\n".join(lines) + "\n"


def write_card_section(markdown: str) -> None:
    text = CARD.read_text() if CARD.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    CARD.write_text(f"{head}{BEGIN}\n{markdown}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--docs-per-lang", type=int, default=2, help="documents per language (0: none)")
    parser.add_argument("--all", action="store_true", help="also the gold test sets without a target")
    parser.add_argument(
        "--fast-check", type=int, default=100, help="sentences per target set scored in fast precision too (0: skip)"
    )
    parser.add_argument("--max-sentences", type=int, default=0, help="first N sentences of each test set (0: all)")
    parser.add_argument("--out", default=str(RESULTS / "default_model_eval.json"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--sets", help="comma-separated test sets instead of the targets' ('none': documents only)")
    parser.add_argument(
        "--doc-langs", help=f"comma-separated languages of the long documents (default: {','.join(DOC_LANGS)})"
    )
    parser.add_argument("--window-tokens", type=int, help="window of the long documents (default: the model's)")
    parser.add_argument(
        "--overlap-tokens", type=int, help="overlap of the long documents' windows (default: an eighth)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    exploratory = any(x is not None for x in (args.sets, args.window_tokens, args.overlap_tokens, args.doc_langs))
    if exploratory and out == RESULTS / "default_model_eval.json":
        parser.error("--sets, --doc-langs, --window-tokens and --overlap-tokens need their own --out")
    doc_langs = args.doc_langs.split(",") if args.doc_langs else None
    if doc_langs and set(doc_langs) - set(DOC_LANGS):
        parser.error(f"--doc-langs: no documents for {sorted(set(doc_langs) - set(DOC_LANGS))}")
    if args.report_only:
        result = json.loads(out.read_text())
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        from ner_core import EngineConfig

        sets = None if not args.sets else [] if args.sets == "none" else args.sets.split(",")
        doc_config = EngineConfig(
            window_tokens=args.window_tokens, overlap_tokens=args.overlap_tokens, span_filter="off"
        )
        result = evaluate(
            args.model,
            docs_per_lang=args.docs_per_lang,
            all_sets=args.all,
            fast_check=args.fast_check,
            max_sentences=args.max_sentences,
            sets=sets,
            doc_config=doc_config,
            doc_langs=doc_langs,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    markdown = render_markdown(result)
    if not exploratory:
        write_card_section(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
