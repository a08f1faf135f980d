"""What every Office reader (DOCX, XLSX, PPTX, OpenDocument) does first, and the package
parts the Office Open XML readers share (relationships, core properties).

An Office file is a zip of XML parts, and a zip is the classic way to make a small upload
expand into gigabytes. So before any parser opens anything, the archive's directory is checked
without decompressing a byte: the uncompressed sizes the members declare, in total and against
their compressed sizes. The declared size is a real bound, not a claim to distrust: Python's
``zipfile`` stops inflating a member at its declared size, so a member that lies about its size
fails its CRC check instead of filling memory.

Office files that are not zips are named for what they are. A password-protected OOXML file is
an OLE compound file holding an ``EncryptedPackage`` stream: no text can be read without the
password. Any other OLE file is a legacy binary Office file (.doc, .xls, .ppt), told apart by
the stream its application writes; nerflow reads none of them.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator

from lxml import etree

from nerflow.etl.extraction.document import ExtractionError

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_UNCOMPRESSED_BYTES",
    "OLE_MAGIC",
    "check_office_archive",
    "core_properties",
    "declared_title_and_language",
    "iterparse_part",
    "ole_reason",
    "parse_part",
    "part_relationships",
    "release",
]

# No DTDs, no entities, no network: every part is untrusted XML.
_SAFE_XML = {"resolve_entities": False, "no_network": True, "load_dtd": False}
_DC = "http://purl.org/dc/elements/1.1/"

MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
"""The most an Office file may expand to, all members together."""
MAX_COMPRESSION_RATIO = 200
"""The highest uncompressed/compressed ratio of one member; real documents stay well below
it (long runs of identical XML reach a few dozen), deflate bombs reach about a thousand."""
_RATIO_MIN_BYTES = 1024 * 1024
# Below this a member cannot do harm however well it compresses, and small highly repetitive
# parts (an empty numbering or settings part) would otherwise be false alarms.

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")

# Directory entry names (UTF-16LE, as OLE stores them) of the stream each legacy application
# writes, and what to tell the user. "Book" is the stream of Excel 5/95 workbooks.
_LEGACY_STREAMS = (
    ("WordDocument", "legacy Word .doc (OLE) file: not supported; save as .docx"),
    ("Workbook", "legacy Excel .xls (OLE) file: not supported; save as .xlsx"),
    ("Book", "legacy Excel .xls (OLE) file: not supported; save as .xlsx"),
    ("PowerPoint Document", "legacy PowerPoint .ppt (OLE) file: not supported; save as .pptx"),
)


def ole_reason(data: bytes) -> str:
    """Why an OLE compound file cannot be read: encrypted, or which legacy format it is."""
    if _has_stream(data, "EncryptedPackage"):
        return "password-protected Office file: encrypted, no text can be read"
    for stream, reason in _LEGACY_STREAMS:
        if _has_stream(data, stream):
            return reason
    return "OLE compound file that is no Office document nerflow reads"


def _has_stream(data: bytes, name: str) -> bool:
    """Whether a directory entry names ``name``: entries are 128 bytes each, in sectors that
    are multiples of 512 bytes from the file's start, and each begins with its name,
    NUL-terminated (so "Book" is not found inside "Workbook")."""
    encoded = name.encode("utf-16-le") + b"\x00\x00"
    at = data.find(encoded)
    while at >= 0:
        if at % 128 == 0:
            return True
        at = data.find(encoded, at + 1)
    return False


def check_office_archive(data: bytes, *, main_part: str, what: str) -> None:
    """Refuse what an Office file's parser must not open, from the archive's directory alone.

    Args:
        data: The file's bytes.
        main_part: The member every such file has (``word/document.xml``); its absence means
            the zip is some other file.
        what: The format as reasons name it (``"a DOCX"``, ``"an XLSX"``).

    Raises:
        ExtractionError: An OLE file (encrypted or legacy), not a zip, a zip bomb, or a zip
            without ``main_part``.
    """
    if data.startswith(OLE_MAGIC):
        raise ExtractionError(ole_reason(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"not {what}: not a zip archive") from exc
    total = sum(m.file_size for m in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise ExtractionError(
            f"zip bomb: members expand to {total} bytes in all, over the limit of {MAX_UNCOMPRESSED_BYTES}"
        )
    for member in members:
        if member.file_size < _RATIO_MIN_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise ExtractionError(
                f"zip bomb: {member.filename} expands from {member.compress_size} to {member.file_size} bytes, "
                f"ratio {ratio:.0f} over {MAX_COMPRESSION_RATIO}"
            )
    if not any(m.filename == main_part for m in members):
        raise ExtractionError(f"not {what}: no {main_part}")


def parse_part(archive: zipfile.ZipFile, part: str) -> etree._Element:
    """The root element of package part ``part``, parsed whole."""
    with archive.open(part) as source:
        return etree.parse(source, etree.XMLParser(**_SAFE_XML)).getroot()


def iterparse_part(
    archive: zipfile.ZipFile, part: str, events: tuple[str, ...]
) -> Iterator[tuple[str, etree._Element]]:
    """``(event, element)`` of package part ``part``, streamed (a worksheet of any size)."""
    with archive.open(part) as source:
        yield from etree.iterparse(source, events=events, **_SAFE_XML)


def release(element: etree._Element) -> None:
    """Forget a streamed element once read, and the siblings read before it, so that a part
    streamed row by row holds one row at a time."""
    element.clear()
    while element.getprevious() is not None:
        del element.getparent()[0]


def declared_title_and_language(root: etree._Element) -> tuple[str | None, str | None]:
    """``(title, language)`` of the Dublin Core elements under ``root`` (OOXML's core
    properties, OpenDocument's ``meta.xml``), each None when absent or blank."""

    def value(name: str) -> str | None:
        element = root.find(f".//{{{_DC}}}{name}")
        text = (element.text or "").strip() if element is not None else ""
        return text or None

    return value("title"), value("language")


def part_relationships(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """The relationships of package part ``part`` (``xl/workbook.xml``, or ``""`` for the
    package's own): ``{id: (kind, target part)}``, the kind being the last word of the
    relationship's type (``"worksheet"``, ``"comments"``, ``"core-properties"``) and the
    target a member name. Links to outside the package are left out."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive.NameToInfo:
        return {}
    found = {}
    for relationship in parse_part(archive, rels).iter("{*}Relationship"):
        target = relationship.get("Target", "")
        if relationship.get("TargetMode") == "External" or not target:
            continue
        member = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        kind = relationship.get("Type", "").rsplit("/", 1)[-1]
        found[relationship.get("Id", "")] = (kind, posixpath.normpath(member))
    return found


def core_properties(archive: zipfile.ZipFile) -> tuple[str | None, str | None]:
    """``(title, language)`` the package's core properties declare, each None when absent."""
    part = next((t for kind, t in part_relationships(archive, "").values() if kind == "core-properties"), None)
    if part is None or part not in archive.NameToInfo:
        return None, None
    return declared_title_and_language(parse_part(archive, part))
