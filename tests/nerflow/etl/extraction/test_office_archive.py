"""The checks every Office reader makes first: OLE files named for what they are, zip bombs
refused from the directory alone, and the package parts they share."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerflow.etl.extraction import ExtractionError
from nerflow.etl.extraction.docx import extract_docx
from nerflow.etl.extraction.office_archive import check_office_archive, core_properties, ole_reason, part_relationships
from nerflow.etl.extraction.opendocument import extract_opendocument
from nerflow.etl.extraction.pptx import extract_pptx
from nerflow.etl.extraction.xlsx import extract_xlsx
from tests.samples_office import (
    WORKBOOK_TITLE,
    contacts_ods,
    contacts_xlsx,
    encrypted_office,
    legacy_doc,
    legacy_ppt,
    legacy_xls,
    report_docx,
    report_odt,
    slides_odp,
    slides_pptx,
    zip_bomb_docx,
)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (encrypted_office, "password-protected Office file: encrypted, no text can be read"),
        (legacy_doc, "legacy Word .doc (OLE) file: not supported; save as .docx"),
        (legacy_xls, "legacy Excel .xls (OLE) file: not supported; save as .xlsx"),
        (legacy_ppt, "legacy PowerPoint .ppt (OLE) file: not supported; save as .pptx"),
        (lambda: encrypted_office()[:512], "OLE compound file that is no Office document nerflow reads"),
    ],
    ids=["encrypted", "doc", "xls", "ppt", "other"],
)
def test_ole_files_are_named_for_what_they_are(build, reason: str) -> None:
    assert ole_reason(build()) == reason
    with pytest.raises(ExtractionError, match=f"^{re.escape(reason)}$"):
        check_office_archive(build(), main_part="xl/workbook.xml", what="an XLSX")


def test_a_stream_name_inside_a_longer_one_does_not_count() -> None:
    # "Book" (Excel 5) is the tail of "Workbook": only a name that starts a directory entry counts.
    data = legacy_xls().replace("Workbook".encode("utf-16-le"), "Notebook".encode("utf-16-le"))
    assert ole_reason(data) == "OLE compound file that is no Office document nerflow reads"


def test_zip_bombs_are_refused_for_every_format() -> None:
    with pytest.raises(ExtractionError, match=r"^zip bomb: word/document\.xml expands"):
        check_office_archive(zip_bomb_docx(), main_part="ppt/presentation.xml", what="a PPTX")


def test_relationships_resolve_to_member_names() -> None:
    with zipfile.ZipFile(io.BytesIO(contacts_xlsx())) as archive:
        kinds = sorted(part_relationships(archive, "xl/workbook.xml").values())
        assert ("sharedStrings", "xl/sharedStrings.xml") in kinds
        assert ("worksheet", "xl/worksheets/sheet1.xml") in kinds
        assert ("comments", "xl/comments1.xml") in part_relationships(archive, "xl/worksheets/sheet2.xml").values()
        assert part_relationships(archive, "xl/no-such-part.xml") == {}
        assert core_properties(archive) == (WORKBOOK_TITLE, None)


_READERS = {
    "docx": (extract_docx, report_docx),
    "xlsx": (extract_xlsx, contacts_xlsx),
    "pptx": (extract_pptx, slides_pptx),
    "odt": (extract_opendocument, report_odt),
    "ods": (extract_opendocument, contacts_ods),
    "odp": (extract_opendocument, slides_odp),
}


@pytest.mark.parametrize("fmt", list(_READERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_part_gives_a_document_or_a_reason_never_another_error(fmt: str, data) -> None:
    extract, sample = _READERS[fmt]
    original = sample()
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    index = data.draw(st.integers(0, len(members) - 1), label="member")
    content = members[index][1]
    start = data.draw(st.integers(0, max(len(content) - 1, 0)), label="start")
    length = data.draw(st.integers(1, 64), label="length")
    noise = data.draw(st.binary(min_size=0, max_size=64), label="replacement")
    damaged = content[:start] + noise + content[start + length :]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (member, body) in enumerate(members):
            archive.writestr(member, damaged if i == index else body)
    try:
        doc = extract(out.getvalue())
    except ExtractionError as e:
        assert e.reason
    else:
        assert all(0 <= s.start < s.end <= len(doc.text) for s in doc.segments)
