"""Counts of a batch and of a run: what the manifest records and the command line prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from nerflow.etl.markdown import plural, table_cell
from nerflow.etl.tables import BatchTables

__all__ = [
    "BATCH_TOP_K",
    "RUN_TOP_K",
    "TopEntity",
    "BatchReport",
    "RunSummary",
    "top_entities",
    "merge_top_entities",
    "batch_report",
    "summarise",
    "render_contract_report",
]

BATCH_TOP_K = 25
"""Entity texts a batch report keeps per label (its most frequent)."""

RUN_TOP_K = 10
"""Entity texts a run summary keeps per label."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TopEntity:
    """One of the most frequent entity texts of a label.

    Attributes:
        label: The entity label.
        text: The entity text, exactly as written to ``entities.text``.
        count: Rows of ``entities`` with this label and text.
        docs: Documents with at least one such row.
    """

    label: str
    text: str
    count: int
    docs: int


@dataclass(frozen=True, kw_only=True)
class BatchReport:
    """One committed batch.

    Attributes:
        batch_id: The batch.
        index: Its position in the run's plan.
        objects: Input objects.
        bytes: Input bytes.
        docs_in: Records read (== docs_ok + docs_empty + docs_quarantined).
        docs_ok: Documents annotated.
        docs_empty: Documents empty after normalisation.
        docs_quarantined: Records set aside, with a reason, in ``quarantine``.
        entities: Entities written.
        chars: Characters of the annotated (normalised) text.
        entity_counts: Entities per ``(label, lang)``.
        quarantine_reasons: Quarantined records per reason.
        files: Data files written, relative to the output root.
        device: Where the batch was annotated.
        annotate_seconds: Wall time of its annotation.
        spans: Candidate spans of its windows.
        spans_scored: Of those, the spans the model scored (a span filter prunes the rest).
        top_entities: The batch's :data:`BATCH_TOP_K` most frequent texts per label, by
            label then rank (a bounded sketch: a run adds these up instead of keeping every
            entity).
    """

    batch_id: str
    index: int
    objects: int
    bytes: int
    docs_in: int
    docs_ok: int
    docs_empty: int
    docs_quarantined: int
    entities: int
    chars: int
    entity_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    device: str = "cpu"
    annotate_seconds: float = 0.0
    spans: int = 0
    spans_scored: int = 0
    top_entities: tuple[TopEntity, ...] = ()


def _counter(table: pa.Table, columns: Sequence[str]) -> Counter:
    return Counter(zip(*(table.column(c).to_pylist() for c in columns)))


def _ranked(items: dict[tuple[str, str], tuple[int, int]], k: int) -> tuple[TopEntity, ...]:
    # Most rows first, then most documents, then text: the same input always ranks the same.
    ordered = sorted(items.items(), key=lambda kv: (kv[0][0], -kv[1][0], -kv[1][1], kv[0][1]))
    out: list[TopEntity] = []
    kept: Counter = Counter()
    for (label, text), (count, docs) in ordered:
        if kept[label] < k:
            kept[label] += 1
            out.append(TopEntity(label=label, text=text, count=count, docs=docs))
    return tuple(out)


def top_entities(entities: pa.Table, k: int = BATCH_TOP_K) -> tuple[TopEntity, ...]:
    """The ``k`` most frequent entity texts per label of one batch.

    Args:
        entities: Rows with at least ``doc_id``, ``text`` and ``label`` (:data:`ENTITIES`).
        k: Texts kept per label.

    Returns:
        By label, then most rows first (ties: most documents, then text).
    """
    if entities.num_rows == 0:
        return ()
    grouped = (
        entities.select(["label", "text", "doc_id"])
        .group_by(["label", "text"])
        .aggregate([("doc_id", "count"), ("doc_id", "count_distinct")])
    )
    rows = zip(
        grouped.column("label").to_pylist(),
        grouped.column("text").to_pylist(),
        grouped.column("doc_id_count").to_pylist(),
        grouped.column("doc_id_count_distinct").to_pylist(),
    )
    return _ranked({(label, text): (count, docs) for label, text, count, docs in rows}, k)


def merge_top_entities(parts: Sequence[Sequence[TopEntity]], k: int = RUN_TOP_K) -> tuple[TopEntity, ...]:
    """Add up the top entities of several batches and keep the ``k`` most frequent per label.

    A document belongs to one batch, so documents add up like rows. A text that missed a
    batch's top list is not counted for that batch: the counts are lower bounds, exact when no
    batch had more than :data:`BATCH_TOP_K` distinct texts of a label.
    """
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for part in parts:
        for e in part:
            count, docs = totals.get((e.label, e.text), (0, 0))
            totals[(e.label, e.text)] = (count + e.count, docs + e.docs)
    return _ranked(totals, k)


def batch_report(
    tables: BatchTables,
    files: Sequence[str],
    *,
    device: str,
    annotate_seconds: float,
    docs_in: int | None = None,
    spans: int = 0,
    spans_scored: int = 0,
) -> BatchReport:
    """The report of a batch from its tables.

    Args:
        tables: The batch's tables as committed.
        files: Data files written.
        device: Where it was annotated.
        annotate_seconds: Wall time of its annotation.
        spans: Candidate spans of its windows.
        spans_scored: Of those, the spans the model scored.
        docs_in: Records read, when known (validation reconciled it with the tables); else
            the rows of documents and quarantine.
    """
    docs = tables.documents
    status = Counter(docs.column("status").to_pylist())
    ok_chars = sum(
        n for n, s in zip(docs.column("n_chars").to_pylist(), docs.column("status").to_pylist()) if s == "ok"
    )
    reasons = Counter(r.split(":", 1)[0] for r in tables.quarantine.column("reason").to_pylist())
    return BatchReport(
        batch_id=tables.batch.batch_id,
        index=tables.batch.index,
        objects=len(tables.batch.objects),
        bytes=tables.batch.size,
        docs_in=docs.num_rows + tables.quarantine.num_rows if docs_in is None else docs_in,
        docs_ok=status.get("ok", 0),
        docs_empty=status.get("empty", 0),
        docs_quarantined=tables.quarantine.num_rows,
        entities=tables.entities.num_rows,
        chars=ok_chars,
        entity_counts=dict(_counter(tables.entities, ("label", "lang"))),
        quarantine_reasons=dict(reasons),
        files=tuple(files),
        device=device,
        annotate_seconds=annotate_seconds,
        spans=spans,
        spans_scored=spans_scored,
        top_entities=top_entities(tables.entities),
    )


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One run of the extract-entities flow.

    Attributes:
        run_id: Prefect flow run id.
        run_label: The caller's label, if any.
        input_uri: Where documents came from.
        output_uri: Where the tables are.
        model_id: The model's content digest ("" when no batch ran and no model was loaded).
        devices: Devices used.
        objects_listed: Objects under the input URI.
        objects_skipped: Already committed with the same version.
        objects_ignored: No reader for their name (processed: each is one quarantine row).
        objects_processed: Committed by this run.
        objects_superseded: Changed since committed; their old rows were retracted.
        batches: Batches committed by this run.
        docs_in: Records read (== docs_ok + docs_empty + docs_quarantined).
        docs_ok: Documents annotated.
        docs_empty: Empty documents (kept, status "empty").
        docs_quarantined: Records in quarantine.
        entities: Entities written.
        chars: Characters annotated.
        entities_by_label: Entities per label.
        entities_by_lang: Entities per language.
        entities_by_label_lang: Entities per label, then language.
        quarantine_reasons: Quarantined records per reason.
        seconds: Wall time of the run.
        tables: URI of each table written to.
        span_filter: Which candidate spans were scored: ``"off"`` (all) or the filter's rule.
        spans: Candidate spans of the run's windows.
        spans_scored: Of those, the spans the model scored.
        top_entities: The :data:`RUN_TOP_K` most frequent entity texts per label (see
            :func:`merge_top_entities`).
    """

    run_id: str
    run_label: str | None
    input_uri: str
    output_uri: str
    model_id: str
    devices: tuple[str, ...]
    objects_listed: int
    objects_skipped: int
    objects_ignored: int
    objects_processed: int
    objects_superseded: int
    batches: int
    docs_in: int
    docs_ok: int
    docs_empty: int
    docs_quarantined: int
    entities: int
    chars: int
    entities_by_label: dict[str, int]
    entities_by_lang: dict[str, int]
    entities_by_label_lang: dict[str, dict[str, int]]
    quarantine_reasons: dict[str, int]
    seconds: float
    tables: dict[str, str]
    span_filter: str = "off"
    spans: int = 0
    spans_scored: int = 0
    top_entities: tuple[TopEntity, ...] = ()

    @property
    def share_scored(self) -> float:
        """Share of candidate spans the model scored (1.0 without a span filter)."""
        return self.spans_scored / self.spans if self.spans else 1.0

    @property
    def docs_per_second(self) -> float:
        """Documents read per second of the run."""
        return self.docs_in / self.seconds if self.seconds > 0 else 0.0

    @property
    def chars_per_second(self) -> float:
        """Characters annotated per second of the run."""
        return self.chars / self.seconds if self.seconds > 0 else 0.0


def summarise(
    reports: Sequence[BatchReport],
    *,
    run_id: str,
    run_label: str | None,
    input_uri: str,
    output_uri: str,
    model_id: str,
    devices: Sequence[str],
    listed: int,
    skipped: int,
    ignored: int,
    superseded: int,
    seconds: float,
    tables: dict[str, str],
    span_filter: str = "off",
) -> RunSummary:
    """Add up a run's batch reports."""
    by_label_lang: Counter = Counter()
    reasons: Counter = Counter()
    for r in reports:
        by_label_lang.update(r.entity_counts)
        reasons.update(r.quarantine_reasons)
    by_label: Counter = Counter()
    by_lang: Counter = Counter()
    nested: dict[str, dict[str, int]] = {}
    for (label, lang), n in sorted(by_label_lang.items()):
        by_label[label] += n
        by_lang[lang] += n
        nested.setdefault(label, {})[lang] = n
    return RunSummary(
        run_id=run_id,
        run_label=run_label,
        input_uri=input_uri,
        output_uri=output_uri,
        model_id=model_id,
        devices=tuple(devices),
        objects_listed=listed,
        objects_skipped=skipped,
        objects_ignored=ignored,
        objects_processed=sum(r.objects for r in reports),
        objects_superseded=superseded,
        batches=len(reports),
        docs_in=sum(r.docs_in for r in reports),
        docs_ok=sum(r.docs_ok for r in reports),
        docs_empty=sum(r.docs_empty for r in reports),
        docs_quarantined=sum(r.docs_quarantined for r in reports),
        entities=sum(r.entities for r in reports),
        chars=sum(r.chars for r in reports),
        entities_by_label=dict(sorted(by_label.items())),
        entities_by_lang=dict(sorted(by_lang.items())),
        entities_by_label_lang=nested,
        quarantine_reasons=dict(sorted(reasons.items())),
        seconds=seconds,
        tables=tables,
        span_filter=span_filter,
        spans=sum(r.spans for r in reports),
        spans_scored=sum(r.spans_scored for r in reports),
        top_entities=merge_top_entities([r.top_entities for r in reports]),
    )


def render_contract_report(
    summary: RunSummary, contract_results: dict, *, status: str, error: str | None = None, heading: bool = True
) -> str:
    """The run's contract results and quarantine counts as markdown (sections of the summary page).

    Args:
        summary: The run's counts (of the batches committed).
        contract_results: As :func:`nerflow.etl.validating.contract_results` returns them.
        status: ``"completed"`` or ``"failed"``.
        error: Why the run failed.
        heading: Start with a title, the run line and the error; ``False`` gives the
            ``##`` sections alone, for a page that has its own title.
    """
    s, c = summary, contract_results
    rec = c.get("reconciliation", {})
    lines = []
    if heading:
        lines += [
            f"# extract-entities {status}",
            "",
            f"Run `{s.run_id}`, model `{s.model_id or '-'}`, {plural(s.batches, 'batch', 'batches')} committed, "
            f"{s.seconds:.1f} s.",
        ]
        if error:
            lines += ["", f"**Failed:** {table_cell(error)}"]
        lines.append("")
    lines += [
        "## Reconciliation",
        "",
        "| count | value |",
        "|---|---:|",
        f"| documents in (records read) | {rec.get('docs_in', s.docs_in)} |",
        f"| written, status ok | {rec.get('docs_ok', s.docs_ok)} |",
        f"| written, status empty | {rec.get('docs_empty', s.docs_empty)} |",
        f"| quarantined | {rec.get('docs_quarantined', s.docs_quarantined)} |",
        f"| entities written | {rec.get('entities', s.entities)} |",
        f"| sum of documents.n_entities | {rec.get('entities_counted', s.entities)} |",
        "",
        f"Documents in = written + quarantined, entities = sum of n_entities: "
        f"**{'yes' if rec.get('ok', True) else 'NO'}**",
        "",
        "## Contract results",
        "",
        "| table | version | rows checked | checks | failed rows | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    failing = []
    for table, t in c.get("tables", {}).items():
        counts = t["checks"]
        failed = {k: v for k, v in counts.items() if v}
        rows = sum(v for v in failed.values() if isinstance(v, int))
        result = "pass" if t["success"] else "FAIL"
        if t.get("skipped"):
            result += f" (skipped: {', '.join(t['skipped'])})"
        lines.append(f"| {table} | v{t['version']} | {t['rows']} | {len(counts)} | {rows} | {result} |")
        failing += [(table, k, v) for k, v in failed.items()]
    if failing:
        lines += ["", "| failed check | rows |", "|---|---:|"]
        lines += [f"| {table}.{check} | {n} |" for table, check, n in failing]
    lines += ["", "## Quarantine by reason", ""]
    if s.quarantine_reasons:
        lines += ["| reason | records |", "|---|---:|"]
        lines += [
            f"| {table_cell(r)} | {n} |"
            for r, n in sorted(s.quarantine_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
    else:
        lines.append("Nothing was quarantined.")
    withheld = c.get("quarantined", {})
    if withheld:
        lines += ["", "Documents withheld by validation, by check:", "", "| check | documents |", "|---|---:|"]
        lines += [f"| {k} | {n} |" for k, n in withheld.items()]
    return "\n".join(lines) + "\n"
