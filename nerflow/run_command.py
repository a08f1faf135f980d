"""``nerflow run``: the extract-entities flow with a progress bar and a closing summary.

Kept apart from :mod:`nerflow.cli` so that ``nerflow version`` never imports Prefect, Polars
or torch.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, TextIO

from nerflow.etl.markdown import plural

__all__ = ["run_extract", "render_summary"]


def render_summary(summary: Any) -> str:
    """The closing summary of a run (a :class:`nerflow.etl.report.RunSummary`) as text."""
    s = summary
    lines = [
        f"documents   {s.docs_in:,} read: {s.docs_ok:,} annotated, {s.docs_empty:,} empty, "
        f"{s.docs_quarantined:,} quarantined",
        f"objects     {s.objects_listed:,} listed: {s.objects_processed:,} processed in {plural(s.batches, 'batch', 'batches')}, "
        f"{s.objects_skipped:,} already done, {s.objects_ignored:,} ignored, {s.objects_superseded:,} reprocessed "
        "after a change",
    ]
    if s.quarantine_reasons:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in s.quarantine_reasons.items())
        lines.append(f"quarantine  {reasons}")
    lines.append(f"entities    {s.entities:,}")
    if s.entities:
        langs = sorted(s.entities_by_lang)
        width = max(5, *(len(label) for label in s.entities_by_label))
        header = f"  {'label':<{width}} " + " ".join(f"{lang:>7}" for lang in langs) + f" {'total':>8}"
        lines.append(header)
        for label, by_lang in s.entities_by_label_lang.items():
            cells = " ".join(f"{by_lang.get(lang, 0):>7,}" for lang in langs)
            lines.append(f"  {label:<{width}} {cells} {s.entities_by_label[label]:>8,}")
        cells = " ".join(f"{s.entities_by_lang[lang]:>7,}" for lang in langs)
        lines.append(f"  {'total':<{width}} {cells} {s.entities:>8,}")
    if s.span_filter != "off":
        lines.append(f"span filter {s.span_filter}: {100 * s.share_scored:.1f}% of {s.spans:,} candidate spans scored")
    lines.append(
        f"throughput  {s.docs_per_second:,.1f} documents/s, {s.chars_per_second:,.0f} characters/s "
        f"({s.seconds:,.1f} s on {', '.join(s.devices)}; model {s.model_id or '-'})"
    )
    lines.append("tables")
    for name, uri in s.tables.items():
        lines.append(f"  {name:<18} {uri}")
    return "\n".join(lines)


def run_extract(
    params: dict,
    *,
    progress: bool = True,
    out: TextIO | None = None,
    flow: str = "extract-entities",
    verbose: bool = False,
) -> int:
    """Run the flow with ``params`` (``ExtractParams`` fields); returns an exit status.

    A failed run ends with one line on stderr, ``nerflow run: <the error>``, and status 1;
    the traceback only when ``verbose`` (the run record and the server's logs keep it too).

    Args:
        flow: ``"extract-entities"``, or ``"backfill"`` (:func:`flows.backfill.backfill`).
        verbose: Print the traceback of a failed run.

    Prefect's ephemeral mode (a temporary local API) is used unless ``PREFECT_API_URL`` is set.
    """
    from pydantic import ValidationError

    from flows.extract_entities import ExtractParams, ProgressEvent, extract_entities, progress_listener
    from ner_core.errors import NerflowError
    from nerflow import storage
    from nerflow.errors import describe_error

    out = out or sys.stdout
    command = "nerflow backfill" if flow == "backfill" else "nerflow run"
    if flow == "backfill":
        from flows.backfill import backfill as run_flow
    else:
        run_flow = extract_entities
    try:
        parsed = ExtractParams(**params)
    except ValidationError as e:
        print(f"{command}: invalid arguments:\n{e}", file=sys.stderr)
        return 2
    try:
        storage.require_input(*parsed.source().open())
    except NerflowError as e:
        # Before Prefect's server starts and the model loads; the flow checks again (a
        # deployment's runs do not come through here).
        print(f"{command}: {describe_error(e)}", file=sys.stderr)
        return 1
    api = os.environ.get("PREFECT_API_URL")
    print(f"prefect: {'API at ' + api if api else 'ephemeral mode (set PREFECT_API_URL to use a server)'}", file=out)

    bar = None
    docs = entities = 0  # the counts the bar shows, since it started

    def on_event(event: ProgressEvent) -> None:
        nonlocal bar, docs, entities
        if not progress:
            return
        from tqdm import tqdm

        if event.kind == "planned" and event.plan is not None:
            bar = tqdm(
                total=event.plan.bytes, unit="B", unit_scale=True, desc="documents", file=sys.stderr, dynamic_ncols=True
            )
            docs = entities = 0
        elif event.kind == "batch" and event.report is not None and bar is not None:
            bar.update(event.report.bytes)
            docs += event.report.docs_in
            entities += event.report.entities
            bar.set_postfix(docs=docs, entities=entities, refresh=False)

    try:
        with progress_listener(on_event):
            summary = run_flow(parsed)
    except Exception as e:  # noqa: BLE001 (any failure of the run: one line, the traceback on request)
        if bar is not None:
            bar.close()
            bar = None
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"{command}: {describe_error(e)}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(render_summary(summary), file=out)
    return 0
