"""Write the rich example documents of examples/documents/files/ from the test samples.

The same generators make the files the tests read (tests/samples_*.py), so the examples and
the tests cannot drift apart: a PDF in two languages (English and German pages), an HTML
article inside navigation and a cookie banner, a DOCX report with a header and a table, an
XLSX workbook of contacts and notes, a PPTX deck with speaker notes and a table, a Markdown note, an e-mail, a Russian letter in cp1251 and a UTF-16 JSONL file as PowerShell
writes it. All text is invented for this repository. The output is deterministic.

Run:  python scripts/make_example_documents.py [OUT_DIR]   (default: examples/documents/files)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import samples_office, samples_pdf, samples_text

FILES = {
    "quarterly-report.pdf": samples_pdf.report_pdf,
    "harbour-article.html": samples_office.article_html,
    "annual-report.docx": samples_office.report_docx,
    "ferry-contacts.xlsx": samples_office.contacts_xlsx,
    "ferry-link-slides.pptx": samples_office.slides_pptx,
    "meeting-notes.md": lambda: samples_office.notes_markdown().encode("utf-8"),
    "ferry-update.eml": samples_text.plain_email,
    "letter-cp1251.txt": samples_text.cp1251_text,
    "powershell-export.jsonl": samples_text.utf16_jsonl,
}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples/documents/files"
    out.mkdir(parents=True, exist_ok=True)
    for name, make in FILES.items():
        (out / name).write_bytes(make())
        print(out / name)


if __name__ == "__main__":
    main()
