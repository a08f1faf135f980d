"""How fast nerflow reads each input format, next to how fast the model reads the text.

Each format's sample (``tests/samples_*.py``; the PDF at ``--pdf-pages`` pages, the text
formats repeated to about ``--text-kb`` KB, the workbook one row of five cells per 40 bytes of ``--text-kb``) goes through the reading stage as the flow runs
it (``nerflow.etl.reading.read_object``: content sniffing, decoding, extraction, segments),
``--repeat`` times; the best time counts. MB/s is input bytes per second, characters/s the
extracted text, pages/s for the PDF. For comparison, the engine's throughput on the same
extracted text is measured with the shipped default model (the engine's defaults: exact
precision, the model's span filter; CPU). PDFs are read in
a child process (``nerflow.etl.extraction.pdf_process``); the PDF is also read in this process,
as before that, and the child's start is timed once.

Run:  python benchmarks/extraction.py [--pdf-pages 200] [--text-kb 256] [--repeat 3] [--skip-engine]
Writes benchmarks/results/extraction.json and its section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_description, offline_environment
from _report import replace_section

sys.path.insert(0, str(ROOT))
offline_environment()

RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- extraction:begin -->", "<!-- extraction:end -->"


def samples(pdf_pages: int, text_kb: int) -> dict[str, tuple[str, bytes]]:
    from tests import samples_office, samples_pdf, samples_text

    def repeated(unit: bytes, sep: bytes = b"\n\n") -> bytes:
        return sep.join([unit] * max(1, (text_kb << 10) // (len(unit) + len(sep))))

    article = samples_office.article_html()
    body = article[article.index(b"<article") : article.index(b"</article>") + len(b"</article>")]
    big_html = article.replace(body, body * max(1, (text_kb << 10) // len(body)))
    return {
        "pdf": ("report.pdf", samples_pdf.many_pages_pdf(pdf_pages)),
        "html": ("article.html", big_html),
        "docx": ("report.docx", samples_office.report_docx()),
        "xlsx": ("ledger.xlsx", samples_office.ledger_xlsx(max(1, (text_kb << 10) // 40))),
        "pptx": ("slides.pptx", samples_office.slides_pptx()),
        "odt": ("report.odt", samples_office.report_odt()),
        "ods": ("contacts.ods", samples_office.contacts_ods()),
        "odp": ("slides.odp", samples_office.slides_odp()),
        "markdown": ("notes.md", repeated(samples_office.notes_markdown().encode())),
        "email": ("update.eml", samples_text.plain_email()),
        "text (cp1251)": ("letter.txt", repeated(samples_text.cp1251_text())),
        "text (utf-8)": ("letter-utf8.txt", repeated(samples_text.cp1251_text().decode("cp1251").encode())),
        "jsonl (utf-16)": ("export.jsonl", samples_text.utf16_jsonl()),
    }


def read_once(path: Path, root: Path):
    import fsspec

    from nerflow import storage
    from nerflow.etl.reading import ReadConfig, _read

    fs = fsspec.filesystem("file")
    [obj] = [o for o in storage.list_objects(fs, str(root)) if o.path.endswith(path.name)]
    t0 = time.perf_counter()
    out = _read(fs, obj, ReadConfig())
    seconds = time.perf_counter() - t0
    records, bad = out.frames()
    assert bad.height == 0, bad.to_dicts()
    return seconds, records


def pdf_costs(path: Path, root: Path, data: bytes, repeat: int, row: dict) -> dict:
    """What reading PDFs in a child process costs: the same file read in this process (the
    reader the flow used before), and the start of a child."""
    from nerflow.etl import reading
    from nerflow.etl.extraction.pdf import extract_pdf
    from nerflow.etl.extraction.pdf_process import PdfReaderProcess

    child_reader = reading._READERS["pdf"]
    reading._READERS["pdf"] = reading._read_file(extract_pdf)
    try:
        in_process = min(read_once(path, root)[0] for _ in range(repeat))
    finally:
        reading._READERS["pdf"] = child_reader
    process = PdfReaderProcess()
    t0 = time.perf_counter()
    process.read(data)
    first = time.perf_counter() - t0
    status = Path(f"/proc/{process.pid}/status").read_text()
    process.close()
    return {
        "seconds_in_process": round(in_process, 4),
        "seconds_in_child": row["seconds"],
        "child_start_seconds": round(first - row["seconds"], 2),
        "child_rss_mb": round(int(status.split("VmRSS:")[1].split()[0]) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf-pages", type=int, default=200)
    parser.add_argument("--text-kb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-engine", action="store_true")
    args = parser.parse_args()

    rows = []
    texts = []
    pdf_child = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for fmt, (name, data) in samples(args.pdf_pages, args.text_kb).items():
            path = root / name
            path.write_bytes(data)
            best, records = min((read_once(path, root) for _ in range(args.repeat)), key=lambda r: r[0])
            chars = sum(len(t) for t in records.get_column("text").to_list())
            pages = records.get_column("page_count").to_list()[0] if fmt == "pdf" else None
            rows.append(
                {
                    "format": fmt,
                    "bytes": len(data),
                    "documents": records.height,
                    "characters": chars,
                    "pages": pages,
                    "seconds": round(best, 4),
                    "mb_per_s": round(len(data) / best / 1e6, 2),
                    "chars_per_s": round(chars / best),
                    "pages_per_s": round(pages / best, 1) if pages else None,
                }
            )
            texts.extend(records.get_column("text").to_list())
            print(json.dumps(rows[-1]), flush=True)
            if fmt == "pdf":
                pdf_child = pdf_costs(path, root, data, args.repeat, rows[-1])
                print(json.dumps(pdf_child), flush=True)

    engine = None
    if not args.skip_engine:
        from ner_core import EngineConfig, NerEngine, load_model

        model = load_model("default", device="cpu")
        sample = "\n\n".join(texts)[:20000]
        eng = NerEngine(model, EngineConfig())
        t0 = time.perf_counter()
        list(eng.predict([sample]))
        seconds = time.perf_counter() - t0
        engine = {
            "model": "default",
            "characters": len(sample),
            "seconds": round(seconds, 2),
            "chars_per_s": round(len(sample) / seconds),
        }
        print(json.dumps(engine), flush=True)

    result = {
        "command": "python benchmarks/extraction.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_description(),
        "python": platform.python_version(),
        "args": vars(args),
        "formats": rows,
        "pdf_child": pdf_child,
        "engine": engine,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extraction.json").write_text(json.dumps(result, indent=2) + "\n")
    replace_section(REPORT, BEGIN, END, render(result))


def render(r: dict) -> str:
    lines = [
        BEGIN,
        "## Reading input formats",
        "",
        f"`{r['command']}` on {r['cpu']}, Python {r['python']}: the reading stage",
        "(sniffing, decoding, extraction, segments) per format, best of "
        f"{r['args']['repeat']} runs, one process, one thread.",
        "",
        "| format | input | documents | characters | pages | seconds | MB/s | characters/s | pages/s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for f in r["formats"]:
        lines.append(
            f"| {f['format']} | {f['bytes'] / 1024:,.0f} KB | {f['documents']} | {f['characters']:,} | "
            f"{f['pages'] or '–'} | {f['seconds']:.3f} | {f['mb_per_s']:.2f} | {f['chars_per_s']:,} | "
            f"{f['pages_per_s'] or '–'} |"
        )
    if r.get("pdf_child"):
        c = r["pdf_child"]
        lines += [
            "",
            f"PDFs are read in a child process (`docs/input-formats.md`): the PDF above took {c['seconds_in_child']:.3f} s "
            f"through it against {c['seconds_in_process']:.3f} s read in this process, and starting the child, once per "
            f"process, {c['child_start_seconds']:.2f} s; the child then holds {c['child_rss_mb']} MB.",
        ]
    if r["engine"]:
        e = r["engine"]
        slowest = min(f["chars_per_s"] for f in r["formats"])
        lines += [
            "",
            f"The default model reads {e['chars_per_s']:,} characters/s of the same text with the engine's defaults "
            "(exact precision, the model's span filter) on this "
            f"CPU ({e['characters']:,} characters in {e['seconds']} s): the slowest reader is "
            f"{slowest / e['chars_per_s']:,.0f}x faster than the model, so reading is not the bottleneck.",
        ]
    return "\n".join(lines) + "\n" + END + "\n"


if __name__ == "__main__":
    main()
