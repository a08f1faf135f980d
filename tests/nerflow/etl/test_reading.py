"""Reading: every format, field mapping, bad records to quarantine, nothing lost."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nerflow.etl.extraction.document import DocumentInfo
from nerflow.etl.formats import detect_format
from nerflow.etl.reading import FILE_INFO_SCHEMA, RECORD_SCHEMA, FieldMapping, ReadConfig, read_batch


def _jsonl(*records) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n"


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.JSONL.GZ", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.txt", "text"),
        ("a.txt.gz", "text"),
        ("a.csv", None),
        ("a.gz", None),
    ],
)
def test_detect_format_by_suffix(name, fmt):
    assert detect_format(name) == fmt
    assert detect_format(name, "parquet") == "parquet"


def test_jsonl_records_with_ids_languages_and_metadata(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch(
        {
            "docs.jsonl": _jsonl(
                {"id": "a", "text": "Angela Merkel", "lang": "de", "metadata": {"source": "x", "n": 1}},
                {"id": 7, "text": "Paris"},
                {"text": "no id here"},
            )
        }
    )
    read = read_batch(fs, batch, ReadConfig())
    rows = read.records.to_dicts()
    assert [r["doc_id"] for r in rows] == ["a", "7", "docs.jsonl#3"]
    assert [r["record"] for r in rows] == [1, 2, 3]
    assert rows[0]["lang"] == "de" and rows[1]["lang"] is None
    assert json.loads(rows[0]["metadata"]) == {"source": "x", "n": 1} and rows[1]["metadata"] is None
    assert {r["source_uri"] for r in rows} == {batch.objects[0].uri}
    assert read.quarantine.height == 0 and read.docs_in == 3


def test_gzipped_jsonl_and_a_byte_order_mark(make_batch, memfs):
    fs, _ = memfs
    body = "\ufeff" + _jsonl({"id": "a", "text": "Zürich"})
    batch = make_batch(
        {"docs.jsonl.gz": gzip.compress(body.encode()), "plain-but-gzipped.jsonl": gzip.compress(body.encode())}
    )
    read = read_batch(fs, batch, ReadConfig())
    assert read.records.get_column("text").to_list() == ["Zürich", "Zürich"]


def test_field_mapping(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch({"docs.jsonl": _jsonl({"uid": "x1", "body": "Text", "language": "fr", "meta": [1, 2]})})
    config = ReadConfig(fields=FieldMapping(id="uid", text="body", lang="language", metadata="meta"))
    [row] = read_batch(fs, batch, config).records.to_dicts()
    assert (row["doc_id"], row["text"], row["lang"], row["metadata"]) == ("x1", "Text", "fr", "[1, 2]")


def test_field_mapping_checks_names():
    with pytest.raises(ValueError, match="field names must differ"):
        FieldMapping(id="text")
    with pytest.raises(ValueError, match="must not be empty"):
        FieldMapping(lang="")


def test_bad_jsonl_records_go_to_quarantine_with_reasons(make_batch, memfs):
    fs, _ = memfs
    lines = (
        _jsonl(
            {"id": "ok", "text": "fine"},
            "{not json",
            {"id": "no-text"},
            {"id": "num", "text": 42},
            "[1, 2]",
            "",
            {"id": "ok2", "text": ""},
        ).encode()
        + b'{"id": "bin", "text": "caf\xe9"}\n'
    )
    read = read_batch(fs, make_batch({"d.jsonl": lines}), ReadConfig())
    assert read.records.get_column("doc_id").to_list() == ["ok", "ok2"]
    q = {r["record"]: r for r in read.quarantine.to_dicts()}
    assert set(q) == {2, 3, 4, 5, 8}
    assert q[2]["reason"].startswith("not JSON:") and q[2]["raw_excerpt"] == "{not json" and q[2]["doc_id"] is None
    assert q[3]["reason"] == "missing text field 'text'" and q[3]["doc_id"] == "no-text"
    assert q[4]["reason"] == "text field 'text' is not a string (a int)"
    assert q[5]["reason"] == "not a JSON object (a list)"
    assert q[8]["reason"].startswith("not UTF-8:") and "caf\ufffd" in q[8]["raw_excerpt"]
    assert {r["stage"] for r in q.values()} == {"read"}
    # Blank lines are not records; every other line is a document or a quarantine row.
    assert read.docs_in == 7


def test_a_document_longer_than_the_limit_is_quarantined_with_its_size(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch(
        {
            "d.jsonl": _jsonl({"id": "short", "text": "x" * 10}, {"id": "long", "text": "y" * 11}),
            "t.txt": "z" * 12,
            "p.parquet": _parquet(pa.table({"id": ["pl"], "text": ["w" * 11]})),
        }
    )
    read = read_batch(fs, batch, ReadConfig(max_document_chars=10))
    assert read.records.get_column("doc_id").to_list() == ["short"]
    reasons = {r["doc_id"]: r["reason"] for r in read.quarantine.to_dicts()}
    assert reasons == {
        "long": "document too long: 11 characters, more than max_document_chars (10)",
        "t": "document too long: 12 characters, more than max_document_chars (10)",
        "pl": "document too long: 11 characters, more than max_document_chars (10)",
    }
    assert read.docs_in == 4
    with pytest.raises(ValueError, match="max_document_chars must be positive"):
        ReadConfig(max_document_chars=0)


def test_a_broken_gzip_stream_quarantines_the_object(make_batch, memfs):
    fs, _ = memfs
    broken = gzip.compress(_jsonl({"id": "a", "text": "x"}).encode())[:-12]
    read = read_batch(fs, make_batch({"d.jsonl.gz": broken}), ReadConfig())
    [row] = read.quarantine.to_dicts()
    assert row["reason"].startswith("not a valid gzip stream") and row["record"] is None
    assert read.records.height == 0


def test_parquet_rows_with_mapping_and_null_text(make_batch, memfs):
    fs, _ = memfs
    table = pa.table(
        {
            "key": pa.array([1, 2, None]),
            "content": ["Berlin", None, "Rom"],
            "lang": ["de", "de", None],
            "metadata": pa.array([{"a": 1}, {"a": 2}, None]),
        }
    )
    config = ReadConfig(fields=FieldMapping(id="key", text="content"))
    read = read_batch(fs, make_batch({"d.parquet": _parquet(table)}), config)
    rows = read.records.to_dicts()
    assert [(r["doc_id"], r["text"], r["lang"], r["record"]) for r in rows] == [
        ("1", "Berlin", "de", 1),
        ("d.parquet#3", "Rom", None, 3),
    ]
    assert json.loads(rows[0]["metadata"]) == {"a": 1}
    [bad] = read.quarantine.to_dicts()
    assert (bad["doc_id"], bad["record"], bad["reason"]) == ("2", 2, "text field 'content' is null")


def test_parquet_without_the_text_column_quarantines_every_row(make_batch, memfs):
    fs, _ = memfs
    read = read_batch(
        fs, make_batch({"d.parquet": _parquet(pa.table({"id": ["a", "b"], "body": ["x", "y"]}))}), ReadConfig()
    )
    assert read.records.height == 0
    assert read.quarantine.get_column("doc_id").to_list() == ["a", "b"]
    assert set(read.quarantine.get_column("reason")) == {"missing text field 'text'"}
    assert json.loads(read.quarantine.get_column("raw_excerpt")[0]) == {"id": "a", "body": "x"}


def test_a_corrupt_parquet_file_is_quarantined_whole(make_batch, memfs):
    fs, _ = memfs
    read = read_batch(fs, make_batch({"d.parquet": b"PAR1 not really"}), ReadConfig())
    [row] = read.quarantine.to_dicts()
    assert row["reason"].startswith("not a readable Parquet file")


def test_text_files_are_one_document_each_named_by_path(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch(
        {
            "news/de/1.txt": "Angela Merkel in Berlin.\nZweite Zeile.",
            "news/en/2.txt.gz": gzip.compress("\ufeffLondon".encode()),
            "bad.txt": b"\xff\xfe\x00broken",
        }
    )
    read = read_batch(fs, batch, ReadConfig())
    rows = {r["doc_id"]: r for r in read.records.to_dicts()}
    assert set(rows) == {"news/de/1", "news/en/2"}
    assert (
        rows["news/de/1"]["text"] == "Angela Merkel in Berlin.\nZweite Zeile." and rows["news/de/1"]["record"] is None
    )
    assert rows["news/en/2"]["text"] == "London"
    [bad] = read.quarantine.to_dicts()
    # A UTF-16 byte-order mark before bytes that are no UTF-16: refused, not read as mojibake.
    assert bad["doc_id"] == "bad" and bad["reason"].startswith("not valid utf-16-le:")


def test_read_config_checks_the_format():
    with pytest.raises(ValueError, match="input_format must be one of"):
        ReadConfig(input_format="xml")


def test_whole_objects_that_hold_no_documents_are_quarantined_once(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch(
        {
            "empty.jsonl": b"",
            "empty.txt": b"",
            "report.pdf": b"%PDF-1.7 " + b"x" * 1000,
            "ok.jsonl": _jsonl({"id": "a", "text": "Berlin"}),
        }
    )
    read = read_batch(fs, batch, ReadConfig())
    assert read.records.get_column("doc_id").to_list() == ["a"]
    q = {r["source_uri"].rsplit("/", 1)[1]: r for r in read.quarantine.to_dicts()}
    assert set(q) == {"empty.jsonl", "empty.txt", "report.pdf"}
    assert q["empty.jsonl"]["reason"].startswith("empty object: 0 bytes") and q["empty.jsonl"]["record"] is None
    assert q["empty.txt"]["reason"].startswith("empty object: 0 bytes")
    # Named and sniffed a PDF, but pdfium cannot read it: its reason, no excerpt of binary bytes.
    assert q["report.pdf"]["reason"] == "not a readable PDF: data format error"
    assert q["report.pdf"]["raw_excerpt"] is None and q["report.pdf"]["doc_id"] == "report.pdf"
    assert read.docs_in == 4


def test_a_pdf_that_keeps_the_reader_busy_is_quarantined_and_the_batch_read(make_batch, memfs, monkeypatch):
    from nerflow.etl.extraction import pdf_process
    from tests import samples_pdf

    reader = pdf_process.PdfReaderProcess(samples_pdf.MISBEHAVING_READER)
    monkeypatch.setattr(pdf_process, "_SHARED", reader)
    fs, _ = memfs
    batch = make_batch(
        {
            "hostile.pdf": samples_pdf.HANG_ON_PAGE_2,
            "report.pdf": samples_pdf.report_pdf(),
            "ok.jsonl": _jsonl({"id": "a", "text": "Berlin"}),
        }
    )
    try:
        read = read_batch(fs, batch, ReadConfig(pdf_page_time_limit_s=1))
    finally:
        reader.close()
    assert sorted(read.records.get_column("doc_id").to_list()) == ["a", "report.pdf"]
    [bad] = read.quarantine.to_dicts()
    assert bad["doc_id"] == "hostile.pdf" and bad["raw_excerpt"] is None
    assert bad["reason"] == "reading page 2 of 3 took longer than 1 s; reading stopped (a PDF that keeps pdfium busy)"
    with pytest.raises(ValueError, match="pdf_page_time_limit_s must be positive"):
        ReadConfig(pdf_page_time_limit_s=0)


def test_an_unsupported_object_is_not_even_fetched(make_batch, memfs, monkeypatch):
    from nerflow import storage

    fs, _ = memfs
    batch = make_batch({"video.mp4": b"\x00" * 100})
    fetched = []
    monkeypatch.setattr(storage, "read_bytes", lambda f, p: fetched.append(p) or b"")
    read = read_batch(fs, batch, ReadConfig())
    assert fetched == [] and read.quarantine.height == 1


def test_an_object_deleted_after_listing_is_quarantined_not_retried(make_batch, memfs):
    fs, _ = memfs
    batch = make_batch({"gone.jsonl": _jsonl({"id": "a", "text": "x"}), "kept.jsonl": _jsonl({"id": "b", "text": "y"})})
    fs.rm_file(batch.objects[0].path)
    read = read_batch(fs, batch, ReadConfig())
    assert read.records.get_column("doc_id").to_list() == ["b"]
    [row] = read.quarantine.to_dicts()
    assert row["source_uri"].endswith("gone.jsonl") and row["reason"].startswith("object vanished")


def test_a_failing_store_is_still_an_error_to_retry(make_batch, memfs, monkeypatch):
    from nerflow import storage
    from nerflow.etl.errors import StorageError

    fs, _ = memfs
    batch = make_batch({"a.jsonl": _jsonl({"id": "a", "text": "x"})})

    def throttled(f, path):
        try:
            raise OSError("SlowDown")
        except OSError as e:
            raise StorageError("could not read: SlowDown", uri=path) from e

    monkeypatch.setattr(storage, "read_bytes", throttled)
    with pytest.raises(StorageError, match="SlowDown"):
        read_batch(fs, batch, ReadConfig())


def test_jsonl_lines_no_table_can_hold_are_quarantined_one_by_one(make_batch, memfs):
    fs, _ = memfs
    lines = _jsonl(
        {"id": "ok", "text": "fine"},
        '{"id": "s1", "text": "Emoji half \\ud83d only: Berlin."}',  # a lone surrogate escape
        '{"id": "\\udc00", "text": "surrogate id"}',
        '{"id": "m1", "text": "x", "metadata": {"k": "\\ud800"}}',
        '{"id": "d2", "text": "hi", "m": ' + "[" * 100_000,  # deeper than json's recursion limit
        '{"id": ' + "9" * 5000 + ', "text": "long id"}',  # more digits than int() converts
        {"id": "ok2", "text": "also fine"},
    ).encode()
    read = read_batch(fs, make_batch({"d.jsonl": lines}), ReadConfig())
    assert read.records.get_column("doc_id").to_list() == ["ok", "ok2"]
    q = {r["record"]: r for r in read.quarantine.to_dicts()}
    assert q[2]["reason"] == "not valid Unicode: field 'text' has a lone surrogate at character 11"
    assert q[2]["doc_id"] == "s1" and "\\ud83d" in q[2]["raw_excerpt"]
    assert q[3]["reason"].startswith("not valid Unicode: field 'id'") and q[3]["doc_id"] is None
    assert q[4]["reason"].startswith("not valid Unicode: field 'metadata'")
    assert q[5]["reason"] == "not JSON this reader can take: nested too deeply"
    assert q[6]["reason"].startswith("not JSON this reader can take:")
    assert read.docs_in == 7
    # Every row can be written: the quarantine table holds valid UTF-8 only.
    pa.Table.from_pylist(read.quarantine.to_dicts()).to_pandas()
    read.quarantine.write_parquet(io.BytesIO())


def _string_column_of_bytes(values: list[bytes]) -> pa.Array:
    """A Parquet string column whose bytes need not be UTF-8 (pyarrow checks nothing)."""
    binary = pa.array(values, pa.binary())
    return pa.Array.from_buffers(pa.string(), len(values), binary.buffers())


def test_parquet_rows_that_are_not_utf8_are_quarantined_not_the_file(make_batch, memfs):
    fs, _ = memfs
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "text": _string_column_of_bytes([b"Paris", b"Paris \xff\xfe Berlin", b"Rom"]),
            "lang": _string_column_of_bytes([b"fr", b"de", b"\xff"]),
        }
    )
    read = read_batch(fs, make_batch({"d.parquet": _parquet(table)}), ReadConfig())
    assert read.records.get_column("doc_id").to_list() == ["a", "c"]
    assert read.records.get_column("lang").to_list() == ["fr", "\ufffd"]
    [bad] = read.quarantine.to_dicts()
    assert (bad["doc_id"], bad["record"]) == ("b", 2)
    assert bad["reason"] == "text field 'text' is not UTF-8: invalid byte at offset 6"


def test_parquet_ids_of_any_type_and_dictionary_encoded_text(make_batch, memfs):
    fs, _ = memfs
    table = pa.table(
        {
            "id": pa.array([[1, 2], [3], None]),  # a list is no id: the default id is used
            "text": pa.array(["Olaf Scholz in Hamburg.", "Joe Biden in Washington.", "Rom"]).dictionary_encode(),
        }
    )
    read = read_batch(fs, make_batch({"d.parquet": _parquet(table)}), ReadConfig())
    assert read.quarantine.height == 0
    assert read.records.get_column("doc_id").to_list() == ["d.parquet#1", "d.parquet#2", "d.parquet#3"]
    assert read.records.get_column("text").to_list()[1] == "Joe Biden in Washington."
    binary_ids = pa.table({"id": pa.array([b"k1", b"\xff\xfe"], pa.binary()), "text": ["x", "y"]})
    read = read_batch(fs, make_batch({"e.parquet": _parquet(binary_ids)}), ReadConfig())
    rows = read.records.filter(read.records.get_column("source_uri").str.ends_with("e.parquet"))
    assert rows.get_column("doc_id").to_list() == ["k1", "e.parquet#2"]


def test_parquet_with_duplicate_column_names_is_quarantined_whole(make_batch, memfs):
    fs, _ = memfs
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["x"]), pa.array(["y"])], names=["id", "text", "text"])
    read = read_batch(fs, make_batch({"d.parquet": _parquet(table)}), ReadConfig())
    [row] = read.quarantine.to_dicts()
    assert row["reason"].startswith("not a readable Parquet file") and row["record"] is None


def test_an_object_no_reader_rule_foresaw_is_quarantined_whole_not_a_failed_batch(make_batch, memfs, monkeypatch):
    import nerflow.etl.reading as reading

    fs, _ = memfs

    def broken(data, out):
        out.add("half", "a record added before the failure", None, None, 1)
        raise RuntimeError("unforeseen")

    monkeypatch.setitem(reading._READERS, "text", broken)
    read = read_batch(
        fs, make_batch({"a.txt": b"text", "b.jsonl": _jsonl({"id": "b", "text": "fine"}).encode()}), ReadConfig()
    )
    assert read.records.get_column("doc_id").to_list() == ["b"]  # nothing half-read of a.txt is kept
    [row] = read.quarantine.to_dicts()
    assert row["reason"] == "could not be read: RuntimeError: unforeseen" and row["record"] is None


def test_an_s3_key_with_a_version_id_is_quarantined_unread(make_batch, memfs, monkeypatch):
    import nerflow.etl.reading as reading

    fs, _ = memfs
    monkeypatch.setattr(
        reading.storage, "unreadable_object", lambda fs, path: "unsupported object key: x" if "?" in path else None
    )
    read = read_batch(fs, make_batch({"y.txt?versionId=1.txt": b"Kyiv", "y.txt": b"Warsaw"}), ReadConfig())
    assert read.records.get_column("text").to_list() == ["Warsaw"]
    [row] = read.quarantine.to_dicts()
    assert row["reason"] == "unsupported object key: x" and row["source_uri"].endswith("y.txt?versionId=1.txt")


def test_html_is_read_as_its_main_content_or_all_its_visible_text(make_batch, memfs):
    from tests import samples_office

    fs, _ = memfs
    batch = make_batch({"web/article.html": samples_office.article_html()})
    main = read_batch(fs, batch, ReadConfig()).records.to_dicts()[0]
    every = read_batch(fs, batch, ReadConfig(html_text="all")).records.to_dicts()[0]
    assert main["format"] == every["format"] == "html" and main["doc_id"] == "web/article.html"
    assert "cookie" not in main["text"].lower() and "cookie" in every["text"].lower()
    assert len(every["text"]) > len(main["text"])
    with pytest.raises(ValueError, match="html_text"):
        ReadConfig(html_text="some")


def test_every_file_fact_is_a_record_column():
    # A field added to DocumentInfo must reach the tables: the schemas derive from one list.
    from nerflow.etl.normalising import DOCUMENT_SCHEMA

    assert list(FILE_INFO_SCHEMA) == [f.name for f in dataclasses.fields(DocumentInfo)]
    for schema in (RECORD_SCHEMA, DOCUMENT_SCHEMA):
        assert {name: schema[name] for name in FILE_INFO_SCHEMA} == dict(FILE_INFO_SCHEMA)


def test_every_sniffed_format_has_a_reader_and_the_contract_names_what_they_write():
    from data_contracts.schemas import DOCUMENT_FORMATS
    from nerflow.etl import reading
    from nerflow.etl.extraction.sniffing import SNIFFED_FORMATS

    assert set(reading._READERS) == set(SNIFFED_FORMATS)
    # An mbox's documents are e-mails, and an OLE file is never read: neither is a document's format.
    assert set(DOCUMENT_FORMATS) == set(SNIFFED_FORMATS) - {"mbox", "ole"}
