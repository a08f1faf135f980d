"""What a run of extract-entities shows people: its summary page, its top entities and its chart.

Pure rendering, no Prefect and no I/O: :mod:`tasks.reporting` publishes the results as
Prefect artifacts and writes the chart next to the run's outputs, under
``_manifest/reports/run-<run_id>/`` (:func:`report_dir`). Nothing reads that directory back:
``nerflow validate`` and ``nerflow warehouse`` read only the tables' directories and the files
the manifest names, and input listing skips underscore names.
"""

from __future__ import annotations

import base64
import io
import urllib.parse
from collections.abc import Sequence

from nerflow import storage
from nerflow.etl.markdown import plural, table_cell
from nerflow.etl.report import RunSummary, TopEntity, render_contract_report

__all__ = [
    "CHART_NAME",
    "CHART_LANGUAGES",
    "report_dir",
    "progress_percent",
    "render_run_summary",
    "top_entity_rows",
    "entity_chart_png",
]

CHART_NAME = "entities.png"
"""File name of the chart of entity counts by label and language."""

CHART_LANGUAGES = 12
"""Languages the chart shows one by one; the rest are added up as ``other``."""


def report_dir(root: str, run_id: str) -> str:
    """Where a run's report files go: ``<root>/_manifest/reports/run-<run_id>``."""
    return storage.join(root, "_manifest", "reports", f"run-{run_id}")


def progress_percent(done_bytes: int, total_bytes: int, done_batches: int, total_batches: int) -> float:
    """How far a run is, in percent: by input bytes, by batches when the plan has no bytes.

    Returns:
        A value in [0, 100]; 100 when there is nothing to do.
    """
    if total_bytes > 0:
        share = done_bytes / total_bytes
    elif total_batches > 0:
        share = done_batches / total_batches
    else:
        share = 1.0
    return round(100.0 * min(max(share, 0.0), 1.0), 2)


def _href(uri: str) -> str:
    # A local path becomes a file:// URL; any URL is percent-encoded enough for a markdown link.
    if "://" not in uri:
        uri = "file://" + (uri if uri.startswith("/") else "/" + uri)
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{urllib.parse.quote(rest, safe='/:@%=&?~+')}"


def _languages(summary: RunSummary, limit: int) -> tuple[list[str], list[str]]:
    """``(languages shown, languages added up as other)``, most entities first."""
    ranked = sorted(summary.entities_by_lang, key=lambda lang: (-summary.entities_by_lang[lang], lang))
    return ranked[:limit], ranked[limit:]


def _per_column(by_lang: dict[str, int], shown: Sequence[str], other: Sequence[str]) -> list[int]:
    """Counts of the shown languages, then the sum of the others (when there are others)."""
    return [by_lang.get(lang, 0) for lang in shown] + ([sum(by_lang.get(x, 0) for x in other)] if other else [])


def render_run_summary(
    summary: RunSummary,
    contract_results: dict,
    *,
    status: str,
    error: str | None = None,
    chart_uri: str | None = None,
    chart_png: bytes | None = None,
    top_entities_key: str | None = None,
    top_entities_url: str | None = None,
) -> str:
    """The run's summary page as markdown.

    Documents in, annotated, empty and quarantined; objects; throughput; entities by label and
    language (a table, and a link to the chart); then the contract report's sections
    (reconciliation, contract results, quarantine by reason) as
    :func:`nerflow.etl.report.render_contract_report` renders them.

    Args:
        summary: The run's counts (of the batches committed).
        contract_results: As :func:`nerflow.etl.validating.contract_results` returns them.
        status: ``"completed"`` or ``"failed"``.
        error: Why the run failed.
        chart_uri: Where the chart was written; ``None`` when there is none.
        chart_png: The chart itself, embedded in the page (a browser will not open the
            ``file://`` or ``s3://`` URI from the Prefect UI).
        top_entities_key: Key of the table artifact of top entities, to point to.
        top_entities_url: Its page in the Prefect UI, to link to (when the UI's address is known).
    """
    s = summary
    label = f" ({table_cell(s.run_label)})" if s.run_label else ""
    lines = [
        f"# extract-entities {status}",
        "",
        f"Run `{s.run_id}`{label}, model `{s.model_id or '-'}` on {', '.join(s.devices) or '-'}: "
        f"{plural(s.batches, 'batch', 'batches')} committed in {s.seconds:,.1f} s.",
        "",
        f"Input `{table_cell(s.input_uri)}`, output `{table_cell(s.output_uri)}`.",
    ]
    if error:
        lines += ["", f"**Failed:** {table_cell(error)}"]
    lines += [
        "",
        "## Documents",
        "",
        "| documents | count |",
        "|---|---:|",
        f"| in (records read) | {s.docs_in:,} |",
        f"| annotated (ok) | {s.docs_ok:,} |",
        f"| empty | {s.docs_empty:,} |",
        f"| quarantined | {s.docs_quarantined:,} |",
        "",
        f"Objects: {s.objects_listed:,} listed, {s.objects_processed:,} processed, {s.objects_skipped:,} already "
        f"done, {s.objects_ignored:,} ignored (no reader), {s.objects_superseded:,} reprocessed after a change.",
        "",
        "## Throughput",
        "",
        "| documents/s | characters/s | seconds | devices | span filter | candidate spans scored |",
        "|---:|---:|---:|---|---|---:|",
        f"| {s.docs_per_second:,.2f} | {s.chars_per_second:,.0f} | {s.seconds:,.1f} | {', '.join(s.devices) or '-'} "
        f"| {table_cell(s.span_filter)} | {100 * s.share_scored:.1f}% of {s.spans:,} |",
        "",
        "## Entities by label and language",
        "",
    ]
    if s.entities:
        shown, other = _languages(s, CHART_LANGUAGES)
        columns = shown + (["other"] if other else [])
        lines += [
            "| label | " + " | ".join(table_cell(c) for c in columns) + " | total |",
            "|---|" + "---:|" * (len(columns) + 1),
        ]
        for name, by_lang in s.entities_by_label_lang.items():
            cells = " | ".join(f"{n:,}" for n in _per_column(by_lang, shown, other))
            lines.append(f"| {table_cell(name)} | {cells} | {s.entities_by_label[name]:,} |")
        cells = " | ".join(f"{n:,}" for n in _per_column(s.entities_by_lang, shown, other))
        lines.append(f"| **total** | {cells} | **{s.entities:,}** |")
        if other:
            lines += ["", f"other: {', '.join(table_cell(x) for x in other)}."]
    else:
        lines.append("No entities were written.")
    lines.append("")
    if chart_png:
        encoded = base64.b64encode(chart_png).decode("ascii")
        lines.append(f"![Entities by label and language](data:image/png;base64,{encoded})")
        if chart_uri:
            lines += ["", f"The chart is also beside the outputs: `{table_cell(chart_uri)}`."]
    elif chart_uri:
        lines.append(f"Chart: [{CHART_NAME}]({_href(chart_uri)}) (`{table_cell(chart_uri)}`).")
    else:
        lines.append("No chart: nothing to draw.")
    if s.top_entities and top_entities_key:
        artifact = f"[{top_entities_key}]({top_entities_url})" if top_entities_url else f"`{top_entities_key}`"
        lines += ["", f"Most frequent entity texts per label: the table artifact {artifact}."]
    lines += ["", render_contract_report(s, contract_results, status=status, error=error, heading=False)]
    return "\n".join(lines).rstrip("\n") + "\n"


def top_entity_rows(top: Sequence[TopEntity]) -> list[dict[str, object]]:
    """Rows of the top-entities table: ``label``, ``rank`` (1 = most frequent in the label),
    ``text``, ``count`` (entities), ``documents``; by label, then rank.

    Args:
        top: As :attr:`RunSummary.top_entities` holds them (by label, then rank).
    """
    rows: list[dict[str, object]] = []
    rank: dict[str, int] = {}
    for e in top:
        rank[e.label] = rank.get(e.label, 0) + 1
        rows.append({"label": e.label, "rank": rank[e.label], "text": e.text, "count": e.count, "documents": e.docs})
    return rows


def entity_chart_png(summary: RunSummary, *, dpi: int = 100) -> bytes | None:
    """A bar chart of entity counts by label, each bar stacked by language, as PNG bytes.

    Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend, safe
    in worker threads); matplotlib is imported here, only when a chart is drawn.

    Returns:
        The PNG, or ``None`` when the run wrote no entities.
    """
    if not summary.entities:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = list(summary.entities_by_label)
    shown, other = _languages(summary, CHART_LANGUAGES)
    per_label = [_per_column(summary.entities_by_label_lang[label], shown, other) for label in labels]
    names = shown + (["other"] if other else [])
    series = [(name, [row[i] for row in per_label]) for i, name in enumerate(names)]
    figure = Figure(figsize=(max(6.0, 1.1 * len(labels) + 3.0), 4.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0] * len(labels)
    for (lang, counts), colour in zip(series, _colours(len(series))):
        axes.bar(labels, counts, bottom=bottom, label=lang, color=colour, edgecolor="white", linewidth=0.5)
        bottom = [b + n for b, n in zip(bottom, counts)]
    for x, total in enumerate(bottom):
        axes.annotate(
            f"{total:,}", (x, total), ha="center", va="bottom", xytext=(0, 2), textcoords="offset points", fontsize=8
        )
    axes.set_ylabel("entities")
    axes.set_title(
        f"Entities by label and language: {summary.entities:,} in {summary.docs_ok:,} annotated documents", fontsize=10
    )
    axes.set_ylim(0, max(bottom) * 1.12)  # room for the totals above the bars
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(
        title="language", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False
    )
    buf = io.BytesIO()
    # No "Software" stamp: the same counts give the same bytes whatever matplotlib wrote them.
    figure.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]
