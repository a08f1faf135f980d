"""The checks every Office reader makes first: OLE files named for what they are, zip bombs
refused from the directory alone, and the package parts they share."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from nerflow.etl.extraction import ExtractionError
from nerflow.etl.extraction.office_archive import check_office_archive, core_properties, ole_reason, part_relationships
from tests.samples_office import (
    WORKBOOK_TITLE,
    contacts_xlsx,
    encrypted_office,
    legacy_doc,
    legacy_ppt,
    legacy_xls,
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
