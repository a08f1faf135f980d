"""Fine-tune a SpanMarker model, resumably, on labelled texts.

Training sees exactly what the engine sees at inference: every labelled text (a sentence
or a long document) is tokenised once by ``ner_core.windowing``, cut into the same windows,
and every candidate span of a window gets its gold label (``O`` when it is no entity). The
model input is SpanMarker's collation (``ner_core.inference.collate_samples``), at most
``marker_max_length`` marker pairs per sample.

The run is a fixed plan of steps derived from the seed, so an interrupted run resumes at
its last checkpoint and continues bit for bit the same batches. Checkpoints hold only what
training changes (adapters, classifier, marker embeddings, tuned norms) plus the optimiser
state; the model is exported as safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ner_core.cjk_words import cjk_words_of
from ner_core.errors import TrainingError
from ner_core.inference import TextOnceScorer, WindowInput, cpu_fast_kind, special_tokens, window_input
from ner_core.labelled import LabelledText
from ner_core.loading import NerModel
from ner_core.memory import HeapGuard
from ner_core.windowing import WindowingConfig, cut_windows, enumerate_spans, tokenize_document

if TYPE_CHECKING:
    from span_marker import SpanMarkerModel
    from transformers import PreTrainedTokenizerFast

    from ner_core.engine import EngineConfig

__all__ = [
    "DataSource",
    "TrainConfig",
    "read_sources",
    "dev_evaluator",
    "TrainingWindow",
    "PlannedWindow",
    "plan_batches",
    "LabelCoverage",
    "build_windows",
    "Trainer",
    "TrainResult",
]

logger = logging.getLogger(__name__)

_STATE = "state.json"
_TRAINABLE = "trainable.safetensors"
_OPTIMIZER = "optimizer.safetensors"


class DataSource(BaseModel):
    """A labelled file (local path or fsspec URI; a glob matches several), how many of its
    texts to use (a seeded random sample; all when unset), and whether consecutive records
    are first joined into pseudo-documents (``join`` records each, newline-separated).

    ``written`` and ``trim_quotes`` apply to each sentence before joining
    (``ner_core.labelled.as_written``, ``trim_entity_quotes``)."""

    # A misspelt key ("max_record") would otherwise train on the whole file without a word.
    model_config = ConfigDict(extra="forbid")

    uri: str
    max_records: int | None = Field(None, gt=0, description="Texts to sample (after joining)")
    join: int = Field(1, ge=1, description="Consecutive records joined into one text")
    written: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the sentences rejoined as running text is written (no space before ',' or "
        "after '('), a seeded sample; the rest keep the tokens joined by spaces",
    )
    trim_quotes: bool = Field(False, description="Take quotation marks off the edges of gold entities")
    negative_weight: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Weight of the easy negatives (spans touching no entity) in the loss: below 1 for silver data, "
        "whose annotator leaves entities unlabelled; its entities and the spans overlapping them keep weight 1",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"uri": value} if isinstance(value, str) else value


class TrainConfig(BaseModel):
    """Everything that decides a training run (what ``nerflow train --config`` reads)."""

    model_config = ConfigDict(extra="forbid")

    train: list[DataSource] = Field(description="Labelled JSONL files (sentences or documents)")
    dev: list[DataSource] = Field(
        default_factory=list, description="Labelled files for model selection (never test data)"
    )
    labels: list[str] = Field(default_factory=lambda: ["PER", "ORG", "LOC", "MISC"])
    label_map: dict[str, str | None] = Field(default_factory=dict, description="Rename data labels; null drops")
    dev_ignore_labels: list[str] = Field(default_factory=list, description="Labels left out of the dev F1")
    encoder: str = Field("e5-small", description="Transformers folder, hub id, or 'e5-small'")
    model_max_length: int = 256
    entity_max_length: int = 8
    marker_max_length: int = 128
    cjk_words: Literal["characters", "pieces"] = Field(
        "characters",
        description="Words of Chinese and Japanese text: every character, or the encoder's SentencePiece pieces "
        "(see ner_core.adapters.new_span_marker); an init_from adapter may have been trained with the other",
    )
    method: Literal["lora", "full"] = "lora"
    init_from: str | None = Field(
        None,
        description="A nerflow adapter directory (or 'default') to start from: a further stage of training (LoRA only)",
    )
    lora_rank: int = 16
    lora_alpha: float = 32.0
    train_top_layers: int = Field(
        0,
        ge=0,
        description="With LoRA, also train the weights of the encoder's top N layers in full, at "
        "top_layers_learning_rate (saved in the adapter, about 7 MB per e5-small layer)",
    )
    learning_rate: float = 3e-4
    head_learning_rate: float = 1e-3
    top_layers_learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    zero_init_head: bool = Field(
        True, description="Start the span classifier's weights at zero and its bias at the label prior (see Trainer)"
    )
    standardise_features: bool = Field(
        True, description="Train the classifier on standardised span features (folded into it at export)"
    )
    dropout: float | None = Field(
        0.0, description="Dropout in the encoder and before the classifier (None: the encoder's own)"
    )
    negative_rate: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Share of easy negative spans (not overlapping an entity) drawn per epoch; 1.0 trains on all, as SpanMarker",
    )
    batch_tokens: int = Field(6144, description="Padded tokens per optimiser step")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="'bf16': mixed precision (bf16 autocast of the forward and backward, float32 weights and "
        "optimiser), for CPUs that multiply bf16 in hardware; dev evaluation stays float32",
    )
    max_steps: int | None = Field(None, description="Stop after this many steps (else epochs)")
    epochs: float = 1.0
    seed: int = 42
    output_dir: str = "runs/model"
    checkpoint_every: int = Field(100, description="Steps between checkpoints")
    eval_every: int = Field(500, description="Steps between dev evaluations (0: only at the end)")
    keep_checkpoints: int = 2
    span_filter: bool = Field(
        True,
        description="After training, add a span filter to the exported model (ner_core.filter_training, encoder "
        "frozen, on the same train data; its operating point on the dev data, which it then needs)",
    )
    threads: int | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class TrainingWindow:
    """One window of a labelled text: the model input and a label per candidate span."""

    input: WindowInput
    labels: np.ndarray  # int64[n_spans]
    always: np.ndarray  # bool[n_spans]: gold spans and spans overlapping one (hard negatives)
    negative_weight: float = 1.0  # of the easy negatives (LabelledText.negative_weight)


@dataclass
class LabelCoverage:
    """Gold entities and why some cannot be learned or found."""

    entities: int = 0
    not_word_aligned: int = 0
    too_long: int = 0
    unknown_label: int = 0
    not_in_a_window: int = 0
    # A span can carry one label: a second entity on the same words is either the same one
    # again (learned once) or a conflicting label, of which the first one read is kept.
    repeated: int = 0
    conflicting_label: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def build_windows(
    records: Iterable[LabelledText],
    tokenizer: PreTrainedTokenizerFast,
    *,
    label2id: dict[str, int],
    model_max_length: int,
    entity_max_length: int,
    label_map: dict[str, str | None] | None = None,
    coverage: LabelCoverage | None = None,
    cjk_pieces: bool = False,
) -> list[TrainingWindow]:
    """Training windows of labelled texts, cut exactly as the engine cuts documents
    (``cjk_pieces``: see ``ner_core.windowing.tokenize_document``)."""
    prefix, suffix = special_tokens(tokenizer)
    n_special = len(prefix) + len(suffix)
    windowing = WindowingConfig(window_tokens=model_max_length, overlap_tokens=model_max_length // 8)
    coverage = coverage if coverage is not None else LabelCoverage()
    label_map = label_map or {}
    out = []
    for rec in records:
        doc = tokenize_document(
            tokenizer, rec.id, rec.text, max_word_tokens=model_max_length - n_special, cjk_pieces=cjk_pieces
        )
        gold = _word_spans(rec, doc.word_char_start, doc.word_char_end, label2id, label_map, coverage)
        windows = cut_windows(doc, windowing, n_special=n_special)
        covered: set[tuple[int, int]] = set()
        for w in windows:
            starts, ends = enumerate_spans(w.n_words, entity_max_length)
            labels = np.zeros(len(starts), dtype=np.int64)
            # A span's index in SpanMarker's order: start * L - triangle, computed directly.
            index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(starts, ends))}
            for (a, b), label in gold.items():
                if w.word_start <= a and b <= w.word_end:
                    i = index.get((a - w.word_start, b - w.word_start))
                    if i is not None:
                        labels[i] = label
                        covered.add((a, b))
            always = labels > 0
            for j in np.flatnonzero(always):
                always |= (starts < ends[j]) & (ends > starts[j])
            out.append(
                TrainingWindow(
                    window_input(doc, w, (starts, ends), prefix, suffix), labels, always, rec.negative_weight
                )
            )
        for a, b in gold:
            if (a, b) not in covered:
                if b - a > entity_max_length:
                    coverage.too_long += 1
                else:
                    coverage.not_in_a_window += 1
    return out


def _word_spans(
    rec: LabelledText,
    char_start: np.ndarray,
    char_end: np.ndarray,
    label2id: dict[str, int],
    label_map: dict[str, str | None],
    coverage: LabelCoverage,
) -> dict[tuple[int, int], int]:
    spans: dict[tuple[int, int], int] = {}
    for start, end, data_label in rec.entities:
        label = label_map.get(data_label, data_label)
        if label is None:
            continue
        coverage.entities += 1
        if label not in label2id:
            coverage.unknown_label += 1
            continue
        a = int(np.searchsorted(char_start, start))
        b = int(np.searchsorted(char_end, end)) + 1
        if a >= len(char_start) or char_start[a] != start or b > len(char_end) or char_end[b - 1] != end or b <= a:
            coverage.not_word_aligned += 1
            continue
        if (a, b) in spans:
            if spans[(a, b)] == label2id[label]:
                coverage.repeated += 1
            else:
                coverage.conflicting_label += 1
            continue
        spans[(a, b)] = label2id[label]
    return spans


@dataclass(frozen=True, eq=False)
class PlannedWindow:
    """A window as one step trains on it: the candidate spans drawn for this epoch."""

    window: int
    spans: np.ndarray  # indices into the window's spans


def plan_batches(
    windows: list[TrainingWindow], *, batch_tokens: int, seed: int, epoch: int, negative_rate: float = 1.0
) -> list[list[PlannedWindow]]:
    """The epoch's batches: windows shuffled with the seed, their easy negative spans
    sampled at ``negative_rate``, then packed by length within groups of 64 under
    ``batch_tokens`` encoder tokens (text plus two markers per span)."""
    order = list(range(len(windows)))
    rng = np.random.default_rng([seed, epoch])
    rng.shuffle(order)
    planned = {}
    for i in order:
        w = windows[i]
        keep = (
            w.always | (rng.random(len(w.labels)) < negative_rate)
            if negative_rate < 1.0
            else np.ones(len(w.labels), bool)
        )
        planned[i] = PlannedWindow(i, np.flatnonzero(keep))
    cost = {i: windows[i].input.n_tokens + 2 * len(p.spans) for i, p in planned.items()}
    batches: list[list[PlannedWindow]] = []
    batch: list[PlannedWindow]
    for g in range(0, len(order), 64):
        batch, used = [], 0
        for i in sorted(order[g : g + 64], key=cost.__getitem__):
            if batch and used + cost[i] > batch_tokens:
                batches.append(batch)
                batch, used = [], 0
            batch.append(planned[i])
            used += cost[i]
        if batch:
            batches.append(batch)
    perm = rng.permutation(len(batches))
    return [batches[j] for j in perm]


@dataclass
class TrainResult:
    output_dir: Path
    model_dir: Path
    adapter_dir: Path | None
    steps: int
    seconds: float
    best_step: int | None
    dev: dict[str, Any]


class Trainer:
    """Runs one training plan with checkpoints; ``run()`` resumes where a previous run stopped.

    Args:
        config: The run's settings.
        train_records: Labelled training texts (already read).
        dev_records: Per dev set name, its labelled texts.
        evaluate: Called with ``(model, dev_records)``, returns ``{"micro_f1": ..., ...}``;
            the checkpoint with the best ``micro_f1`` is the one exported.
        progress: Called with ``(step, total_steps, loss)`` after each step.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_records: list[LabelledText],
        dev_records: dict[str, list[LabelledText]] | None = None,
        *,
        evaluate: Callable[[SpanMarkerModel, dict[str, list[LabelledText]]], dict[str, Any]] | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> None:
        from ner_core.adapters import add_lora, attach_marker_embedding, new_span_marker

        self.config = config
        self.out = Path(config.output_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.dev_records = dev_records or {}
        self.dev_history: list[dict[str, Any]] = []
        self.evaluate = evaluate
        self.progress = progress
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.precision == "bf16" and cpu_fast_kind() != "bf16":
            # Emulated bf16 runs about 9x slower than float32 (benchmarks/cpu_matmul.py).
            raise ValueError("precision = 'bf16' needs a CPU with AMX or AVX-512-BF16; use 'fp32' here")
        torch.manual_seed(config.seed)
        self.model = new_span_marker(
            config.encoder,
            config.labels,
            model_max_length=config.model_max_length,
            entity_max_length=config.entity_max_length,
            marker_max_length=config.marker_max_length,
            cjk_words=config.cjk_words,
        )
        model = self.model
        if config.dropout is not None:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = config.dropout
        self.tokenizer = model.tokenizer.tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.start_id, self.end_id = (int(i) for i in self.tokenizer.convert_tokens_to_ids(["<start>", "<end>"]))
        if config.method == "lora":
            for p in model.parameters():
                p.requires_grad = False
            add_lora(model, rank=config.lora_rank, alpha=config.lora_alpha)
            for name, p in model.named_parameters():
                adapted = "lora_" in name or name.startswith("classifier") or "LayerNorm" in name
                if adapted or _in_top_layers(name, model, config.train_top_layers):
                    p.requires_grad = True
            # Only the two marker rows of the embedding matrix learn; the rest stays the encoder's.
            attach_marker_embedding(model)
            if config.init_from:
                _load_initial_adapter(model, config)
        elif config.init_from:
            raise ValueError("init_from continues a LoRA adapter; it needs method = 'lora'")
        elif config.train_top_layers:
            raise ValueError("train_top_layers adds full layers to a LoRA adapter; it needs method = 'lora'")
        self.model.train()
        self.ner_model = training_ner_model(model, self.out)
        # Text once, markers against it: training pays for text plus two tokens per span,
        # never for a padded square attention over text and markers.
        self.encoder = TextOnceScorer(self.ner_model)

        self.coverage = LabelCoverage()
        label2id = {v: int(k) for k, v in model.config.id2label.items()}
        t0 = time.perf_counter()
        self.windows = build_windows(
            train_records,
            self.tokenizer,
            label2id=label2id,
            model_max_length=config.model_max_length,
            entity_max_length=config.entity_max_length,
            label_map=config.label_map,
            coverage=self.coverage,
            cjk_pieces=config.cjk_words == "pieces",
        )
        logger.info(
            "built %d training windows from %d texts in %.1fs; coverage %s",
            len(self.windows),
            len(train_records),
            time.perf_counter() - t0,
            self.coverage.as_dict(),
        )
        learnable = sum(int((w.labels > 0).sum()) for w in self.windows)
        if not self.windows or not learnable:
            raise TrainingError(
                f"nothing to learn: {len(train_records)} training texts, {len(self.windows)} windows, no gold entity "
                f"with one of the labels {config.labels} (coverage {self.coverage.as_dict()}; label_map renames labels)"
            )
        self._last_plan: tuple[int, list[list[PlannedWindow]]] | None = None
        self._init_head()
        self.steps_per_epoch = len(self._plan(0))
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * self.steps_per_epoch))
        self.optimizer = self._optimizer()
        self.warmup = max(1, int(config.warmup_ratio * self.total_steps))

    def _init_head(self) -> None:
        """Start the span classifier where the data says, on features it can learn from.

        Measured on e5-small (docs/model-card.md): a random head drove training to the label
        prior with collapsed span features; a zero head has to climb to the prior first
        (log(#O / #entity) is ~5, thousands of Adam steps), and meanwhile uses the mean
        feature direction as a bias. So: weights at zero, bias at the log prior of the
        candidate spans, and features standardised with the encoder's token statistics.
        """
        from ner_core.adapters import attach_standardised_head

        sm, c = self.model, self.config
        if c.zero_init_head and not c.init_from:
            counts = np.bincount(np.concatenate([w.labels for w in self.windows]), minlength=sm.classifier.out_features)
            with torch.no_grad():
                sm.classifier.weight.zero_()
                sm.classifier.bias.copy_(torch.from_numpy(np.log(counts + 1.0)).float())
        if c.standardise_features and self.windows:
            # Token states, not marker states: at initialisation the markers of a window are
            # nearly identical; training brings them towards the tokens they mark.
            sample = [w.input for w in self.windows[:64]]
            was_training = sm.training
            sm.eval()
            with torch.no_grad():
                _, _, text = self.encoder.encode(sample)
            sm.train(was_training)
            mean, std = text.mean(0), text.std(0) + 1e-3
            # A head that was already trained keeps computing what it computed.
            attach_standardised_head(
                sm, torch.cat((mean, mean)), torch.cat((std, std)), keep_function=bool(c.init_from)
            )

    def _plan(self, epoch: int) -> list[list[PlannedWindow]]:
        # Planning an epoch touches every window; the last plan is kept for run().
        if self._last_plan is None or self._last_plan[0] != epoch:
            c = self.config
            plan = plan_batches(
                self.windows, batch_tokens=c.batch_tokens, seed=c.seed, epoch=epoch, negative_rate=c.negative_rate
            )
            self._last_plan = (epoch, plan)
        return self._last_plan[1]

    def _optimizer(self) -> torch.optim.AdamW:
        c = self.config
        head, decay, no_decay, top = [], [], [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("classifier"):
                head.append(p)
            elif _in_top_layers(name, self.model, c.train_top_layers):
                top.append(p)
            elif "word_embeddings" in name or "LayerNorm" in name or name.endswith("bias"):
                no_decay.append(p)
            else:
                decay.append(p)
        groups = [
            {"params": decay, "weight_decay": c.weight_decay, "lr": c.learning_rate},
            {"params": no_decay, "weight_decay": 0.0, "lr": c.learning_rate},
            {"params": head, "weight_decay": 0.0, "lr": c.head_learning_rate},
            {"params": top, "weight_decay": c.weight_decay, "lr": c.top_layers_learning_rate},
        ]
        for g in groups:
            g["base_lr"] = g["lr"]
        return torch.optim.AdamW([g for g in groups if g["params"]])

    def _set_lr(self, step: int) -> None:
        if step < self.warmup:
            factor = (step + 1) / self.warmup
        else:
            factor = max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup))
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def loss(self, batch: list[PlannedWindow]) -> torch.Tensor:
        """Cross-entropy over the batch's candidate spans, SpanMarker's loss. With negative
        sampling, each sampled easy negative weighs ``1 / negative_rate``, so the loss is an
        unbiased estimate of the loss over all spans and the scores stay calibrated. A
        silver source's easy negatives weigh ``negative_weight`` times that: its annotator's
        "O" is partly a missed entity, so the model is taught less to leave such spans out."""
        inputs, labels, weights = [], [], []
        rate = self.config.negative_rate
        for p in batch:
            w = self.windows[p.window]
            x = w.input
            inputs.append(
                WindowInput(input_ids=x.input_ids, start_pos=x.start_pos[p.spans], end_pos=x.end_pos[p.spans])
            )
            labels.append(w.labels[p.spans])
            weights.append(np.where(w.always[p.spans], 1.0, w.negative_weight / rate))
        starts, ends, _ = self.encoder.encode(inputs, differentiable=True)
        sm = self.model
        logits = sm.classifier(sm.dropout(torch.cat((starts, ends), dim=-1)))
        weight = torch.from_numpy(np.concatenate(weights)).float()
        per_span = F.cross_entropy(logits, torch.from_numpy(np.concatenate(labels)), reduction="none")
        return (per_span * weight).sum() / weight.sum()

    # -- checkpoints ---------------------------------------------------------------------

    def _checkpoints(self) -> list[Path]:
        if not self.ckpt_root.exists():
            return []
        found = [p for p in self.ckpt_root.glob("step-*") if (p / _STATE).exists()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def _save_checkpoint(self, step: int, state: dict[str, Any]) -> Path:
        from safetensors.torch import save_file

        from ner_core.adapters import trainable_state

        final = self.ckpt_root / f"step-{step:07d}"
        tmp = self.ckpt_root / f".tmp-step-{step:07d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in trainable_state(self.model).items()}, str(tmp / _TRAINABLE))
        _save_optimizer(self.optimizer, tmp / _OPTIMIZER)
        state = dict(state, step=step, torch_rng=torch.get_rng_state().tolist(), config=self.config.model_dump())
        (tmp / _STATE).write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        best = state.get("best_step")
        for old in self._checkpoints()[: -self.config.keep_checkpoints]:
            if best is None or int(old.name.split("-")[1]) != best:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def _restore_latest_readable(self, checkpoints: list[Path]) -> tuple[dict[str, Any], Path]:
        """The newest checkpoint that reads back whole (a damaged disk may spoil one)."""
        from safetensors import SafetensorError

        problems = []
        for path in reversed(checkpoints):
            try:
                return self._restore(path), path
            except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
                logger.warning(
                    "checkpoint %s cannot be read (%s: %s): trying the one before", path, type(e).__name__, e
                )
                problems.append(f"{path.name}: {type(e).__name__}: {e}")
        raise TrainingError(
            f"no checkpoint under {self.ckpt_root} can be read ({'; '.join(problems)}); remove them to start afresh"
        )

    def _restore(self, path: Path) -> dict[str, Any]:
        from safetensors.torch import load_file

        from ner_core.adapters import load_trainable_state

        state: dict[str, Any] = json.loads((path / _STATE).read_text())
        _check_resumable(path, state.get("config"), self.config)
        load_trainable_state(self.model, load_file(str(path / _TRAINABLE)), ref=str(path))
        if (path / _OPTIMIZER).exists():
            _load_optimizer(self.optimizer, path / _OPTIMIZER)
        else:  # checkpoints written before the optimiser state moved to safetensors
            self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        return state

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> TrainResult:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"best_step": None, "best_f1": None, "dev_history": [], "losses": [], "seconds": 0.0}
        step = 0
        for stale in self.ckpt_root.glob(".tmp-step-*") if self.ckpt_root.exists() else ():
            shutil.rmtree(stale, ignore_errors=True)  # a checkpoint being written when a run was killed
        existing = self._checkpoints()
        if existing:
            state, resumed_from = self._restore_latest_readable(existing)
            step = state["step"]
            logger.info("resuming from %s (step %d of %d)", resumed_from, step, self.total_steps)
        t_start = time.perf_counter() - state.get("seconds", 0.0)
        epoch, plan = -1, []
        recent: list[float] = []
        heap_guard = HeapGuard()
        while step < self.total_steps:
            e, i = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, plan = e, self._plan(e)
            self._set_lr(step)
            # Every epoch samples other easy negatives, so its plan may hold a batch or two more
            # or fewer than epoch 0's; an epoch is steps_per_epoch steps all the same, so that a
            # step number means one batch, also after a resume.
            batch = plan[i % len(plan)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=c.precision == "bf16"):
                loss = self.loss(batch)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            # Every step has shapes of its own, so freed activations pile up in malloc's heap as
            # they do in inference unless trimmed now and then (ner_core.memory).
            heap_guard.check()
            step += 1
            state["step"] = step
            recent.append(float(loss.detach()))
            if self.progress:
                self.progress(step, self.total_steps, recent[-1])
            done = step == self.total_steps
            evaluated = bool(c.eval_every and step % c.eval_every == 0) or done
            if evaluated:
                self._dev_eval(step, state)
            # Every evaluated step is checkpointed: the best one is what gets exported.
            if step % c.checkpoint_every == 0 or evaluated:
                state["losses"].append([step, sum(recent) / len(recent)])
                recent = []
                state["seconds"] = time.perf_counter() - t_start
                self._save_checkpoint(step, state)
        self.dev_history = state["dev_history"]
        return self._export(state)

    def _dev_eval(self, step: int, state: dict[str, Any]) -> None:
        if not (self.evaluate and self.dev_records):
            return
        self.model.eval()
        try:
            scores = self.evaluate(self.model, self.dev_records)
        finally:
            self.model.train()
        f1 = float(scores["micro_f1"])
        state["dev_history"].append({"step": step, **scores})
        logger.info("step %d: dev micro F1 %.4f", step, f1)
        if state.get("best_f1") is None or f1 > state["best_f1"]:
            state["best_f1"], state["best_step"] = f1, step

    def _export(self, state: dict[str, Any]) -> TrainResult:
        from ner_core.adapters import (
            detach_marker_embedding,
            detach_standardised_head,
            export_peft_adapter,
            merge_lora,
            save_adapter,
            save_full,
        )

        best = state.get("best_step")
        if best is not None and best != state["step"]:
            self._restore(self.ckpt_root / f"step-{best:07d}")
        self.model.eval()
        detach_standardised_head(self.model)
        adapter_dir = None
        meta = {
            "steps": state["step"],
            "selected_step": best or state["step"],
            "train_seconds": state["seconds"],
            "coverage": self.coverage.as_dict(),
        }
        if self.config.method == "lora":
            adapter_dir = save_adapter(self.model, self.out / "adapter", encoder=self.config.encoder, metadata=meta)
            # The same update in peft's format, for whoever wants the encoder adapter alone; peft's
            # LoRA format has no place for layers trained in full, so such an update is not written.
            if self.config.train_top_layers:
                logger.info("no peft copy: the top %d layers were trained in full", self.config.train_top_layers)
            else:
                export_peft_adapter(self.model, adapter_dir / "peft")
            merge_lora(self.model)
        detach_marker_embedding(self.model)
        model_dir = self.out / "model"
        save_full(self.model, model_dir)
        (self.out / "training_state.json").write_text(
            json.dumps({k: v for k, v in state.items() if k != "torch_rng"}, indent=2, default=str)
        )
        return TrainResult(
            self.out,
            model_dir,
            adapter_dir,
            state["step"],
            state["seconds"],
            best,
            state["dev_history"][-1] if state["dev_history"] else {},
        )


# What may change between an interrupted run and its resumption: how long it runs, how often
# it checkpoints and evaluates, where and how it is computed. Anything else would make the
# resumed steps part of another run than the checkpoint's.
_RESUMABLE_CHANGES = {
    "max_steps",
    "epochs",
    "checkpoint_every",
    "eval_every",
    "keep_checkpoints",
    "threads",
    "output_dir",
    "storage_options",
    "dev",
    "dev_ignore_labels",
    "span_filter",
}


def _check_resumable(checkpoint: Path, saved: dict[str, Any] | None, config: TrainConfig) -> None:
    """Raise unless ``config`` may resume ``checkpoint``, which was written with ``saved``."""
    if saved is None:
        return
    current = json.loads(json.dumps(config.model_dump(), default=str))  # as the checkpoint stored it
    # A field the checkpoint does not know was added since and has its default: not a change.
    changed = sorted(k for k in current if k in saved and k not in _RESUMABLE_CHANGES and current[k] != saved[k])
    if changed:
        raise TrainingError(
            f"{checkpoint} was written with another config ({', '.join(changed)} differ): resuming would mix two "
            "runs; restore the config, or choose another output_dir to start afresh"
        )


def _save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """The optimiser state as safetensors (tensors) plus JSON metadata (the rest): a
    checkpoint never needs unpickling to resume."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [dict(g.items()) for g in state["param_groups"]]
    save_file(tensors, str(path), metadata={"scalars": json.dumps(scalars), "param_groups": json.dumps(groups)})


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *json.loads(meta["scalars"]).items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})


def _load_initial_adapter(model: SpanMarkerModel, config: TrainConfig) -> None:
    """Start from a trained adapter; its settings must be this run's, except that its LoRA
    rank may be lower (the adapter is widened to this run's rank, its function unchanged)."""
    from safetensors.torch import load_file

    from ner_core.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_trainable_state, widen_lora_state
    from ner_core.default_model import DEFAULT_MODEL_REF, default_artifact_dir

    assert config.init_from is not None  # the trainer calls this only when the config names one
    directory = default_artifact_dir() if config.init_from == DEFAULT_MODEL_REF else Path(config.init_from)
    saved = json.loads((directory / ADAPTER_CONFIG).read_text())
    ours: dict[str, Any] = {
        "encoder": config.encoder,
        "labels": config.labels,
        "model_max_length": config.model_max_length,
        "entity_max_length": config.entity_max_length,
        "marker_max_length": config.marker_max_length,
    }
    differ = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v}
    saved_rank, saved_alpha = saved["lora"]["rank"], saved["lora"]["alpha"]
    if saved_rank > config.lora_rank or (saved_rank == config.lora_rank and saved_alpha != config.lora_alpha):
        differ["lora"] = (
            {"rank": saved_rank, "alpha": saved_alpha},
            {"rank": config.lora_rank, "alpha": config.lora_alpha},
        )
    if differ:
        raise ValueError(f"init_from {directory} was trained with other settings (saved, this run): {differ}")
    state = load_file(str(directory / ADAPTER_WEIGHTS))
    if saved_rank < config.lora_rank:
        state = widen_lora_state(state, model, rank=saved_rank, alpha=saved_alpha)
        logger.info("widened the adapter of %s from LoRA rank %d to %d", directory, saved_rank, config.lora_rank)
    load_trainable_state(model, state, ref=str(directory))
    logger.info("starting from the adapter in %s", directory)


def _in_top_layers(name: str, model: SpanMarkerModel, n: int) -> bool:
    """Whether ``name`` is a weight or bias of one of the encoder's top ``n`` layers, other than
    its LoRA factors and LayerNorms (which LoRA training trains anyway)."""
    if n <= 0 or "lora_" in name or "LayerNorm" in name:
        return False
    layer = re.search(r"encoder\.layer\.(\d+)\.", name)
    return layer is not None and int(layer.group(1)) >= model.encoder.config.num_hidden_layers - n


def read_sources(
    sources: list[DataSource], *, seed: int, storage_options: dict[str, Any] | None = None
) -> dict[str, list[LabelledText]]:
    """Read labelled files, sampling ``max_records`` of each with the seed.

    Returns:
        Records per file name (file name without extensions), in file order.
    """
    from ner_core.labelled import as_written, expand_uri, join_texts, read_labelled, trim_entity_quotes

    out: dict[str, list[LabelledText]] = {}
    for source in sources:
        for path, uri in expand_uri(source.uri, storage_options=storage_options):
            records = list(read_labelled(uri, storage_options=storage_options))
            name = Path(path).name.split(".", 1)[0]
            if source.trim_quotes:
                records = [trim_entity_quotes(r) for r in records]
            if source.written > 0:
                rng = random.Random(f"{seed}:{path}:written")
                chosen = rng.sample(range(len(records)), round(source.written * len(records)))
                for i in chosen:
                    records[i] = as_written(records[i])
                name = f"{name}+written" if source.written == 1 else f"{name}+written{source.written:g}"
            if source.join > 1:
                k = source.join
                records = [join_texts(records[i : i + k]) for i in range(0, len(records), k)]
                name = f"{name}+join{k}"
            if source.max_records is not None and len(records) > source.max_records:
                rng = random.Random(f"{seed}:{path}")
                records = [records[i] for i in sorted(rng.sample(range(len(records)), source.max_records))]
            if source.negative_weight != 1.0:
                records = [dataclasses.replace(r, negative_weight=source.negative_weight) for r in records]
            out[name] = records
    return out


def dev_evaluator(
    ignore_labels: list[str] | None = None, engine_config: EngineConfig | None = None
) -> Callable[[SpanMarkerModel, dict[str, list[LabelledText]]], dict[str, Any]]:
    """The trainer's model-selection callback: strict micro F1 over all dev sets pooled,
    through the engine (exact precision), plus each set's F1; ``ignore_labels`` are left
    out of both gold and predictions (e.g. MISC, which some data sets do not annotate);
    ``engine_config`` is how the engine reads the dev texts (its defaults when ``None``)."""
    label_map = dict.fromkeys(ignore_labels or [])
    from ner_core.evaluation import evaluate_records
    from ner_core.metrics import pooled

    def evaluate(model: SpanMarkerModel, dev: dict[str, list[LabelledText]]) -> dict[str, Any]:
        nm = training_ner_model(model, Path("."))
        reports = {
            name: evaluate_records(
                nm, recs, name=name, label_map=label_map, gold_label_map=label_map, engine_config=engine_config
            )
            for name, recs in dev.items()
        }
        return {
            "micro_f1": pooled(r.scores.micro for r in reports.values()).f1,
            "per_set": {n: r.scores.micro.f1 for n, r in reports.items()},
        }

    return evaluate


def training_ner_model(model: SpanMarkerModel, path: Path) -> NerModel:
    """A :class:`NerModel` view of a model being trained (for the scorers and the engine)."""
    config = model.config
    labels = tuple(config.id2label[i] for i in range(len(config.id2label)))
    return NerModel(
        ref=str(path),
        name=Path(path).name,
        model_id="training",
        path=Path(path),
        span_marker=model,
        tokenizer=model.tokenizer.tokenizer,
        labels=labels,
        outside_id=int(config.outside_id),
        model_max_length=int(model.tokenizer.model_max_length),
        entity_max_length=int(config.entity_max_length),
        marker_max_length=int(config.marker_max_length),
        device=torch.device("cpu"),
        cjk_words=cjk_words_of(config),
    )


def label_counts(windows: list[TrainingWindow], id2label: dict[int, str]) -> Counter[str]:
    """Entity spans per label over training windows (for the model card)."""
    c: Counter[str] = Counter()
    for w in windows:
        for label, n in zip(*np.unique(w.labels[w.labels > 0], return_counts=True)):
            c[id2label[int(label)]] += int(n)
    return c
