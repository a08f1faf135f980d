"""Text out of rich input files (PDF, HTML, DOCX, XLSX, PPTX, Markdown, e-mail, text in any
encoding).

Each format has a module of its own that turns an object's bytes into
:class:`~nerflow.etl.extraction.document.ExtractedDocument` values: the document's text in the
normal form (:mod:`nerflow.etl.normal_form`), its segments (where each part of the text came
from: page, block, boxes) and what the file declares about itself. A file that cannot be read
raises :class:`~nerflow.etl.extraction.document.ExtractionError`, whose reason becomes the
quarantine row.
"""

from nerflow.etl.extraction.document import (
    DocumentInfo,
    ExtractedDocument,
    ExtractionError,
    Segment,
    TextBuilder,
)

__all__ = ["DocumentInfo", "ExtractedDocument", "ExtractionError", "Segment", "TextBuilder"]
