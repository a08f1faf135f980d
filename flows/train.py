"""The ``train-model`` flow: labelled data in, a SpanMarker model (and its card) out.

read the training and dev data  ->  fine-tune (checkpointed, resumable)
->  export safetensors (+ the small LoRA adapter)  ->  add a span filter (encoder frozen)
->  write the model card
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ner_core.training import TrainConfig

__all__ = ["train_model", "load_config"]


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config from TOML, JSON or YAML.

    A config may name another with ``extends = "other.toml"`` (relative to its own folder):
    it then holds only what it changes. Its top-level keys replace the base's whole (a
    ``train`` list is restated in full, never merged), so each file reads as its diff.
    """
    return TrainConfig.model_validate(_read_config_chain(Path(path), ()))


def _read_config_chain(path: Path, seen: tuple[Path, ...]) -> dict:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ValueError(f"training config extends itself: {chain}")
    data = _read_config_file(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'extends' must be a path to another config, not {base!r}")
    return {**_read_config_chain(path.parent / base, (*seen, resolved)), **data}


def _read_config_file(path: Path) -> dict:
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        import json

        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a training config is a mapping of settings, not {type(data).__name__}")
    return data


@task(name="read-labelled-data")
def read_labelled_data(config: TrainConfig) -> tuple[dict, dict]:
    from ner_core.training import read_sources

    train = read_sources(config.train, seed=config.seed, storage_options=config.storage_options)
    dev = read_sources(config.dev, seed=config.seed, storage_options=config.storage_options)
    logger = get_run_logger()
    logger.info("train: %s", {k: len(v) for k, v in train.items()})
    logger.info("dev: %s", {k: len(v) for k, v in dev.items()})
    return train, dev


@task(name="fine-tune")
def fine_tune(config: TrainConfig, train: dict, dev: dict) -> dict:
    from ner_core.training import Trainer, dev_evaluator

    logger = get_run_logger()
    records = [r for recs in train.values() for r in recs]
    every = max(1, config.checkpoint_every // 4)

    def progress(step: int, total: int, loss: float) -> None:
        if step % every == 0 or step == total:
            logger.info("step %d/%d loss %.4f", step, total, loss)

    trainer = Trainer(config, records, dev, evaluate=dev_evaluator(config.dev_ignore_labels), progress=progress)
    result = trainer.run()
    from ner_core.training import label_counts

    return {
        "output_dir": str(result.output_dir),
        "model_dir": str(result.model_dir),
        "adapter_dir": str(result.adapter_dir) if result.adapter_dir else None,
        "steps": result.steps,
        "selected_step": result.best_step or result.steps,
        "train_seconds": result.seconds,
        "dev_history": trainer.dev_history,
        "coverage": trainer.coverage.as_dict(),
        "label_counts": dict(label_counts(trainer.windows, trainer.model.config.id2label)),
    }


@task(name="add-span-filter", cache_policy=NO_CACHE)
def add_span_filter(config: TrainConfig, train: dict, dev: dict, result: dict) -> dict:
    """Train the exported model's span filter (encoder frozen) and store it beside the model
    and the adapter."""
    from ner_core import clear_model_cache, load_model
    from ner_core.filter_training import encode_sources, train_span_filter
    from ner_core.span_filter import save_span_filter

    model = load_model(result["model_dir"], device="cpu")
    span_filter = train_span_filter(
        model,
        encode_sources(model, train, label_map=config.label_map),
        encode_sources(model, dev, label_map=config.label_map, model_entities=True),
        info={"trained_with": "nerflow train", "dev": sorted(dev)},
    )
    for directory in (result["model_dir"], result["adapter_dir"]):
        if directory:
            save_span_filter(Path(directory), span_filter)
    clear_model_cache()  # the cached model was loaded without its filter
    point = span_filter.operating_point
    get_run_logger().info(
        "span filter: threshold %.4g, %.2f spans per word scored on dev", point.threshold, point.spans_per_word
    )
    return {
        "threshold": point.threshold,
        "spans_per_word": point.spans_per_word,
        "recall": point.recall,
        "share_scored": span_filter.info["dev_share_scored"],
    }


@task(name="write-model-card")
def write_model_card(config: TrainConfig, result: dict) -> list[str]:
    from ner_core.model_card import render_training_card, write_card

    text = render_training_card(
        config=config.model_dump(),
        result=result,
        dev_history=result["dev_history"],
        coverage=result["coverage"],
        label_counts=result["label_counts"],
    )
    written = [str(write_card(Path(result["model_dir"]), text))]
    if result["adapter_dir"]:
        written.append(str(write_card(Path(result["adapter_dir"]), text)))
    return written


@flow(name="train-model", log_prints=True)
def train_model(config: TrainConfig) -> dict:
    """Fine-tune a SpanMarker model as ``config`` says; resumes from the last checkpoint
    under ``config.output_dir`` if an earlier run was interrupted."""
    train, dev = read_labelled_data(config)
    result = fine_tune(config, train, dev)
    if config.span_filter and dev:
        result["span_filter"] = add_span_filter(config, train, dev, result)
    elif config.span_filter:
        get_run_logger().warning(
            "no dev data: the model is exported without a span filter (nerflow train-filter adds one)"
        )
    write_model_card(config, result)
    logging.getLogger(__name__).info("model written to %s", result["model_dir"])
    return result
