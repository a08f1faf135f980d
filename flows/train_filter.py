"""The ``train-span-filter`` flow: add a span filter to an existing SpanMarker checkpoint.

    load the model  ->  read labelled train and dev data  ->  text pass over both (encoder frozen)
    ->  train the filter head  ->  choose its operating point on dev  ->  write the checkpoint with it

With ``keep_head`` the model's own filter head stays and only its operating point is chosen
again, on the dev data (minutes: no training data, no training).

Any checkpoint nerflow loads can be given a filter this way (the reference model
``tomaarsen/span-marker-mbert-base-multinerd`` included); the result is the same
checkpoint with ``span_filter.safetensors`` and ``span_filter.json`` beside it, which
SpanMarker's own loader ignores.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.extract_params import StorageOptions

if TYPE_CHECKING:  # the tasks import the engine (torch) when they run, not when the flow is listed
    from ner_core.filter_training import EncodedWindows
    from ner_core.span_filter import SpanFilter

from ner_core.filter_training import FilterTrainConfig

__all__ = ["TrainFilterParams", "train_filter"]


class TrainFilterParams(BaseModel):
    """What to train a filter for, on what, and where it goes."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    model: str = Field(
        "default", min_length=1, description="Model reference: 'default', a directory, an fsspec URI or a hub id"
    )
    data: list[str] = Field(
        default_factory=list, description="Labelled JSONL files to train on; globs allowed (none with keep_head)"
    )
    dev: list[str] = Field(min_length=1, description="Labelled dev files: the operating point is chosen on them")
    output: str = Field(min_length=1, description="Directory for the checkpoint with its filter")
    filter_only: bool = Field(False, description="Write only the filter's two files into the output directory")
    keep_head: bool = Field(
        False, description="Keep the model's filter head and only choose its operating point again on the dev data"
    )
    max_records: int | None = Field(None, gt=0, description="First N records of each training file")
    max_dev_records: int | None = Field(None, gt=0, description="First N records of each dev file")
    label_map: dict[str, str | None] = Field(default_factory=dict, description="Rename data labels; null drops one")
    filter: FilterTrainConfig = Field(default_factory=FilterTrainConfig)
    storage_options: StorageOptions = Field(default_factory=dict)

    @model_validator(mode="after")
    def _data_unless_keep_head(self) -> TrainFilterParams:
        if self.keep_head and self.data:
            raise ValueError("keep_head keeps the trained head: give no training data")
        if not self.keep_head and not self.data:
            raise ValueError("data: labelled files to train the filter on are needed (or keep_head)")
        return self


# NO_CACHE: the encoded windows are hundreds of MB; hashing them for a cache key is waste.
@task(name="encode-labelled-data", cache_policy=NO_CACHE)
def encode_labelled_data(
    params: TrainFilterParams, uris: list[str], limit: int | None, *, model_entities: bool = False
) -> EncodedWindows:
    """The text pass over every file's windows (the encoder's work of the whole job); on dev
    data also exact mode's entities, which the operating point must keep (and on training
    data when the head learns them too)."""
    from ner_core import load_model
    from ner_core.filter_training import encode_sources
    from ner_core.labelled import expand_uri, read_labelled

    model = load_model(params.model, storage_options=params.storage_options)
    sources = {
        Path(uri).name.split(".", 1)[0]: list(read_labelled(uri, storage_options=params.storage_options, limit=limit))
        for pattern in uris
        for _, uri in expand_uri(pattern, storage_options=params.storage_options)
    }
    get_run_logger().info("encoding %s", {name: len(records) for name, records in sources.items()})
    return encode_sources(model, sources, label_map=params.label_map, model_entities=model_entities)


@task(name="fit-span-filter", cache_policy=NO_CACHE)
def fit_span_filter(params: TrainFilterParams, train: EncodedWindows, dev: EncodedWindows) -> SpanFilter:
    from ner_core import load_model
    from ner_core.filter_training import train_span_filter

    model = load_model(params.model, storage_options=params.storage_options)
    info = {
        "model_id": model.model_id,
        "data": params.data,
        "dev": params.dev,
        "max_records": params.max_records,
        "max_dev_records": params.max_dev_records,
    }
    return train_span_filter(model, train, dev, params.filter, info=info)


@task(name="choose-operating-point", cache_policy=NO_CACHE)
def choose_point_again(params: TrainFilterParams, dev: EncodedWindows) -> SpanFilter:
    """The model's own filter head at the operating point ``params.filter`` asks for."""
    from ner_core import load_model
    from ner_core.errors import ModelConfigError
    from ner_core.filter_training import with_operating_point

    model = load_model(params.model, storage_options=params.storage_options)
    if model.span_filter is None:
        raise ModelConfigError("keep_head: the model has no span filter to keep", ref=params.model)
    info = {**model.span_filter.info, "dev": params.dev, "max_dev_records": params.max_dev_records}
    return with_operating_point(model.span_filter.head, dev, params.filter, info=info)


@task(name="write-checkpoint", cache_policy=NO_CACHE)
def write_checkpoint(params: TrainFilterParams, span_filter: SpanFilter) -> str:
    from ner_core import load_model
    from ner_core.span_filter import FILTER_CONFIG, FILTER_WEIGHTS, save_span_filter

    output = Path(params.output)
    if not params.filter_only:
        source = load_model(params.model, storage_options=params.storage_options).path
        if output.exists() and output.resolve() != source.resolve():
            shutil.rmtree(output)
        if not output.exists():
            shutil.copytree(source, output, ignore=shutil.ignore_patterns(FILTER_WEIGHTS, FILTER_CONFIG))
    save_span_filter(output, span_filter)
    if not params.filter_only:
        # The written checkpoint must load with its filter before anyone relies on it.
        load_model(output, device="cpu")
    return str(output)


@flow(name="train-span-filter", log_prints=True)
def train_filter(params: TrainFilterParams) -> dict:
    """Train a span filter for ``params.model`` (or choose its filter's operating point again)
    and write the checkpoint with it."""
    dev = encode_labelled_data(params, params.dev, params.max_dev_records, model_entities=True)
    if params.keep_head:
        span_filter = choose_point_again(params, dev)
    else:
        train = encode_labelled_data(
            params, params.data, params.max_records, model_entities=params.filter.learns_model_entities
        )
        span_filter = fit_span_filter(params, train, dev)
    where = write_checkpoint(params, span_filter)
    point = span_filter.operating_point
    print(
        f"span filter: threshold {point.threshold:.4g}, {point.spans_per_word:.2f} spans per word scored "
        f"({100 * span_filter.info['dev_share_scored']:.1f}% of candidates), lowest dev recall {100 * point.recall:.2f}%"
    )
    return {
        "output": where,
        "threshold": point.threshold,
        "spans_per_word": point.spans_per_word,
        "recall": point.recall,
        "share_scored": span_filter.info["dev_share_scored"],
    }
