"""Normalise document text with Polars, detect missing languages, digest the result.

The text rules are in :mod:`nerflow.etl.normal_form` (every entity offset refers to the
normalised text).

A document whose normalised text is empty is kept with status ``"empty"``. A document whose
``doc_id`` repeats one earlier in the same batch is quarantined (stage ``"normalise"``): the
``documents`` table has one row per id.

Documents frame (:data:`DOCUMENT_SCHEMA`):

    ============== ======= ==================================================
    doc_id         String
    source_uri     String
    record         Int64   1-based line or row; null for text files
    text           String  normalised
    lang           String  given (lower-cased BCP 47) or detected, else "und"
    lang_detected  Boolean lang comes from detection
    text_sha256    String  hex digest of the UTF-8 normalised text
    n_chars        Int32   code points of the normalised text
    status         String  "ok" or "empty"
    metadata       String  JSON or null
    ============== ======= ==================================================

and what the reader found out about the file, as ``reading.RECORD_SCHEMA`` has it:
``format``, ``page_count``, ``title``, ``declared_lang``, ``encoding``,
``encoding_confidence``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import polars as pl

from data_contracts.schemas import UNKNOWN_LANG
from nerflow.etl.normal_form import normalise_text_expr
from nerflow.etl.quarantine import NORMALISE, quarantine_rows
from nerflow.etl.reading import FILE_INFO_SCHEMA, SEGMENT_SCHEMA, ReadBatch

__all__ = [
    "REFERENCE_LANGUAGES",
    "DOCUMENT_SCHEMA",
    "NormaliseConfig",
    "NormalisedBatch",
    "normalise_batch",
    "normalise_text_expr",
    "detect_languages",
]

REFERENCE_LANGUAGES = ("en", "de", "es", "fr", "it", "nl", "pl", "pt", "ru", "zh")
"""The ten languages of the reference model; detection chooses among them by default."""

DOCUMENT_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # mypy joins the spread Schema's values to object
        "doc_id": pl.String,
        "source_uri": pl.String,
        "record": pl.Int64,
        "text": pl.String,
        "lang": pl.String,
        "lang_detected": pl.Boolean,
        "text_sha256": pl.String,
        "n_chars": pl.Int32,
        "status": pl.String,
        "metadata": pl.String,
        **FILE_INFO_SCHEMA,
    }
)

# A language tag as a partition value must be path-safe; anything else is treated as absent.
_LANG_TAG = r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$"


@dataclass(frozen=True, kw_only=True)
class NormaliseConfig:
    """Normalisation settings.

    Attributes:
        languages: ISO 639-1 codes language detection may answer; fewer is faster and more
            accurate. Documents that carry a language keep it whatever this says.
        detect_chars: Characters of a document's start that detection looks at.
        min_relative_distance: Lingua's minimum distance between the best two languages;
            below it the answer is ``"und"`` instead of a guess.
    """

    languages: tuple[str, ...] = REFERENCE_LANGUAGES
    detect_chars: int = 2000
    min_relative_distance: float = 0.05

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages must name at least one language")
        from lingua import IsoCode639_1

        unknown = []
        for code in self.languages:
            try:
                if code != code.lower():
                    raise ValueError(code)
                IsoCode639_1.from_str(code)
            except ValueError:
                unknown.append(code)
        if unknown:
            raise ValueError(f"languages must be lower-case ISO 639-1 codes that Lingua detects, got {unknown}")
        if self.detect_chars < 1:
            raise ValueError(f"detect_chars must be positive, got {self.detect_chars}")
        if not 0.0 <= self.min_relative_distance < 1.0:
            raise ValueError(f"min_relative_distance must be in [0, 1), got {self.min_relative_distance}")


@dataclass(frozen=True, eq=False)
class NormalisedBatch:
    """A batch after normalisation.

    Attributes:
        batch_id: The batch's id.
        documents: :data:`DOCUMENT_SCHEMA`, one row per distinct ``doc_id``.
        quarantine: Read and normalise quarantine rows (:data:`quarantine.QUARANTINE_SCHEMA`).
        segments: The documents' segments (``reading.SEGMENT_SCHEMA``), those of quarantined
            duplicates left out.
    """

    batch_id: str
    documents: pl.DataFrame
    quarantine: pl.DataFrame
    segments: pl.DataFrame = field(default_factory=SEGMENT_SCHEMA.to_frame)

    @property
    def docs_in(self) -> int:
        """Records seen by reading (documents plus quarantined)."""
        return self.documents.height + self.quarantine.height


def _sha256(texts: pl.Series) -> pl.Series:
    return pl.Series([hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts.to_list()], dtype=pl.String)


@lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...], min_relative_distance: float):
    # Built once per process and language set: Lingua's models load lazily and are shared.
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [IsoCode639_1.from_str(code) for code in languages]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    return builder.with_minimum_relative_distance(min_relative_distance).build()


def detect_languages(texts: Sequence[str], config: NormaliseConfig = NormaliseConfig()) -> list[str]:
    """ISO 639-1 code of each text among ``config.languages``, ``"und"`` when undecided.

    A single configured language is returned for every non-empty text without asking the
    detector (there is nothing to choose).
    """
    if not texts:
        return []
    if len(config.languages) == 1:
        return [config.languages[0] if t.strip() else UNKNOWN_LANG for t in texts]
    detector = _detector(tuple(config.languages), config.min_relative_distance)
    found = detector.detect_languages_in_parallel_of([t[: config.detect_chars] for t in texts])
    return [lang.iso_code_639_1.name.lower() if lang is not None else UNKNOWN_LANG for lang in found]


def normalise_batch(read: ReadBatch, config: NormaliseConfig = NormaliseConfig()) -> NormalisedBatch:
    """Normalise a read batch.

    Args:
        read: The batch's records (``reading.RECORD_SCHEMA``) and read quarantine.
        config: Language detection settings.

    Returns:
        Documents (:data:`DOCUMENT_SCHEMA`, input order) and quarantine (read rows first, then
        duplicate ids).
    """
    records = read.records.with_columns(
        first=pl.col("doc_id").is_first_distinct(),
    )
    duplicates = records.filter(~pl.col("first"))
    quarantine = pl.concat(
        [
            read.quarantine,
            quarantine_rows(
                duplicates,
                stage=NORMALISE,
                reason="duplicate doc_id: an earlier record of this batch has the same id",
            ),
        ]
    )
    given = pl.col("lang").str.strip_chars().str.to_lowercase().str.replace_all("_", "-")
    docs = (
        records.filter(pl.col("first"))
        .with_columns(text=normalise_text_expr("text"), lang=pl.when(given.str.contains(_LANG_TAG)).then(given))
        .with_columns(
            status=pl.when(pl.col("text") == "").then(pl.lit("empty")).otherwise(pl.lit("ok")),
            n_chars=pl.col("text").str.len_chars().cast(pl.Int32),
            text_sha256=pl.col("text").map_batches(_sha256, return_dtype=pl.String),
        )
    )
    to_detect = docs.select((pl.col("lang").is_null() & (pl.col("status") == "ok")).alias("m")).to_series()
    detected = detect_languages(docs.filter(to_detect).get_column("text").to_list(), config)
    detected_col = pl.Series("detected", [None] * docs.height, dtype=pl.String)
    if detected:
        detected_col = detected_col.scatter(to_detect.arg_true(), detected)
    docs = docs.with_columns(detected_col).with_columns(
        lang_detected=pl.col("detected").is_not_null(),
        lang=pl.coalesce("lang", "detected", pl.lit(UNKNOWN_LANG)),
    )
    documents = docs.select(DOCUMENT_SCHEMA.names()).cast(DOCUMENT_SCHEMA)
    # Readers of files hand over text in the normal form already, so the offsets of their
    # segments hold for the normalised text (nerflow.etl.extraction.document.TextBuilder).
    segments = read.segments.join(
        documents.select("doc_id", "source_uri", "record"),
        on=["doc_id", "source_uri", "record"],
        how="semi",
        nulls_equal=True,
    )
    return NormalisedBatch(batch_id=read.batch_id, documents=documents, quarantine=quarantine, segments=segments)
