"""The ``evaluate-model`` flow: a model and labelled data sets in, strict scores out.

load the model  ->  for each data set: run the engine, score strictly
->  write JSON and a markdown table
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field

from flows.extract_params import StorageOptions
from ner_core import EngineConfig

__all__ = ["EvaluateParams", "evaluate_model", "render_markdown"]


class EvaluateParams(BaseModel):
    """What to evaluate and how."""

    # A refused storage option may hold a secret: errors must not echo the input.
    model_config = ConfigDict(hide_input_in_errors=True)

    model: str = Field("default", description="Model reference: 'default', a directory, an fsspec URI or a hub id")
    data: list[str] = Field(description="Labelled JSONL files (sentences or documents); globs allowed")
    label_map: dict[str, str | None] = Field(
        default_factory=dict, description="Rename the model's labels before scoring; null ignores a label"
    )
    gold_label_map: dict[str, str | None] = Field(default_factory=dict, description="The same for the data's labels")
    ignore_labels: list[str] = Field(default_factory=list, description="Labels left out of gold and predictions")
    max_records: int | None = Field(None, gt=0, description="First N records of each file")
    as_written: bool = Field(
        False, description="Score sentence data rejoined as running text is written ('(EFE).', not '( EFE ) .')"
    )
    precision: str = Field("exact", description="'exact' or 'fast'")
    span_filter: str = Field(
        EngineConfig.span_filter,
        description="Which candidate spans are scored (ner_core.EngineConfig.span_filter): by default as a run scores "
        "them; 'off' scores every span (exact mode's work)",
    )
    space_punctuation: bool = Field(
        True, description="Read text with punctuation set apart from words, as the engine does by default"
    )
    trim_unpaired_quotes: bool = Field(
        True, description="Take unpaired quotation marks off entity edges, as the engine does by default"
    )
    window_tokens: int | None = None
    output: str | None = Field(None, description="Write <output>.json and <output>.md")
    storage_options: StorageOptions = Field(default_factory=dict)


@task(name="score-data-set")
def score_data_set(params: EvaluateParams, uri: str) -> dict:
    from ner_core import load_model
    from ner_core.evaluation import evaluate_records
    from ner_core.labelled import as_written, read_labelled

    model = load_model(params.model)
    records = list(read_labelled(uri, storage_options=params.storage_options, limit=params.max_records))
    if params.as_written:
        records = [as_written(r) for r in records]
    report = evaluate_records(
        model,
        records,
        name=Path(uri).name.split(".", 1)[0],
        label_map=dropping(params.label_map, params.ignore_labels),
        gold_label_map=dropping(params.gold_label_map, params.ignore_labels),
        engine_config=EngineConfig(
            precision=params.precision,
            window_tokens=params.window_tokens,
            span_filter=params.span_filter,
            space_punctuation=params.space_punctuation,
            trim_unpaired_quotes=params.trim_unpaired_quotes,
        ),
    )
    out = report.as_dict()
    out["uri"] = uri
    out["space_punctuation"] = params.space_punctuation
    out["trim_unpaired_quotes"] = params.trim_unpaired_quotes
    out["kind"] = "documents"
    if records and records[0].tokens is not None:
        out["kind"] = "sentences, as written" if params.as_written else "sentences"
    get_run_logger().info("%s: strict micro F1 %.4f over %d texts", out["name"], out["micro"]["f1"], out["texts"])
    return out


def dropping(mapping: dict[str, str | None], ignore: list[str]) -> dict[str, str | None]:
    """``mapping`` that also drops every label in ``ignore``, named so before or after renaming
    ("MISC=ORG" with ORG ignored drops MISC too: the scores hold no ORG row)."""
    ignored = set(ignore)
    out = {src: None if src in ignored or dst in ignored else dst for src, dst in mapping.items()}
    for label in ignored:
        out.setdefault(label, None)
    return out


def expand(uris: list[str], storage_options: dict | None = None) -> list[str]:
    """Data URIs with globs expanded, in order."""
    from ner_core.labelled import expand_uri

    return [uri for pattern in uris for _, uri in expand_uri(pattern, storage_options=storage_options)]


def render_markdown(model: str, reports: list[dict]) -> str:
    """One table row per data set: strict P/R/F1 and F1 per label."""
    labels = sorted({label for r in reports for label in r["per_label"]})
    lines = [
        f"Strict entity-level scores of `{model}` (exact span and label).",
        "",
        "| data set | kind | texts | P | R | F1 | " + " | ".join(f"F1 {label}" for label in labels) + " |",
        "|---|---|--:|--:|--:|--:|" + "--:|" * len(labels),
    ]
    for r in reports:
        m = r["micro"]
        per = [f"{100 * r['per_label'][label]['f1']:.1f}" if label in r["per_label"] else "–" for label in labels]
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['texts']} | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | "
            f"**{100 * m['f1']:.1f}** | " + " | ".join(per) + " |"
        )
    languages = [(r["name"], lang, s) for r in reports for lang, s in r["per_language"].items()]
    if any(len(r["per_language"]) > 1 for r in reports):
        lines += ["", "| data set | language | P | R | F1 | support |", "|---|---|--:|--:|--:|--:|"]
        for name, lang, s in languages:
            m = s["micro"]
            lines.append(
                f"| {name} | {lang} | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | "
                f"{100 * m['f1']:.1f} | {m['support']} |"
            )
    return "\n".join(lines) + "\n"


@flow(name="evaluate-model", log_prints=True)
def evaluate_model(params: EvaluateParams) -> dict:
    """Score a model on each data set with the full windowed engine."""
    reports = [score_data_set(params, uri) for uri in expand(params.data, params.storage_options)]
    result = {"model": params.model, "params": params.model_dump(), "reports": reports}
    markdown = render_markdown(params.model, reports)
    if params.output:
        out = Path(params.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return result
