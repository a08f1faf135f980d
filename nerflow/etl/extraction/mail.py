"""E-mail messages (``.eml``) and mailboxes (``.mbox``) as documents.

What a person wrote in a message is its subject and its body; headers, quoted-printable
soft breaks, MIME boundaries and attachments are not text to annotate. So a message becomes
the subject, then one body: the text/plain part when there is one (it is what the author typed;
the HTML alternative repeats it with markup), else the text/html part through the HTML reader.
A message with neither holds nothing to annotate and is refused with the names of its
attachments, so the quarantine row says what the message was.

Parts are decoded with their declared charset; an undeclared charset (8-bit bytes under the
RFC's US-ASCII default) or a wrong or unknown one falls back to :func:`decode_text`, which
refuses rather than guesses (mail clients mislabel charsets often).

Segment blocks name the MIME part as IMAP numbers it (``body/1``, ``body/1.2``: the first
part, the second part inside the first), so a span can be traced back to its part.

An mbox is split on its ``From `` separator lines the way :mod:`mailbox` does (every line that
starts with ``From ``), and mboxrd quoting is undone (``>From `` back to ``From ``, ``>>From ``
to ``>From ``). One bad message is one :class:`ExtractionError` in the result, not a failed file.
"""

from __future__ import annotations

import dataclasses
import re
from email import policy
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser

from nerflow.etl.extraction.document import DocumentInfo, ExtractedDocument, ExtractionError, TextBuilder
from nerflow.etl.extraction.text_encoding import decode_text

__all__ = ["extract_email", "extract_mbox"]

_PARSER = BytesParser(policy=policy.default)
_MBOXRD_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)


def extract_email(data: bytes) -> ExtractedDocument:
    """One RFC 5322 message as a document: a ``"subject"`` segment (block ``subject``), then
    the body's segments (see the module docstring). ``info.title`` is the subject.

    Raises:
        ExtractionError: ``"e-mail with no text body: only attachments (<names>)"``, a body
            whose bytes are not text or whose encoding is uncertain, or a message the parser
            cannot take (``"malformed e-mail: …"``).
    """
    try:
        msg = _PARSER.parsebytes(data)
        assert isinstance(msg, EmailMessage)  # policy.default makes EmailMessage
        subject = str(msg.get("subject", "") or "").strip() or None
        language = str(msg.get("content-language", "") or "").strip() or None
        body = msg.get_body(preferencelist=("plain", "html"))
    except (ValueError, TypeError, LookupError, IndexError) as e:
        # The header parser of policy.default raises on a few malformed headers when read.
        raise ExtractionError(f"malformed e-mail: {type(e).__name__}: {e}") from None
    if body is None:
        names = _attachment_names(msg)
        raise ExtractionError(f"e-mail with no text body: only attachments ({', '.join(names) or 'none'})")
    path = "body/" + _part_number(msg, body)
    text, encoding, confidence = _part_text(body)
    builder = TextBuilder()
    if subject:
        builder.add(subject, kind="subject", block="subject")
    if body.get_content_subtype() == "html":
        _add_html(builder, text, path)
    else:
        builder.add(text, kind="body", block=path)
    info = DocumentInfo(
        format="email",
        title=subject,
        declared_lang=language,
        encoding=encoding,
        encoding_confidence=confidence,
    )
    return builder.build(info)


def extract_mbox(data: bytes) -> list[ExtractedDocument | ExtractionError]:
    """Each message of an mbox through :func:`extract_email`, ``part`` its 1-based index; a
    message that cannot be read is its :class:`ExtractionError` (``part`` set) in the list.

    Raises:
        ExtractionError: The bytes do not start with a ``From `` line, so are no mbox.
    """
    messages = _split_mbox(data)
    out: list[ExtractedDocument | ExtractionError] = []
    for number, raw in enumerate(messages, start=1):
        try:
            out.append(dataclasses.replace(extract_email(raw), part=number))
        except ExtractionError as e:
            e.part = number
            out.append(e)
    return out


def _split_mbox(data: bytes) -> list[bytes]:
    body = data.lstrip(b"\r\n")
    if not body.startswith(b"From "):
        raise ExtractionError("not an mbox file: it does not start with a 'From ' separator line")
    messages: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.splitlines(keepends=True):
        if line.startswith(b"From "):
            if current is not None:
                messages.append(_finish(current))
            current = []
            continue
        assert current is not None  # the first line is a separator
        current.append(line)
    if current is not None:
        messages.append(_finish(current))
    return messages


def _finish(lines: list[bytes]) -> bytes:
    # The blank line before a separator belongs to the format, not to the message.
    raw = b"".join(lines)
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n\n"):
        raw = raw[:-1]
    return _MBOXRD_QUOTED.sub(rb"\1", raw)


def _part_text(part: MIMEPart) -> tuple[str, str | None, float | None]:
    """A text part's text, the encoding it was decoded with and how sure that is."""
    declared = part.get_content_charset()
    if declared is not None:
        try:
            # Strict, not get_content()'s default "replace": a wrong charset must not
            # become replacement characters in the text.
            return str(part.get_content(errors="strict")), declared, 1.0
        except (UnicodeDecodeError, LookupError):
            pass
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    decoded = decode_text(raw)
    return decoded.text, decoded.encoding, decoded.confidence


def _add_html(builder: TextBuilder, html: str, path: str) -> None:
    # Imported here: the HTML reader is heavier (trafilatura), and plain-text mail needs none of it.
    from nerflow.etl.extraction.html import extract_html

    # A UTF-8 byte order mark outranks a <meta charset> in HTML's encoding sniffing, and the
    # part's text is decoded already: its meta may name the charset of the MIME part, not of
    # these bytes.
    doc = extract_html(b"\xef\xbb\xbf" + html.encode("utf-8"))
    previous_end: int | None = None
    for seg in doc.segments:
        gap = doc.text[previous_end : seg.start] if previous_end is not None else ""
        separator = "\n" if gap == "\n" else "\n\n"
        block = f"{path}/{seg.block}" if seg.block else path
        builder.add(doc.text[seg.start : seg.end], kind=seg.kind, separator=separator, block=block)
        previous_end = seg.end


def _part_number(msg: Message, target: Message) -> str:
    """The IMAP part number of ``target`` in ``msg`` ("1" for a single-part message)."""
    if target is msg and not msg.is_multipart():
        return "1"

    def walk(part: Message, prefix: str) -> str | None:
        payload = part.get_payload()
        if not part.is_multipart() or not isinstance(payload, list):
            return None
        for index, child in enumerate(payload, start=1):
            number = f"{prefix}.{index}" if prefix else str(index)
            if child is target:
                return number
            found = walk(child, number)
            if found is not None:
                return found
        return None

    return walk(msg, "") or "1"


def _attachment_names(msg: Message) -> list[str]:
    names = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        names.append(name if name else f"unnamed {part.get_content_type()}")
    return names
