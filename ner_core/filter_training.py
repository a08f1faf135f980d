"""Train a span filter (``ner_core.span_filter``) for a SpanMarker checkpoint, its encoder frozen.

Each labelled window goes through the text pass once, without markers (under a tenth of
exact mode's encoder tokens), and its final text states are kept. The head then learns
from those states which candidate spans are gold entities, with a binary cross-entropy
whose positive weight favours recall. The operating point is chosen on dev data: the
highest threshold at which every dev set keeps at least ``target_recall`` of exact mode's
own entities (of its gold entities the model can represent, word-aligned and at most
``entity_max_length`` words, when exact mode's are not computed), rounded down to the recall
curve's grid. :func:`with_operating_point` chooses a point for a head that exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ner_core.batching import pack_by_budget
from ner_core.decoding import select_spans
from ner_core.inference import TextOnceScorer, WindowInput, WindowScores
from ner_core.labelled import LabelledText
from ner_core.loading import NerModel
from ner_core.span_filter import (
    DESIGNS,
    OperatingPoint,
    SpanFilter,
    SpanFilterHead,
    batch_span_positions,
)
from ner_core.training import TrainingWindow, build_windows
from ner_core.windowing import enumerate_spans

__all__ = [
    "FilterTrainConfig",
    "EncodedWindows",
    "model_windows",
    "encode_windows",
    "encode_sources",
    "probabilities",
    "train_span_filter",
    "recall_curve",
    "choose_operating_point",
    "with_operating_point",
]

logger = logging.getLogger(__name__)

# Thresholds of the recall curve written with the filter (and into docs/performance.md).
CURVE_THRESHOLDS = (0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001)


class FilterTrainConfig(BaseModel):
    """How a span filter is trained (``nerflow train-filter``; every field has its default here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # biaffine: at the same recall of exact mode's entities it kept 4.3x fewer spans than mlp
    # (docs/performance.md, "Span filter: choosing the head").
    design: str = Field("biaffine", description=f"head design: one of {DESIGNS}")
    inner: int = Field(256, ge=8, description="width of the head's hidden layer")
    width_dim: int = Field(32, ge=1, description="width of the span-width embedding")
    epochs: int = Field(3, ge=1, description="passes over the training windows")
    batch_windows: int = Field(64, ge=1, description="windows per optimisation step")
    learning_rate: float = Field(2e-3, gt=0, description="AdamW learning rate")
    positive_weight: float = Field(4.0, gt=0, description="loss weight of entity spans against the rest (recall)")
    # What pruning must keep is the model's own output; gold spans alone teach the head only
    # the part of it that agrees with the annotators.
    positives: Literal["gold", "gold+model"] = Field(
        "gold",
        description="the spans the head learns to keep: gold entities, or also the model's own entities on the "
        "training data (a marker pass over it on top of the text pass)",
    )
    target_recall: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of the model's own dev entities (gold ones when the model's are not computed) every dev set "
        "keeps at the operating point",
    )
    round_to_grid: bool = Field(
        True,
        description="round the threshold down to the recall curve's grid (CURVE_THRESHOLDS): the exact point rests on "
        "the probability of one dev entity, and the step down is the margin for entities the dev data does not hold",
    )
    seed: int = 0

    @property
    def learns_model_entities(self) -> bool:
        """Whether training data must be encoded with the model's own entities."""
        return self.positives == "gold+model"


# The fields of FilterTrainConfig that choose the operating point rather than train the head:
# a filter's info records them once, under "operating_point_rule".
_POINT_RULE_FIELDS: set[str] = {"target_recall", "round_to_grid"}


@dataclass(eq=False)
class EncodedWindows:
    """Windows after the text pass: what the head trains and is measured on.

    Attributes:
        states: Per window, final text states ``float16[T, H]`` on the CPU.
        start_pos, end_pos: Per window, each span's first and last token.
        positive: Per window, whether each span is a gold entity.
        predicted: Per window, whether each span is an entity of the model's own output
            (SpanMarker's decoding of exact mode's scores), when asked for.
        words: Per window, its number of words.
        source: Per window, the name of the data set it came from.
    """

    states: list[torch.Tensor] = field(default_factory=list)
    start_pos: list[np.ndarray] = field(default_factory=list)
    end_pos: list[np.ndarray] = field(default_factory=list)
    positive: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.states)


def model_windows(
    model: NerModel, records: Sequence[LabelledText], *, label_map: dict[str, str | None] | None = None
) -> list[TrainingWindow]:
    """Labelled texts cut into the model's windows, a gold label per candidate span."""
    return build_windows(
        records,
        model.tokenizer,
        label2id={label: i for i, label in enumerate(model.labels)},
        model_max_length=model.model_max_length,
        entity_max_length=model.entity_max_length,
        label_map=label_map,
        cjk_pieces=model.cjk_words == "pieces",
    )


def encode_windows(
    model: NerModel,
    windows: Sequence[TrainingWindow],
    *,
    source: str = "",
    batch_tokens: int = 4096,
    into: EncodedWindows | None = None,
    model_entities: bool = False,
) -> EncodedWindows:
    """Run the text pass over labelled windows and keep what the head needs, window by
    window in the order given.

    Args:
        model_entities: Also score every span in exact mode and keep the model's own
            entities (a marker pass for every span on top of the text pass: for dev data,
            where the operating point must keep what the model finds).
    """
    scorer = TextOnceScorer(model)
    out = into if into is not None else EncodedWindows()
    if len(out) and bool(out.predicted) != model_entities:
        raise ValueError("model_entities must be the same for every part of one data set")
    states: dict[int, torch.Tensor] = {}
    predicted: dict[int, np.ndarray] = {}
    batches = pack_by_budget([w.input.n_tokens for w in windows], batch_tokens, max_items=256)
    with torch.inference_mode():
        for batch in batches:
            inputs = [windows[i].input for i in batch]
            text = scorer.encode_text(inputs)
            if model_entities:
                # Exact mode's scores from the same text pass: the marker pass is all it adds.
                for i, x, scores in zip(batch, inputs, scorer.score_with_text(inputs, text)):
                    predicted[i] = _decoded(model, x, x.n_words, scores)
            batch_states = text.states.float().cpu().to(torch.float16)
            ends = np.cumsum([x.n_tokens for x in inputs])
            for i, end, x in zip(batch, ends, inputs):
                states[i] = batch_states[end - x.n_tokens : end].clone()
    # Batches are packed by length; the windows are kept in the order given, so that callers
    # can zip them with their own.
    for i, w in enumerate(windows):
        out.states.append(states[i])
        out.start_pos.append(w.input.start_pos)
        out.end_pos.append(w.input.end_pos)
        out.positive.append(w.labels != model.outside_id)
        out.words.append(w.input.n_words)
        out.source.append(source)
        if model_entities:
            out.predicted.append(predicted[i])
    return out


def encode_sources(
    model: NerModel,
    sources: Mapping[str, Sequence[LabelledText]],
    *,
    label_map: dict[str, str | None] | None = None,
    model_entities: bool = False,
) -> EncodedWindows:
    """:func:`encode_windows` over named sets of labelled texts (each name a ``source``)."""
    data = EncodedWindows()
    for name, records in sources.items():
        windows = model_windows(model, records, label_map=label_map)
        encode_windows(model, windows, source=name, into=data, model_entities=model_entities)
        logger.info("span filter data: %s, %d texts, %d windows", name, len(records), len(windows))
    return data


def _decoded(model: NerModel, x: WindowInput, n_words: int, scores: WindowScores) -> np.ndarray:
    """Which spans SpanMarker's decoding keeps as entities in a window of ``n_words`` words."""
    starts, ends = enumerate_spans(n_words, model.entity_max_length)
    mask = np.zeros(x.n_spans, dtype=bool)
    mask[select_spans(scores.scores, scores.label_ids, starts, ends, n_words, model.outside_id)] = True
    return mask


def _logits(head: SpanFilterHead, data: EncodedWindows, index: Sequence[int]) -> torch.Tensor:
    states = torch.cat([data.states[i] for i in index]).float()
    starts, ends = batch_span_positions(
        [len(data.states[i]) for i in index], [data.start_pos[i] for i in index], [data.end_pos[i] for i in index]
    )
    # Module calls give Any: this is SpanFilterHead.forward's logits.
    return cast(torch.Tensor, head(states, torch.from_numpy(starts), torch.from_numpy(ends)))


def probabilities(head: SpanFilterHead, data: EncodedWindows, *, chunk: int = 256) -> list[np.ndarray]:
    """Each window's span probabilities of being an entity."""
    out: list[np.ndarray] = []
    head.eval()
    with torch.inference_mode():
        for a in range(0, len(data), chunk):
            index = list(range(a, min(a + chunk, len(data))))
            probs = torch.sigmoid(_logits(head, data, index)).numpy()
            out.extend(np.split(probs, np.cumsum([len(data.start_pos[i]) for i in index])[:-1]))
    return out


def _positives(data: EncodedWindows, kind: str) -> list[np.ndarray]:
    return data.positive if kind == "gold" else data.predicted


def recall_curve(probs: list[np.ndarray], data: EncodedWindows, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Per threshold: spans kept per word, and the recall of gold entities (and of the
    model's own, when ``data`` has them), overall and per source."""
    sources = sorted(set(data.source))
    kinds = ["gold", "model"] if data.predicted else ["gold"]
    rows = []
    for t in thresholds:
        kept = sum(int((p >= t).sum()) for p in probs)
        row: dict[str, Any] = {
            "threshold": t,
            "spans_per_word": kept / max(1, sum(data.words)),
            "share_scored": kept / max(1, sum(len(p) for p in probs)),
        }
        for kind in kinds:
            found = dict.fromkeys(sources, 0)
            total = dict.fromkeys(sources, 0)
            for p, pos, s in zip(probs, _positives(data, kind), data.source):
                total[s] += int(pos.sum())
                found[s] += int((p[pos] >= t).sum())
            by_source = {s: found[s] / total[s] if total[s] else 1.0 for s in sources}
            row[f"{kind}_recall"] = sum(found.values()) / max(1, sum(total.values()))
            row[f"{kind}_min_recall"] = min(by_source.values(), default=1.0)
            row[f"{kind}_recall_by_source"] = by_source
        rows.append(row)
    return rows


def choose_operating_point(
    probs: list[np.ndarray],
    data: EncodedWindows,
    target_recall: float,
    *,
    on: str = "model",
    grid: Sequence[float] = (),
) -> OperatingPoint:
    """The highest threshold at which every source keeps ``target_recall`` of its entities:
    the model's own (``on="model"``, what keeps exact mode's output) or the gold ones.

    With a ``grid``, the threshold is rounded down to the highest grid value at or below it
    (kept as it is when the grid has none): lower thresholds keep at least as much.
    """
    if on == "model" and not data.predicted:
        raise ValueError("an operating point on the model's entities needs dev data encoded with model_entities=True")
    threshold = 1.0
    for s in sorted(set(data.source)):
        positives = np.concatenate(
            [p[pos] for p, pos, src in zip(probs, _positives(data, on), data.source) if src == s]
        )
        if len(positives) == 0:
            continue
        # The k-th highest positive probability keeps k of n: ceil(target * n) must be kept.
        k = int(np.ceil(target_recall * len(positives)))
        threshold = min(threshold, float(np.sort(positives)[::-1][k - 1]))
    threshold = max((t for t in grid if t <= threshold), default=threshold)
    row = recall_curve(probs, data, [threshold])[0]
    return OperatingPoint(threshold=threshold, spans_per_word=row["spans_per_word"], recall=row[f"{on}_min_recall"])


def train_span_filter(
    model: NerModel,
    train: EncodedWindows,
    dev: EncodedWindows,
    config: FilterTrainConfig | None = None,
    *,
    info: dict[str, Any] | None = None,
) -> SpanFilter:
    """Train a head on encoded training windows and choose its operating point on the dev ones."""
    config = config or FilterTrainConfig()
    if not len(train) or not any(p.any() for p in train.positive):
        raise ValueError("the training data has no entity span the model can represent")
    targets = train.positive
    if config.learns_model_entities:
        if not train.predicted:
            raise ValueError("positives 'gold+model' needs training data encoded with model_entities=True")
        targets = [gold | model_found for gold, model_found in zip(train.positive, train.predicted)]
    _check_dev_data(dev)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        head = SpanFilterHead(model.hidden_size, design=config.design, inner=config.inner, width_dim=config.width_dim)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=0.01)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = -(-len(train) // config.batch_windows)
    total = steps_per_epoch * config.epochs
    pos_weight = torch.tensor(config.positive_weight)
    t0 = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        order = rng.permutation(len(train))
        head.train()
        for a in range(0, len(order), config.batch_windows):
            index = order[a : a + config.batch_windows].tolist()
            target = torch.from_numpy(np.concatenate([targets[i] for i in index]).astype(np.float32))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                _logits(head, train, index), target, pos_weight=pos_weight
            )
            for group in optimizer.param_groups:  # linear decay to a tenth
                group["lr"] = config.learning_rate * (1.0 - 0.9 * step / total)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimizer.step()
            step += 1
        logger.info("span filter: epoch %d done, loss %.4f, %.0f s", epoch + 1, loss.item(), time.perf_counter() - t0)
    details = {
        **(info or {}),
        # How the head was trained; how its point was chosen is "operating_point_rule".
        "config": config.model_dump(exclude=_POINT_RULE_FIELDS),
        "train_windows": len(train),
        "train_spans": int(sum(len(p) for p in train.positive)),
        "train_positive_spans": int(sum(int(p.sum()) for p in targets)),
        "seconds_training": round(time.perf_counter() - t0, 1),
    }
    return with_operating_point(head, dev, config, info=details)


def _check_dev_data(dev: EncodedWindows) -> None:
    if not len(dev) or not any(p.any() for p in dev.positive):
        raise ValueError("the dev data has no entity span the model can represent: an operating point needs one")


def with_operating_point(
    head: SpanFilterHead, dev: EncodedWindows, config: FilterTrainConfig, *, info: dict[str, Any]
) -> SpanFilter:
    """The head as a filter at the operating point ``config`` asks for, chosen on the dev
    windows; ``info`` (how the head was made) gains how the point was chosen."""
    _check_dev_data(dev)
    head.eval()
    probs = probabilities(head, dev)
    # The model's own entities are what pruning must keep; a model that finds none on the
    # dev data (barely trained) falls back to the gold ones.
    on = "model" if any(p.any() for p in dev.predicted) else "gold"
    if dev.predicted and on == "gold":
        logger.warning(
            "span filter: the model finds no entity in the dev data; the operating point keeps gold entities"
        )
    grid = CURVE_THRESHOLDS if config.round_to_grid else ()
    point = choose_operating_point(probs, dev, config.target_recall, on=on, grid=grid)
    curve = recall_curve(probs, dev, sorted({*CURVE_THRESHOLDS, point.threshold}, reverse=True))
    at_point = next(r for r in curve if r["threshold"] == point.threshold)
    details = {
        **info,
        "operating_point_rule": config.model_dump(include=_POINT_RULE_FIELDS),
        "dev_windows": len(dev),
        "operating_point_on": f"{on} entities",
        "dev_recall_by_source": {
            kind: at_point[f"{kind}_recall_by_source"] for kind in ("gold", "model") if f"{kind}_recall" in at_point
        },
        "dev_share_scored": at_point["share_scored"],
        "curve": [{k: v for k, v in r.items() if not k.endswith("by_source")} for r in curve],
    }
    logger.info(
        "span filter: threshold %.4g keeps %.2f spans per word, lowest dev recall %.4f",
        point.threshold,
        point.spans_per_word,
        point.recall,
    )
    return SpanFilter(head=head, operating_point=point, info=details)
