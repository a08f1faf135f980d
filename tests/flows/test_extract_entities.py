"""The extract-entities flow end to end: local and S3 (moto), re-runs, new and changed objects,
a run killed with SIGKILL and started again, and the ``nerflow run`` command."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from flows.extract_entities import ExtractParams, ProgressEvent, extract_entities, progress_listener
from nerflow import storage

REPO_ROOT = Path(__file__).resolve().parents[2]

NEWS = [
    {"id": "n1", "text": "Angela Merkel visited Paris and the United Nations in New York .", "lang": "en"},
    {
        "id": "n2",
        "text": "Olaf  Scholz traf gestern in Berlin den Präsidenten der Europäischen Kommission.",
        "metadata": {"section": "politik"},
    },
    {"id": "n3", "text": "Emmanuel Macron a reçu à l'Élysée le secrétaire général de l'ONU, António Guterres."},
    {"id": "n4", "text": "El Real Madrid ganó en Barcelona\r\ncon dos goles de Vinícius Júnior."},
    {"id": "n5", "text": " \t \n "},  # empty after normalisation: kept, status "empty"
]
WIKI = [
    {"id": "w1", "text": "Leonardo da Vinci nacque a Vinci, vicino a Firenze, nel 1452."},
    {"id": "w2", "text": "Het Rijksmuseum in Amsterdam toont werk van Rembrandt van Rijn en Johannes Vermeer."},
    {"id": "w3", "text": "Maria Skłodowska-Curie urodziła się w Warszawie i pracowała w Paryżu."},
]
PARQUET = [
    {"id": "p1", "text": "Владимир Набоков родился в Санкт-Петербурге и позже жил в Монтрё."},
    {"id": "p2", "text": "孙中山出生于广东省香山县，后来在东京和檀香山组织革命团体。"},
]
TEXT_DOC = "O presidente Luiz Inácio Lula da Silva recebeu em Brasília o primeiro-ministro de Portugal."
DOC_IDS = {r["id"] for r in NEWS + WIKI + PARQUET} | {"notes/pt-1"}


def _parquet_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def corpus_files() -> dict[str, bytes]:
    """The test input: JSONL (with a bad line), gzipped JSONL, Parquet, a text file, and a
    file no reader takes."""
    news = "\n".join(json.dumps(r, ensure_ascii=False) for r in NEWS) + "\n{this is not json\n"
    return {
        "news.jsonl": news.encode(),
        "wiki.jsonl.gz": gzip.compress(("\n".join(json.dumps(r, ensure_ascii=False) for r in WIKI) + "\n").encode()),
        "more/docs.parquet": _parquet_bytes(PARQUET),
        "notes/pt-1.txt": TEXT_DOC.encode(),
        "cover.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    }


def write_corpus(root: Path) -> Path:
    for rel, data in corpus_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def read_table(uri: str, name: str, storage_options: dict | None = None) -> pa.Table:
    """One output table as a reader sees it (hive partitions decoded), or an empty table."""
    fs, root = storage.filesystem(uri, storage_options)
    path = storage.join(root, name)
    fs.invalidate_cache()
    if not fs.exists(path):
        return pa.table({})
    return ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table()


def snapshot(uri: str, storage_options: dict | None = None) -> dict[str, list]:
    """Every table's rows, sorted, for comparing two states of an output."""
    out = {}
    for name in ("documents", "entities", "quarantine", "entity_embeddings", "_manifest/objects"):
        rows = read_table(uri, name, storage_options).to_pylist()
        out[name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out


def check_output(uri: str, expected_doc_ids: set[str], storage_options: dict | None = None) -> None:
    """The invariants every output must hold."""
    docs = read_table(uri, "documents", storage_options)
    ids = docs.column("doc_id").to_pylist()
    assert Counter(ids) == Counter(expected_doc_ids), "every document exactly once"
    texts = dict(zip(ids, docs.column("text").to_pylist()))
    entities = read_table(uri, "entities", storage_options)
    assert entities.num_rows > 0
    for e in entities.to_pylist():
        assert texts[e["doc_id"]][e["start"] : e["end"]] == e["text"], e
    assert len(set(entities.column("entity_id").to_pylist())) == entities.num_rows
    assert sum(docs.column("n_entities").to_pylist()) == entities.num_rows, "entities reconcile with n_entities"
    quarantine = read_table(uri, "quarantine", storage_options)
    manifest = read_table(uri, "_manifest/objects", storage_options)
    assert sum(manifest.column("docs_in").to_pylist()) == docs.num_rows + quarantine.num_rows
    assert len(set(manifest.column("source_uri").to_pylist())) == manifest.num_rows


def params(inp: str, out: str, model: Path, **kw) -> ExtractParams:
    return ExtractParams(input_uri=inp, output_uri=out, model=str(model), device="cpu", batch_docs=1, **kw)


def test_local_run_writes_every_table(prefect_harness, tiny_wordpiece_model_dir, tmp_path):
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    events: list[ProgressEvent] = []
    with progress_listener(events.append):
        summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir, run_label="first"))

    check_output(str(out), DOC_IDS)
    # cover.png has no reader: counted as ignored, and quarantined (unread) like any bad object.
    assert (summary.objects_listed, summary.objects_processed, summary.objects_ignored, summary.batches) == (5, 5, 1, 5)
    assert (summary.docs_in, summary.docs_ok, summary.docs_empty, summary.docs_quarantined) == (13, 10, 1, 2)
    assert summary.docs_in == summary.docs_ok + summary.docs_empty + summary.docs_quarantined
    assert summary.entities == sum(summary.entities_by_label.values()) == sum(summary.entities_by_lang.values())
    assert summary.tables["documents"] == f"{out}/documents/"
    assert [e.kind for e in events] == ["planned"] + ["batch"] * 5

    docs = {r["doc_id"]: r for r in read_table(str(out), "documents").to_pylist()}
    assert docs["n5"]["status"] == "empty" and docs["n5"]["text"] == ""
    assert docs["n2"]["text"].startswith("Olaf Scholz") and json.loads(docs["n2"]["metadata"]) == {"section": "politik"}
    assert docs["n4"]["text"] == "El Real Madrid ganó en Barcelona\ncon dos goles de Vinícius Júnior."
    assert (docs["n1"]["lang"], docs["n1"]["lang_detected"]) == ("en", False)
    assert {docs[i]["lang"] for i in ("n2", "n3", "n4", "w1", "w2", "w3", "p1", "p2", "notes/pt-1")} == {
        "de",
        "fr",
        "es",
        "it",
        "nl",
        "pl",
        "ru",
        "zh",
        "pt",
    }
    assert {d["run_id"] for d in docs.values()} == {summary.run_id}
    readme, bad = sorted(read_table(str(out), "quarantine").to_pylist(), key=lambda r: r["source_uri"])
    assert bad["reason"].startswith("not JSON") and bad["record"] == 6 and bad["source_uri"].endswith("news.jsonl")
    assert readme["reason"].startswith("unsupported file type") and readme["source_uri"].endswith("cover.png")
    assert (bad["stage"], bad["check"]) == ("read", None)

    # Partitions on disk, deterministic names, the run record.
    day = docs["n1"]["ingest_date"]
    assert (out / "entities" / f"ingest_date={day}" / "lang=en").is_dir()
    assert all(p.name.startswith("part-b") for p in (out / "documents").rglob("*.parquet"))
    runs = read_table(str(out), "_manifest/runs").to_pylist()
    assert [(r["run_id"], r["run_label"], r["docs_in"], r["status"]) for r in runs] == [
        (summary.run_id, "first", 13, "completed")
    ]
    assert "storage_options" not in json.loads(runs[0]["parameters"])
    assert runs[0]["model_labels"] == ["PER", "ORG", "LOC", "MISC"] and runs[0]["embedding_dim"] == 0

    # The contract results are stored with the run.
    results = json.loads(runs[0]["contract_results"])
    assert results["versions"] == {
        "documents": 2,
        "entities": 2,
        "segments": 1,
        "quarantine": 2,
        "_manifest/objects": 1,
        "_manifest/runs": 3,
    }
    assert results["batches"] == 5 and results["quarantined"] == {}
    assert results["reconciliation"] == {
        "docs_in": 13,
        "docs_ok": 10,
        "docs_empty": 1,
        "docs_quarantined": 2,
        "entities": summary.entities,
        "entities_counted": summary.entities,
        "vectors": None,
        "ok": True,
    }
    assert results["tables"]["entities"]["rows"] == summary.entities and results["tables"]["entities"]["success"]
    assert set(results["tables"]) == {"documents", "entities", "segments", "quarantine"}
    assert all(n == 0 for t in results["tables"].values() for n in t["checks"].values())

    # The run ends with its summary page: contract results per table, quarantine by reason.
    from prefect.artifacts import Artifact

    artifact = Artifact.get("extract-entities-summary")
    assert artifact is not None and str(artifact.flow_run_id) == summary.run_id
    assert "# extract-entities completed" in artifact.data and "| entities | v2 | " in artifact.data
    assert "| not JSON | 1 |" in artifact.data and "| unsupported file type | 1 |" in artifact.data


def test_running_again_changes_nothing_and_new_objects_alone_are_processed(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path
):
    inp, out = write_corpus(tmp_path / "in"), str(tmp_path / "out")
    extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    before = snapshot(out)

    again = extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    assert (again.objects_processed, again.objects_skipped, again.docs_in) == (0, 5, 0)
    assert snapshot(out) == before

    (inp / "late.jsonl").write_text(json.dumps({"id": "late", "text": "Barack Obama spoke in Chicago ."}) + "\n")
    third = extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    assert (third.objects_processed, third.objects_skipped, third.docs_in) == (1, 5, 1)
    check_output(out, DOC_IDS | {"late"})
    after = snapshot(out)
    assert set(before["documents"]) < set(after["documents"]), "earlier rows untouched"


def test_a_changed_object_replaces_its_rows(prefect_harness, tiny_wordpiece_model_dir, tmp_path):
    inp, out = write_corpus(tmp_path / "in"), str(tmp_path / "out")
    extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    time.sleep(0.01)  # a new mtime even on coarse clocks
    rows = [dict(r, text=r["text"].replace("Paris", "Lyon")) for r in NEWS[:2]]
    (inp / "news.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")

    summary = extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    assert (summary.objects_superseded, summary.objects_processed) == (1, 1)
    expected = DOC_IDS - {"n3", "n4", "n5"}
    check_output(out, expected)
    docs = {r["doc_id"]: r["text"] for r in read_table(out, "documents").to_pylist()}
    assert "Lyon" in docs["n1"]
    # The bad line left with the old version; cover.png's row stays.
    assert [r["source_uri"].rsplit("/", 1)[1] for r in read_table(out, "quarantine").to_pylist()] == ["cover.png"]


def test_batches_go_through_in_rounds_of_one_batch_per_device(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch
):
    import flows.ner_runners as module

    # Two "devices" (both the CPU here): annotate is mapped over rounds of two batches.
    monkeypatch.setattr(module, "resolve_devices", lambda policy: ("cpu", "cpu"))
    inp, out = write_corpus(tmp_path / "in"), str(tmp_path / "out")
    summary = extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))
    assert summary.batches == 5 and summary.devices == ("cpu", "cpu")
    check_output(out, DOC_IDS)


def test_bad_parameters_are_refused_before_a_run():
    with pytest.raises(ValueError, match="overlap_tokens"):
        ExtractParams(input_uri="in", output_uri="out", window_tokens=32, overlap_tokens=40)
    with pytest.raises(ValueError, match="ISO 639-1"):
        ExtractParams(input_uri="in", output_uri="out", languages=("en", "klingon"))
    with pytest.raises(ValueError, match="Input should be 'auto', 'cpu' or 'cuda'"):
        ExtractParams(input_uri="in", output_uri="out", device="tpu")
    assert ExtractParams(input_uri="in", output_uri="out", languages=(" DE", "en")).languages == ("de", "en")
    with pytest.raises(ValueError, match="lookahead_tokens"):
        ExtractParams(input_uri="in", output_uri="out", lookahead_tokens=0)
    # What the engine itself would refuse only once the model is loaded.
    with pytest.raises(ValueError, match=r"overlap_tokens \(40\) must be below half of window_tokens \(64\)"):
        ExtractParams(input_uri="in", output_uri="out", window_tokens=64, overlap_tokens=40)
    with pytest.raises(ValueError, match="ray_cpus_per_task"):
        ExtractParams(input_uri="in", output_uri="out", ray_cpus_per_task=float("inf"))
    # An unset deployment variable arrives as "": refused, not a run into the worker's temporary directory.
    for name in ("input_uri", "output_uri", "model"):
        with pytest.raises(ValueError, match=name):
            ExtractParams(**{"input_uri": "in", "output_uri": "out", name: ""})
    # An emptied optional field of the UI's form is unset.
    p = ExtractParams(input_uri="in", output_uri="out", modified_after="", window_tokens="", run_label=" ")
    assert (p.modified_after, p.window_tokens, p.run_label) == (None, None, None)


def test_a_local_model_path_reaches_the_engine_absolute(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    assert ExtractParams(input_uri="in", output_uri="out", model="m").annotating().model == str(tmp_path / "m")
    assert ExtractParams(input_uri="in", output_uri="out", model="org/name").annotating().model == "org/name"


def test_engine_sizes_reach_the_engine_and_default_to_the_engines_own():
    from ner_core import EngineConfig

    default = ExtractParams(input_uri="in", output_uri="out").annotating().engine
    assert (default.batch_tokens, default.lookahead_tokens) == (
        EngineConfig().batch_tokens,
        EngineConfig().lookahead_tokens,
    )
    engine = (
        ExtractParams(input_uri="in", output_uri="out", batch_tokens=512, lookahead_tokens=4096).annotating().engine
    )
    assert (engine.batch_tokens, engine.lookahead_tokens) == (512, 4096)


def test_nerflow_run_passes_engine_sizes_only_when_given(monkeypatch):
    import nerflow.run_command
    from nerflow.cli import main

    seen = []
    monkeypatch.setattr(nerflow.run_command, "run_extract", lambda params, **kwargs: seen.append(params) or 0)
    assert main(["run", "in", "out", "--no-progress"]) == 0
    assert main(["run", "in", "out", "--no-progress", "--lookahead-tokens", "8192", "--batch-tokens", "1024"]) == 0
    assert "lookahead_tokens" not in seen[0] and "batch_tokens" not in seen[0]
    assert (seen[1]["lookahead_tokens"], seen[1]["batch_tokens"]) == (8192, 1024)


def test_punctuation_is_set_apart_and_quotes_trimmed_unless_the_run_says_not_to(monkeypatch):
    import nerflow.run_command
    from nerflow.cli import main

    seen = []
    monkeypatch.setattr(nerflow.run_command, "run_extract", lambda params, **kwargs: seen.append(params) or 0)
    assert main(["run", "in", "out", "--no-progress"]) == 0
    assert main(["run", "in", "out", "--no-progress", "--no-space-punctuation"]) == 0
    assert main(["run", "in", "out", "--no-progress", "--no-space-punctuation", "--no-trim-quotes"]) == 0
    engines = [ExtractParams(**params).annotating().engine for params in seen]
    assert [(e.space_punctuation, e.trim_unpaired_quotes) for e in engines] == [
        (True, True),
        (False, True),
        (False, False),
    ]


# --- a run killed with SIGKILL ---------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    sys.path.insert(0, {repo!r})
    from nerflow import storage
    from nerflow.etl import annotating

    mode, params = sys.argv[1], json.loads(sys.argv[2])
    if mode == "mid-commit":
        # Die at the worst moment: the second batch's data files are written, its manifest
        # entry is not.
        real, seen = storage.write_bytes_atomic, []
        def write(fs, path, data):
            if "/_manifest/objects/" in path:
                seen.append(path)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            real(fs, path, data)
        storage.write_bytes_atomic = write
    else:
        # Slow annotation down so that the parent can kill the run between batches.
        real_annotate = annotating.annotate_batch
        def slow(*args, **kwargs):
            time.sleep(1.5)
            return real_annotate(*args, **kwargs)
        annotating.annotate_batch = slow
    from flows.extract_entities import ExtractParams, extract_entities
    extract_entities(ExtractParams(**params))
""")


def _committed(out: Path) -> int:
    return (
        len(list((out / "_manifest" / "objects").glob("*.parquet"))) if (out / "_manifest" / "objects").exists() else 0
    )


@pytest.mark.parametrize("mode", ["mid-commit", "between-batches"])
def test_a_killed_run_started_again_ends_with_every_document_once(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, mode
):
    import prefect.settings

    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    p = params(str(inp), str(out), tiny_wordpiece_model_dir)
    env = dict(os.environ, PREFECT_API_URL=prefect.settings.PREFECT_API_URL.value(), PREFECT_LOGGING_LEVEL="WARNING")
    script = _CHILD.format(repo=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, mode, p.model_dump_json()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        if mode == "between-batches":
            deadline = time.monotonic() + 300
            while _committed(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-3000:]
    committed = _committed(out)
    assert 1 <= committed < 5, "killed half-way"
    if mode == "mid-commit":
        assert list((out / "_manifest" / "_pending").glob("*.json")), "an uncommitted batch was left behind"

    summary = extract_entities(p)
    assert summary.objects_skipped == committed and summary.objects_processed == 5 - committed
    check_output(str(out), DOC_IDS)
    assert not list((out / "_manifest" / "_pending").glob("*.json"))
    assert not [f for f in out.rglob(".*") if f.is_file()], "no temporaries left"


# --- S3 (moto) -------------------------------------------------------------------------------


def test_s3_input_to_s3_output(prefect_harness, tiny_sentencepiece_model_dir, s3):
    fs, _ = storage.filesystem("s3://nerflow", s3)
    for rel, data in corpus_files().items():
        fs.pipe_file(f"nerflow/in/{rel}", data)
    p = ExtractParams(
        input_uri="s3://nerflow/in",
        output_uri="s3://nerflow/out",
        model=str(tiny_sentencepiece_model_dir),
        device="cpu",
        batch_docs=2,
        embeddings="marker",
        embedding_dtype="float16",
        storage_options=s3,
    )
    summary = extract_entities(p)
    assert (summary.objects_processed, summary.batches, summary.docs_in) == (5, 3, 13)
    assert summary.tables["entities"] == "s3://nerflow/out/entities/"
    check_output("s3://nerflow/out", DOC_IDS, s3)

    manifest = read_table("s3://nerflow/out", "_manifest/objects", s3).to_pylist()
    assert {m["source_uri"] for m in manifest} == {f"s3://nerflow/in/{rel}" for rel in corpus_files()}
    assert all(m["object_version"].startswith("etag:") for m in manifest)
    vectors = read_table("s3://nerflow/out", "entity_embeddings", s3)
    entities = read_table("s3://nerflow/out", "entities", s3)
    assert sorted(vectors.column("entity_id").to_pylist()) == sorted(entities.column("entity_id").to_pylist())
    assert vectors.schema.field("vector").type.value_type == pa.float16()

    before = snapshot("s3://nerflow/out", s3)
    again = extract_entities(p)
    assert (again.objects_processed, again.objects_skipped) == (0, 5)
    assert snapshot("s3://nerflow/out", s3) == before
    assert not fs.find("nerflow/out/_manifest/_pending")


def test_s3_keys_only_object_stores_allow(prefect_harness, tiny_wordpiece_model_dir, s3):
    objects = {
        "docs": b"an object named like the prefix",  # beside docs/…: "docs/" still means the prefix
        "docs/a.txt": b"Angela Merkel visited Paris .",
        "docs/y.txt": b"Warsaw is the capital of Poland .",
        "docs/y.txt?versionId=1.txt": b"Kyiv is the capital of Ukraine .",  # s3fs would fetch y.txt
    }
    client = __import__("boto3").client("s3", endpoint_url=s3["client_kwargs"]["endpoint_url"], region_name="us-east-1")
    for key, data in objects.items():  # boto3: s3fs itself cannot write a key with "?versionId="
        client.put_object(Bucket="nerflow", Key=key, Body=data)
    # The output inside the input: its tables must not come back as documents.
    p = ExtractParams(
        input_uri="s3://nerflow/docs/",
        output_uri="s3://nerflow/docs/ner/",
        model=str(tiny_wordpiece_model_dir),
        device="cpu",
        storage_options=s3,
    )
    first = extract_entities(p)
    assert (first.objects_listed, first.docs_in) == (3, 3)
    documents = read_table("s3://nerflow/docs/ner", "documents", s3).to_pylist()
    assert {d["doc_id"]: d["text"] for d in documents} == {
        "a": "Angela Merkel visited Paris .",
        "y": "Warsaw is the capital of Poland .",
    }
    [bad] = read_table("s3://nerflow/docs/ner", "quarantine", s3).to_pylist()
    assert bad["source_uri"] == "s3://nerflow/docs/y.txt?versionId=1.txt" and "versionId" in bad["reason"]

    again = extract_entities(p)
    assert (again.objects_listed, again.objects_processed, again.objects_skipped) == (3, 0, 3)


# --- the command line ------------------------------------------------------------------------


def test_nerflow_run_prints_a_summary(prefect_harness, tiny_wordpiece_model_dir, tmp_path, capsys):
    from nerflow.cli import main

    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    code = main(
        [
            "run",
            str(inp),
            str(out),
            "--model",
            str(tiny_wordpiece_model_dir),
            "--batch-docs",
            "2",
            "--device",
            "cpu",
            "--label",
            "cli",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "documents   13 read: 10 annotated, 1 empty, 2 quarantined" in printed
    assert "objects     5 listed: 5 processed in 3 batches" in printed
    assert "throughput" in printed and f"documents          {out}/documents/" in printed
    assert "label" in printed and "total" in printed
    check_output(str(out), DOC_IDS)

    # A consumer checks what landed: the output passes; tampered with, it does not.
    assert main(["validate", str(out)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("result: ok")
    path = next((out / "entities").rglob("*.parquet"))
    table = pq.read_table(path)
    scores = table.column("score").to_pylist()
    table = table.set_column(
        table.schema.get_field_index("score"), table.schema.field("score"), pa.array([1.5] + scores[1:], pa.float32())
    )
    pq.write_table(table, path)
    assert main(["validate", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "score_in_unit_interval: 1 of" in printed and f"{path.relative_to(out)} row 1:" in printed
    assert printed.rstrip().endswith("result: FAILED (1 checks failed)")


def test_nerflow_run_rejects_bad_arguments(capsys):
    from nerflow.cli import main

    assert main(["run", "in", "out", "--window-tokens", "64", "--overlap-tokens", "64", "--no-progress"]) == 2
    assert "overlap_tokens (64) must be below half of window_tokens (64)" in capsys.readouterr().err
    assert main(["run", "in", "out", "--max-failure-rate", "1.5", "--no-progress"]) == 2
    assert "max_failure_rate" in capsys.readouterr().err


# --- the contracts in the flow ---------------------------------------------------------------


def test_contract_failures_quarantine_documents_and_too_many_reject_the_batch(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch
):
    from prefect.artifacts import Artifact

    from nerflow.etl import annotating
    from nerflow.etl.errors import BatchRejectedError

    # The engine goes wrong on some documents: scores above 1. n1 is 1 of the 5 documents of
    # news.jsonl's batch (20%, under the limit); w1..w3 are all of wiki.jsonl.gz's (over it).
    broken = {"n1", "w1", "w2", "w3"}
    real = annotating.annotate_batch

    def wrong_scores(batch, config, device):
        out = real(batch, config, device)
        ents = out.entities
        hit = [d in broken for d in ents.column("doc_id").to_pylist()]
        assert not (set(batch.documents.get_column("doc_id")) & broken) or any(hit), "the tiny model found entities"
        scores = [1.7 if h else s for h, s in zip(hit, ents.column("score").to_pylist())]
        i = ents.schema.get_field_index("score")
        return dataclasses.replace(
            out, entities=ents.set_column(i, ents.schema.field(i), pa.array(scores, pa.float32()))
        )

    monkeypatch.setattr(annotating, "annotate_batch", wrong_scores)
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    p = params(str(inp), str(out), tiny_wordpiece_model_dir, max_failure_rate=0.25)
    with pytest.raises(
        BatchRejectedError,
        match=r"3 of 3 documents \(100%\) broke the contracts, more than "
        r"max_failure_rate 25%.*entities\.score_in_unit_interval x3",
    ):
        extract_entities(p)

    # Nothing of the rejected batch (wiki.jsonl.gz, last in path order) was written ...
    manifest = {r["source_uri"].rsplit("/", 1)[1] for r in read_table(str(out), "_manifest/objects").to_pylist()}
    assert manifest == {"cover.png", "docs.parquet", "news.jsonl", "pt-1.txt"}
    docs = {r["doc_id"] for r in read_table(str(out), "documents").to_pylist()}
    assert docs == DOC_IDS - {"n1", "w1", "w2", "w3"}
    # ... the batches before it were, n1 quarantined whole with the check that failed.
    [n1] = [r for r in read_table(str(out), "quarantine").to_pylist() if r["doc_id"] == "n1"]
    assert (n1["stage"], n1["check"], n1["record"]) == ("validate", "entities.score_in_unit_interval", 1)
    assert "score 1.700" in n1["reason"] and n1["source_uri"].endswith("news.jsonl")
    assert not [e for e in read_table(str(out), "entities").to_pylist() if e["doc_id"] == "n1"]

    [run] = read_table(str(out), "_manifest/runs").to_pylist()
    results = json.loads(run["contract_results"])
    assert run["status"] == "failed" and run["batches"] == 4
    assert results["quarantined"] == {"entities.score_in_unit_interval": 1} and results["reconciliation"]["ok"]
    artifact = Artifact.get("extract-entities-summary")
    assert artifact.data.startswith("# extract-entities failed") and "BatchRejectedError" in artifact.data

    # Fixed, the next run processes the rejected batch alone, and the output validates.
    monkeypatch.setattr(annotating, "annotate_batch", real)
    again = extract_entities(p)
    assert (again.objects_processed, again.objects_skipped, again.docs_ok) == (1, 4, 3)
    check_output(str(out), DOC_IDS - {"n1"})
    from nerflow.cli import main

    assert main(["validate", str(out)]) == 0


def test_a_second_run_on_an_output_in_use_is_refused_and_writes_nothing(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path
):
    from nerflow.etl.errors import OutputBusyError
    from nerflow.etl.lease import OutputLease, lease_path

    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    fs, root = storage.filesystem(str(out))
    with OutputLease(fs, root, holder="flow run first"):
        with pytest.raises(OutputBusyError, match="another run is writing to this output: flow run first"):
            extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
            "_manifest/_writer.json"
        ]
    summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    assert summary.objects_processed == 5 and not fs.exists(lease_path(root))  # released at the end
    check_output(str(out), DOC_IDS)


def test_a_run_that_fails_outside_the_contracts_still_records_itself(prefect_harness, tmp_path):
    from prefect.artifacts import Artifact

    from ner_core.errors import ModelNotFoundError

    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    with pytest.raises(ModelNotFoundError):
        extract_entities(params(str(inp), str(out), tmp_path / "no-model"))
    [run] = read_table(str(out), "_manifest/runs").to_pylist()
    assert (run["status"], run["batches"], run["objects_listed"]) == ("failed", 0, 5)
    artifact = Artifact.get("extract-entities-summary")
    assert artifact.data.startswith("# extract-entities failed") and "ModelNotFoundError" in artifact.data


def _poisoned(real, poison: set[str], error):
    """annotate_batch failing, the way a dying worker does, on every batch holding a poison document."""

    def annotate(batch, config, device):
        if set(batch.documents.get_column("doc_id")) & poison:
            raise error
        return real(batch, config, device)

    return annotate


def test_a_document_that_breaks_annotation_is_quarantined_and_the_rest_written(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch
):
    from nerflow.etl import annotating, verifying

    monkeypatch.setattr(
        annotating, "annotate_batch", _poisoned(annotating.annotate_batch, {"n2"}, MemoryError("cannot allocate 8 GiB"))
    )
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    assert summary.objects_processed == 5
    check_output(str(out), DOC_IDS - {"n2"})
    [q] = [r for r in read_table(str(out), "quarantine").to_pylist() if r["doc_id"] == "n2"]
    assert (q["stage"], q["reason"]) == ("annotate", "engine failed: MemoryError: cannot allocate 8 GiB")
    assert q["source_uri"].endswith("news.jsonl") and q["raw_excerpt"].startswith("Olaf")
    # n2's batch-mates were annotated one by one and kept their entities.
    tiny = extract_entities(params(str(inp), str(tmp_path / "clean"), tiny_wordpiece_model_dir))
    clean = {(e["doc_id"], e["start"], e["label"]) for e in read_table(str(tmp_path / "clean"), "entities").to_pylist()}
    got = {(e["doc_id"], e["start"], e["label"]) for e in read_table(str(out), "entities").to_pylist()}
    assert got == {e for e in clean if e[0] != "n2"} and tiny.entities > 0
    fs, root = storage.filesystem(str(out))
    assert verifying.verify_output(fs, root).success


def test_when_every_document_fails_annotation_the_run_fails_instead_of_quarantining_them(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch
):
    from nerflow.etl import annotating

    everyone = {r["id"] for r in NEWS}
    monkeypatch.setattr(
        annotating,
        "annotate_batch",
        _poisoned(annotating.annotate_batch, everyone, RuntimeError("CUDA error: device lost")),
    )
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    with pytest.raises(RuntimeError, match="device lost"):
        extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    assert not [r for r in read_table(str(out), "quarantine").to_pylist() if r["stage"] == "annotate"]
    assert "news.jsonl" not in {
        r["source_uri"].rsplit("/", 1)[1] for r in read_table(str(out), "_manifest/objects").to_pylist()
    }
    [run] = read_table(str(out), "_manifest/runs").to_pylist()
    assert run["status"] == "failed"


def test_local_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = ExtractParams(input_uri="in", output_uri="./out")
    assert (p.input_uri, p.output_uri) == (str(tmp_path / "in"), str(tmp_path / "out"))
    assert json.loads(p.recorded())["input_uri"] == str(tmp_path / "in")
    assert ExtractParams(input_uri="s3://b/in", output_uri="memory://out").output_uri == "memory://out"


def test_a_run_that_takes_over_a_dead_runs_lease_marks_that_run_crashed(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path
):
    import socket

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from nerflow.etl.lease import lease_path

    @flow(name="killed-extract-entities")
    def killed() -> None:  # stands in for a run killed with -9: its flow run stays Running
        pass

    with get_client(sync_client=True) as client:
        dead = client.create_flow_run(killed, state=Running())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    inp, out = write_corpus(tmp_path / "in"), tmp_path / "out"
    lease = Path(lease_path(str(out)))
    lease.parent.mkdir(parents=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    lease.write_text(
        json.dumps(
            {
                "token": "dead",
                "holder": f"flow run {dead.id}",
                "run_id": str(dead.id),
                "host": socket.gethostname(),
                "pid": gone.pid,
                "started_at": now,
                "renewed_at": now,
            }
        )
    )
    summary = extract_entities(params(str(inp), str(out), tiny_wordpiece_model_dir))
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(dead.id).state
    assert state.type.value == "CRASHED"
    assert f"taken over by flow run {summary.run_id}" in state.message and str(out) in state.message


def test_credentials_from_a_secret_block_reach_storage_and_nothing_else(
    prefect_harness, tiny_wordpiece_model_dir, s3, monkeypatch
):
    from prefect.artifacts import Artifact
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    fs, _ = storage.filesystem("s3://nerflow", s3)
    for rel, data in corpus_files().items():
        fs.pipe_file(f"nerflow/creds-in/{rel}", data)
    # The block holds the key and secret, and the endpoint too: the run reaches the store only
    # if the block's options were used (its parameters name no endpoint).
    key, secret = "AKIABLOCKKEY0000EXAMPLE", "blocksecretvalue0000EXAMPLE"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    Secret(value={"key": key, "secret": secret, **s3}).save("nerflow-test-s3", overwrite=True)
    p = ExtractParams(
        input_uri="s3://nerflow/creds-in",
        output_uri="s3://nerflow/creds-out",
        model=str(tiny_wordpiece_model_dir),
        device="cpu",
        storage_credentials_block="nerflow-test-s3",
    )
    summary = extract_entities(p)
    assert summary.objects_processed == 5
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")  # the test's own reads
    check_output("s3://nerflow/creds-out", DOC_IDS, s3)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(summary.run_id)
    seen = [
        json.dumps(run.parameters, default=str),
        *(r["parameters"] for r in read_table("s3://nerflow/creds-out", "_manifest/runs", s3).to_pylist()),
        Artifact.get("extract-entities-summary").data,
    ]
    assert not [text for text in seen if key in text or secret in text]
    assert "nerflow-test-s3" in seen[0]  # the block's name is a parameter, its value is not
    # Nor the server's database: flow runs, task runs, logs, artifacts; the block's own value is
    # stored encrypted (Prefect encrypts block documents at rest).
    import prefect.settings

    db = Path(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"nerflow-test-s3" in stored, "the database holds the run (and the block's name)"
    assert key.encode() not in stored and secret.encode() not in stored
