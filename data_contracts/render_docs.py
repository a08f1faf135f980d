"""Generate ``docs/tables.md`` from the contracts.

    python -m data_contracts.render_docs --write   # record new schema versions, rewrite the page
    python -m data_contracts.render_docs --check   # exit 1 when the page is stale

The page is generated, never edited: ``tests/data_contracts`` fails when it differs from what
:func:`render` produces, and when a schema changed without a new version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_contracts.fingerprints import fingerprint, problems, record_new
from data_contracts.schemas import ALL_VERSIONS, CONTRACTS, EMBEDDINGS_VERSION, TableContract, entity_embeddings
from data_contracts.suites import TABLE_CHECKS, Check

__all__ = ["DOCS_FILE", "render", "main"]

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "tables.md"

_LAYOUT = {  # files of each table, and a note
    "entities": ("entities/ingest_date=YYYY-MM-DD/lang=xx/part-<batch>.parquet", ""),
    "documents": ("documents/ingest_date=YYYY-MM-DD/lang=xx/part-<batch>.parquet", ""),
    "segments": ("segments/ingest_date=YYYY-MM-DD/lang=xx/part-<batch>.parquet", "documents read from files"),
    "entity_embeddings": ("entity_embeddings/ingest_date=YYYY-MM-DD/part-<batch>.parquet", "only when asked for"),
    "quarantine": ("quarantine/ingest_date=YYYY-MM-DD/part-<batch>.parquet", ""),
    "_manifest/objects": ("_manifest/objects/part-<batch>.parquet", "written last: its presence commits the batch"),
    "_manifest/runs": ("_manifest/runs/run-<run_id>.parquet", "written when the run ends"),
}

_RULES = """\
## Layout choices, and why

- `documents` is partitioned like `entities` (`ingest_date`, `lang`), so that a consumer
  prunes both the same way and joins partitions to partitions; `entity_embeddings` and
  `quarantine` are partitioned by `ingest_date`.
- `_manifest` is two tables: `objects`, one row per committed input object, written last so
  that its file is what commits a batch (a crash before it leaves nothing visible), and
  `runs`, one row per run with its parameters, model, counts, timings and contract results.
- `segments` says where each part of a document's text came from in its source file (a PDF
  page's text line with its box, an HTML element, a DOCX paragraph or table cell, an e-mail's
  subject and body), so that an entity's `page` and `boxes` can be explained and a consumer
  can find any span of the text in the original; documents from JSONL and Parquet have none.
  PDF entities carry their boxes themselves (`entities.boxes`, one per line), so that
  highlighting one needs no join. The validator cannot read the PDF back, so the rule "the
  text under an entity's boxes is the entity's text" is held by tests that do
  (`tests/flows/test_rich_inputs.py`, `tests/nerflow/etl/extraction/test_pdf.py`).
- Empty documents are kept as `documents` rows with status `empty`, so the reconciliation is
  records read = `ok` + `empty` documents + `quarantine` rows.
- Bookkeeping columns (e.g. `ingest_date`, `batch_id`, `quarantine.check`) are described
  with their tables below. How the tables are written and committed: `docs/architecture.md`.

## How the contracts are applied

Every batch is checked after annotation and before anything of it is written
(`nerflow.etl.validating`); `nerflow validate OUTPUT` runs the same checks over an output that
landed. The Arrow schema (names, order, types, nullability) is compared exactly; the row
checks below run as Great Expectations 1.x suites, built in code in an ephemeral context.
Checks that span tables read derived columns (a leading underscore) that Polars computes from
the other table of the same batch or output, matched on `(run_id, doc_id)`.

- **A failing row takes its whole document to quarantine.** A document with any failing
  row (its own, one of its entities or vectors) leaves `documents`, `entities` and
  `entity_embeddings` together, as one `quarantine` row with stage `validate`, the first
  failed check in `check` (`<table>.<check>`), and a reason naming the row. Documents and
  entities stay consistent and every document is counted once.
- **Too many failures fail the run.** When more than `max_failure_rate` (a flow parameter,
  default 0.05) of a batch's documents fail, nothing of that batch is written, the batches
  before it stay committed, the run record is written with status `failed`, and the run
  raises `BatchRejectedError`. A failing `quarantine` row, a schema difference or a check
  that cannot run is a bug and fails the run whatever the rate.
- **Every batch reconciles**, or nothing of it is written (`ReconciliationError`):
  records read = `documents` rows (status `ok` or `empty`) + `quarantine` rows, and
  `sum(documents.n_entities)` = `entities` rows (= `entity_embeddings` rows when written).
  The run's totals are stored in `_manifest/runs.contract_results` and shown in the run's
  summary artifact `extract-entities-summary`.
- **Empty documents are kept**: text that is empty or only whitespace after normalisation
  is a `documents` row with status `empty` (not annotated, not quarantined).
- **Duplicate `doc_id`: the first record in input order wins** (objects sorted by path,
  then line or row). The first readable record of an id claims it, even if it then fails
  annotation or the contracts; later records with the same id are quarantined: stage
  `normalise` within a batch, stage `validate` with check `documents.doc_id_unique_in_run`
  across batches. That order does not depend on batch sizes or devices, so a re-run decides
  the same way, and what is committed is never rewritten. Ids are unique within a run; a later
  run may write an id again (a run resumed after a kill is a new run, and a changed object
  read again is checked against the ids of its own run only), so a warehouse that needs one
  row per id keeps the latest `ingest_date` or run.
- **Whole objects** that hold no readable document become one `quarantine` row each
  (`record` null): a broken gzip stream, an unreadable Parquet file, a zero-byte object, an
  unsupported file type (not even fetched), an object deleted between listing and reading.
  So does an object a reader fails on for a reason none of these rules foresaw (reason
  `could not be read: <error>`; nothing of it is kept, the rest of the batch goes on).
  Records of a readable object that are bad (not UTF-8, not JSON or nested too deeply to
  parse, a lone surrogate escape such as `"\\ud83d"` in a field, no text, text not a string)
  are one row each with their line or row number. JSONL lines end with `\\n` (`\\r\\n` too);
  a file with `\\r` alone is one line, and so one "not JSON" row.
"""


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _type(contract: TableContract, name: str) -> str:
    field = contract.schema.field(name)
    if contract.name == "entity_embeddings" and name == "vector":
        return "fixed_size_list<float32 \\| float16>[dim]"
    return _escape(str(field.type))


def _args(check: Check) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in check.kwargs.items())


def _table_section(contract: TableContract) -> list[str]:
    title = contract.name
    lines = [f"## {title} (v{contract.version})", "", contract.description, ""]
    path, note = _LAYOUT[contract.name]
    lines.append(f"- Files: `{path}`" + (f" ({note})" if note else ""))
    if contract.partition_by:
        lines.append(
            f"- Hive partitions: {', '.join(f'`{c}`' for c in contract.partition_by)} "
            "(in directory names, not in the files)"
        )
    lines.append(f"- Schema fingerprint: `{fingerprint(ALL_VERSIONS[contract.name][contract.version])}`")
    lines += ["", "| column | type | nullable | meaning |", "|---|---|---|---|"]
    for field in contract.schema:
        meaning = _escape(contract.column_docs.get(field.name, ""))
        lines.append(
            f"| `{field.name}` | `{_type(contract, field.name)}` | {'yes' if field.nullable else 'no'} | {meaning} |"
        )
    lines += [
        "",
        "Checks:",
        "",
        "| check | rule | expectation |",
        "|---|---|---|",
        "| `schema` | names, order, types and nullability exactly as above | Arrow schema comparison |",
    ]
    for check in TABLE_CHECKS[contract.name]:
        lines.append(f"| `{check.name}` | {_escape(check.rule)} | `{check.expectation}({_escape(_args(check))})` |")
    older = [c for v, c in sorted(ALL_VERSIONS[contract.name].items()) if v != contract.version]
    history = [f"v{c.version} (fingerprint `{fingerprint(c)}`)" for c in older]
    if contract.changes:
        history.append(f"v{contract.version}: {contract.changes}")
    if history:
        lines += ["", "History: " + "; ".join(history) + "."]
    return lines + [""]


def render() -> str:
    """The whole ``docs/tables.md``."""
    contracts = [
        CONTRACTS["documents"],
        CONTRACTS["entities"],
        CONTRACTS["segments"],
        entity_embeddings(1),
        CONTRACTS["quarantine"],
        CONTRACTS["_manifest/objects"],
        CONTRACTS["_manifest/runs"],
    ]
    lines = [
        "# Output tables",
        "",
        "<!-- Generated by `python -m data_contracts.render_docs --write` from data_contracts/; do not edit. -->",
        "",
        "The extract-entities flow writes partitioned Parquet under its output URI. Every file",
        "carries `nerflow.table` and `nerflow.schema_version` in its schema metadata. To check an",
        "output against these contracts: `nerflow validate OUTPUT` (exit status 0 or 1).",
        "",
        "| table | version | files |",
        "|---|---:|---|",
    ]
    for c in contracts:
        version = EMBEDDINGS_VERSION if c.name == "entity_embeddings" else c.version
        # GitHub's heading anchors: lower case, punctuation but "-" and "_" dropped, spaces as "-".
        lines.append(f"| [{c.name}](#{c.name.replace('/', '')}-v{version}) | {version} | `{_LAYOUT[c.name][0]}` |")
    lines += ["", _RULES]
    for c in contracts:
        lines += _table_section(c)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Check or rewrite ``docs/tables.md``; returns an exit status."""
    parser = argparse.ArgumentParser(prog="python -m data_contracts.render_docs", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="record new schema versions and rewrite the page")
    mode.add_argument("--check", action="store_true", help="exit 1 when the page or a fingerprint is stale")
    args = parser.parse_args(argv)
    if args.write:
        for added in record_new():
            print(f"recorded the fingerprint of {added}")
    found = problems()
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if found:
        return 1
    text = render()
    if args.write:
        DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
        DOCS_FILE.write_text(text)
        print(f"wrote {DOCS_FILE}")
        return 0
    if not DOCS_FILE.exists() or DOCS_FILE.read_text() != text:
        print(f"error: {DOCS_FILE} is stale: run `python -m data_contracts.render_docs --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
