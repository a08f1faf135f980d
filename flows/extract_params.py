"""The extract-entities flow's parameters: one model, the one definition.

The Prefect UI's form, the API, ``nerflow run|backfill|serve``'s options (generated from
these fields by :mod:`nerflow.cli`) and the stages' frozen configs all derive from
:class:`ExtractParams`. Adding a parameter touches this model, the code that uses it and a
test (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ner_core import EngineConfig
from ner_core.span_filter import parse_span_filter
from nerflow.etl.annotating import AnnotateConfig, DevicePolicy, ModelInfo
from nerflow.etl.extraction.pdf_process import PAGE_TIME_LIMIT_S
from nerflow.etl.formats import InputFormat
from nerflow.etl.listing import BatchingConfig
from nerflow.etl.normalising import REFERENCE_LANGUAGES, NormaliseConfig
from nerflow.etl.ray_runner import RaySettings
from nerflow.etl.reading import MAX_DOCUMENT_CHARS, FieldMapping, HtmlText, ReadConfig
from nerflow.etl.tables import EmbeddingDtype
from nerflow.etl.validating import ValidateConfig
from nerflow.storage import Location, check_protocol, is_local_path, refuse_credentials

__all__ = ["ExtractParams", "StorageOptions"]


def _no_credentials(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    refuse_credentials(value, where=str(info.field_name))
    return value


StorageOptions = Annotated[dict[str, Any], AfterValidator(_no_credentials)]
"""fsspec storage options as a flow parameter: credentials refused (parameters are stored in
clear with the flow run; :data:`nerflow.storage.SAFE_CREDENTIALS` says where they come from)."""


class ExtractParams(BaseModel):
    """Parameters of the extract-entities flow (one form in the Prefect UI)."""

    # hide_input_in_errors: a refused storage option may hold a secret; an error must not echo it.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    input_uri: str = Field(
        min_length=1, description="Documents: s3://bucket/prefix, a local directory or a single file"
    )
    output_uri: str = Field(min_length=1, description="Where the tables go: s3://bucket/prefix or a local directory")

    # Source: what is read, and how
    input_format: InputFormat = Field(
        "auto", description="'auto' decides by content (magic bytes, sniffing), then by suffix; a format forces it"
    )
    fields: FieldMapping = Field(default_factory=FieldMapping, description="Input field names")
    html_text: HtmlText = Field(
        "main", description="HTML pages: 'main' content with boilerplate removed, or 'all' visible text"
    )
    pdf_page_time_limit_s: float = Field(
        PAGE_TIME_LIMIT_S,
        gt=0,
        description="Seconds one PDF page may take to read; a PDF that keeps the reader longer is stopped "
        "and quarantined with the page",
    )
    modified_after: datetime | None = Field(
        None,
        description="Only input objects last written at or after this time (UTC when no zone is given)",
    )
    modified_before: datetime | None = Field(
        None,
        description="Only input objects last written before this time (UTC when no zone is given)",
    )
    # The name stays (deployments send it); what it bounds is said: objects are batched before
    # they are read, so a JSONL or Parquet file is one, whatever its records.
    batch_docs: int = Field(
        1000,
        ge=1,
        description="Most input objects (files) per batch: a text file is one document, a JSONL or Parquet "
        "file counts as one however many records it holds (batch_bytes bounds those)",
    )
    batch_bytes: int = Field(64 << 20, ge=1, description="Most input bytes per batch")
    max_document_chars: int = Field(
        MAX_DOCUMENT_CHARS,
        ge=1,
        description="Longest document text, in characters; a longer one is quarantined with its size",
    )
    languages: tuple[str, ...] = Field(
        REFERENCE_LANGUAGES, min_length=1, description="ISO 639-1 codes language detection chooses from"
    )
    # Parameters are stored with the flow run: credentials belong in the environment
    # (AWS_* variables, an instance role), not here.
    storage_options: StorageOptions = Field(
        default_factory=dict,
        # No double quotes in a description: the Prefect UI shows them as &quot;.
        description="fsspec options for the input (and the output unless set below), as JSON: for MinIO, "
        "client_kwargs with endpoint_url http://minio:9000. No credentials: they come from the environment "
        "or the AWS configuration (a profile, an instance role), and a key, secret or token here is refused",
    )

    # Model and engine
    model: str = Field("default", min_length=1, description="Model: 'default', a directory, an fsspec URI or a hub id")
    device: DevicePolicy = Field("auto", description="'auto' uses every GPU when there is one")
    precision: Literal["exact", "fast"] = Field("exact", description="'fast': bf16/fp16 or int8 where supported")
    span_filter: str = Field(
        EngineConfig.span_filter,
        description="Which candidate spans get the model's full scoring: 'auto' the model's span filter at its stored "
        "operating point when it has one (about 5x faster with the default model), else all; 'off' all (exact mode's "
        "work, identical to SpanMarker); 'stored'; 'threshold=P'; 'budget=K' (spans per word)",
    )
    window_tokens: int | None = Field(None, ge=8, description="Tokens per window; empty = the model's maximum")
    overlap_tokens: int | None = Field(None, ge=0, description="Tokens shared by neighbouring windows; empty = 1/8")
    batch_tokens: int = Field(
        EngineConfig.batch_tokens,
        ge=1,
        description="Tokens (text and span markers) in one forward pass; raise it on a GPU with memory to spare",
    )
    lookahead_tokens: int = Field(
        EngineConfig.lookahead_tokens,
        ge=1,
        description="Window tokens gathered before they are sorted into batches (a longer document is scored in "
        "parts of this size); lower it to cap NER memory, raise it for fuller batches",
    )
    space_punctuation: bool = Field(
        True,
        description="Read text with punctuation set apart from words ('«Газпром»,' as '« Газпром » ,'), the "
        "form models are trained on; entities keep the original characters. Off: the text as it is, as SpanMarker",
    )
    trim_unpaired_quotes: bool = Field(
        True,
        description="Take a quotation mark off an entity's edge when it pairs with none inside ('Газпром»' "
        "becomes 'Газпром'). Off, with space_punctuation off: entities exactly as SpanMarker returns them",
    )
    embeddings: Literal["none", "marker", "mean"] = Field("none", description="Write entity_embeddings")
    embedding_dtype: EmbeddingDtype = Field("float32", description="Type of embedding values")

    # Output
    output_storage_options: StorageOptions | None = Field(None, description="fsspec options for the output")
    storage_credentials_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block whose value is a JSON object of fsspec credentials "
        "(key, secret, token); read inside the run and added to the storage options of input and output",
    )
    max_failure_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Largest share of a batch's documents that may break the data contracts (they go to quarantine) "
        "before the batch is rejected, unwritten, and the run fails; 0 rejects any failure",
    )
    run_label: str | None = Field(None, description="Free text recorded with the run")

    # Execution: where NER runs
    task_runner: Literal["threads", "ray"] = Field(
        "threads",
        description="Where NER runs: 'threads' in the flow's process, 'ray' as Ray tasks on a cluster "
        "(one per GPU where it has GPUs); the other stages stay in the flow's process",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster for task_runner 'ray': empty or 'local' starts one on this "
        "machine for the run, 'auto' joins the one running here, else host:6379 or ray://host:10001",
    )
    ray_cpus_per_task: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="CPUs a Ray NER task takes (beside its GPU, if any)"
    )

    @field_validator("input_uri", "output_uri")
    @classmethod
    def _openable_uri(cls, value: str) -> str:
        # Here, not when the first task lists the input: an unknown protocol then fails only
        # after Prefect has started its server and the model has loaded.
        check_protocol(value)
        # A local path as typed means nothing in the run record or the UI later: absolute,
        # as the summary shows it.
        return os.path.abspath(value) if is_local_path(value) else value

    @field_validator("span_filter")
    @classmethod
    def _known_span_filter(cls, value: str) -> str:
        parse_span_filter(value)
        return value.strip().lower()

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return NormaliseConfig(languages=tuple(code.strip().lower() for code in value)).languages

    @field_validator(
        "modified_after",
        "modified_before",
        "window_tokens",
        "overlap_tokens",
        "ray_address",
        "run_label",
        "storage_credentials_block",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # The UI's form and the API send an emptied optional field as "".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _overlap_below_window(self) -> ExtractParams:
        # The engine's own rule (ner_core.windowing): windows advance by more than half.
        if (
            self.window_tokens is not None
            and self.overlap_tokens is not None
            and self.overlap_tokens >= self.window_tokens // 2
        ):
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below half of window_tokens ({self.window_tokens})"
            )
        return self

    @model_validator(mode="after")
    def _time_range_in_order(self) -> ExtractParams:
        self.batching()  # raises when modified_after is not before modified_before
        return self

    # Conversions to the stages' frozen configs, done once at the flow's edge.

    def source(self, credentials: Mapping[str, Any] | None = None) -> Location:
        """The input; ``credentials`` (from :func:`flows.credentials.storage_credentials`) added."""
        return Location(uri=self.input_uri, storage_options={**self.storage_options, **(credentials or {})})

    def output(self, credentials: Mapping[str, Any] | None = None) -> Location:
        """The output; ``credentials`` added."""
        options = self.output_storage_options if self.output_storage_options is not None else self.storage_options
        return Location(uri=self.output_uri, storage_options={**options, **(credentials or {})})

    def batching(self) -> BatchingConfig:
        return BatchingConfig(
            batch_docs=self.batch_docs,
            batch_bytes=self.batch_bytes,
            input_format=self.input_format,
            modified_after=self.modified_after,
            modified_before=self.modified_before,
        )

    def reading(self) -> ReadConfig:
        return ReadConfig(
            input_format=self.input_format,
            fields=self.fields,
            max_document_chars=self.max_document_chars,
            html_text=self.html_text,
            pdf_page_time_limit_s=self.pdf_page_time_limit_s,
        )

    def normalising(self) -> NormaliseConfig:
        return NormaliseConfig(languages=tuple(self.languages))

    def annotating(self) -> AnnotateConfig:
        engine = EngineConfig(
            window_tokens=self.window_tokens,
            overlap_tokens=self.overlap_tokens,
            batch_tokens=self.batch_tokens,
            lookahead_tokens=self.lookahead_tokens,
            precision=self.precision,
            embeddings=self.embeddings,
            space_punctuation=self.space_punctuation,
            trim_unpaired_quotes=self.trim_unpaired_quotes,
            span_filter=self.span_filter,
        )
        # A local model path names a place on this machine: absolute, so that Ray workers
        # (another working directory) load the same files instead of taking it for a hub id.
        model = os.path.abspath(self.model) if os.path.exists(self.model) else self.model
        return AnnotateConfig(model=model, engine=engine)

    def ray_settings(self) -> RaySettings:
        return RaySettings(address=self.ray_address, cpus_per_task=self.ray_cpus_per_task)

    def validating(self, model: ModelInfo | None) -> ValidateConfig:
        """The contracts' settings: labels and vector width from the loaded model."""
        return ValidateConfig(
            labels=model.labels if model is not None else None,
            embedding_dim=model.embedding_dim if model is not None and self.embeddings != "none" else 0,
            max_failure_rate=self.max_failure_rate,
        )

    def recorded(self) -> str:
        """The parameters as recorded with the run: JSON, storage options left out (credentials)."""
        return self.model_dump_json(exclude={"storage_options", "output_storage_options"})
