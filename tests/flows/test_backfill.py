"""The backfill flow: earlier input through another model, into its own model_id partition,
the old tables untouched; a time range picks the objects; incremental like any run."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from flows.backfill import backfill, backfill_uri
from flows.extract_entities import extract_entities
from ner_core import load_model
from nerflow.cli import main
from tests.flows.test_extract_entities import NEWS, WIKI, check_output, params, read_table, write_corpus

JANUARY = datetime(2026, 1, 10, tzinfo=UTC).timestamp()
MARCH = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def _files(root: Path, skip: str) -> dict[str, str]:
    """Every file under ``root`` but those under ``skip``, with a digest of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and skip not in p.relative_to(root).parts
    }


def test_backfill_writes_a_new_model_partition_and_leaves_the_old_tables_alone(
    prefect_harness, tiny_wordpiece_model_dir, tiny_sentencepiece_model_dir, tmp_path, capsys
):
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    for path in inp.rglob("*"):
        if path.is_file():
            stamp = JANUARY if path.name in ("news.jsonl", "wiki.jsonl.gz") else MARCH
            os.utime(path, (stamp, stamp))
    old_model = load_model(tiny_wordpiece_model_dir).model_id
    new_model = load_model(tiny_sentencepiece_model_dir).model_id
    assert old_model != new_model
    extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    before = _files(out, skip="backfill")

    january = dict(modified_after=datetime(2026, 1, 1), modified_before=datetime(2026, 2, 1))
    summary = backfill(params(str(inp), str(out), tiny_sentencepiece_model_dir, **january))
    target = backfill_uri(str(out), new_model)
    assert target == str(out / "backfill" / f"model_id={new_model}")
    assert (summary.objects_listed, summary.objects_processed, summary.output_uri) == (5, 2, target)
    january_docs = {r["id"] for r in NEWS + WIKI}
    check_output(target, january_docs)
    assert set(read_table(target, "entities").column("model_id").to_pylist()) == {new_model}
    assert set(read_table(str(out), "entities").column("model_id").to_pylist()) == {old_model}
    assert _files(out, skip="backfill") == before, "the old results are untouched, byte for byte"

    # The same period again, from the command line: everything is done, nothing is written.
    partition = _files(Path(target), skip="reports")
    status = main(
        [
            "backfill",
            str(inp),
            str(out),
            "--model",
            str(tiny_sentencepiece_model_dir),
            "--device",
            "cpu",
            "--batch-docs",
            "1",
            "--modified-after",
            "2026-01-01",
            "--modified-before",
            "2026-02-01T00:00:00+00:00",
            "--no-progress",
        ]
    )
    assert status == 0
    assert "0 processed" in capsys.readouterr().out
    assert {k: v for k, v in _files(Path(target), skip="reports").items() if "runs" not in k} == {
        k: v for k, v in partition.items() if "runs" not in k
    }

    # Without a range, the rest of the input joins the partition; the old tables still untouched.
    rest = backfill(params(str(inp), str(out), tiny_sentencepiece_model_dir))
    assert (rest.objects_processed, rest.objects_skipped) == (3, 2)
    check_output(target, january_docs | {"p1", "p2", "notes/pt-1"})
    assert _files(out, skip="backfill") == before
