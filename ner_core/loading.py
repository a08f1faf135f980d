"""Resolve a model reference, load a SpanMarker checkpoint safely, cache it per process.

A reference is a local directory, an fsspec URI (``s3://bucket/models/x``: downloaded once
into the local cache, keyed by the objects' ETags), or a Hugging Face hub id, which is only
contacted because the caller named it. A directory (local or remote) that holds a nerflow
adapter artifact instead of a checkpoint is merged into its full checkpoint once, in the
cache. Weights load from safetensors only unless the caller opts into pickle, and
``trust_remote_code`` is never set: a checkpoint is data, not code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from transformers import PreTrainedTokenizerFast

from ner_core.adapters import ADAPTER_CONFIG
from ner_core.cjk_words import cjk_words_of
from ner_core.default_model import default_model_dir, materialised_dir
from ner_core.errors import (
    ModelConfigError,
    ModelDownloadError,
    ModelNotFoundError,
    UnsafeCheckpointError,
)
from ner_core.span_filter import FILTER_CONFIG, FILTER_WEIGHTS, SpanFilter, has_span_filter, load_span_filter

if TYPE_CHECKING:
    from span_marker import SpanMarkerConfig

__all__ = ["NerModel", "load_model", "resolve_device", "clear_model_cache", "convert_to_safetensors"]

logger = logging.getLogger(__name__)

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass(frozen=True, eq=False, kw_only=True)
class NerModel:
    """A loaded SpanMarker model with everything the engine reads from its checkpoint.

    Attributes:
        ref: The reference it was loaded from.
        name: A readable name (the last component of the reference).
        model_id: Stable identifier from the content alone (a digest of config and
            weights), the same wherever the checkpoint is stored or cached.
        path: Local directory of the checkpoint.
        span_marker: The ``SpanMarkerModel`` in eval mode on ``device``.
        tokenizer: The fast tokenizer, with SpanMarker's word splitting (punctuation split
            for XLM-R) and the ``<start>``/``<end>`` marker tokens.
        labels: Label names indexed by class id (``labels[outside_id] == "O"``).
        outside_id: Class id of the "no entity" label.
        model_max_length: Tokens per window, special tokens included.
        entity_max_length: Longest entity in words.
        marker_max_length: Marker pairs per sample in SpanMarker's own collation.
        device: Where the model runs.
        cjk_words: How the model's Chinese and Japanese words are made: ``"characters"``
            (or the tokenizer's own words) or ``"pieces"`` (``ner_core.adapters.new_span_marker``).
        span_filter: The span filter stored beside the checkpoint (``ner_core.span_filter``),
            on ``device``, or ``None``.
    """

    ref: str
    name: str
    model_id: str
    path: Path
    span_marker: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    labels: tuple[str, ...]
    outside_id: int
    model_max_length: int
    entity_max_length: int
    marker_max_length: int
    device: torch.device
    cjk_words: str = "characters"
    span_filter: SpanFilter | None = None

    @property
    def entity_labels(self) -> tuple[str, ...]:
        """Labels an entity can carry (every label but the outside one)."""
        return tuple(label for i, label in enumerate(self.labels) if i != self.outside_id)

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's hidden states."""
        # Module.__getattr__ types the attribute as Tensor | Module: it is the SpanMarker config.
        return int(cast("SpanMarkerConfig", self.span_marker.config).get("hidden_size"))


_cache: dict[tuple[str, str], NerModel] = {}
_cache_lock = threading.Lock()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks the first CUDA device when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def clear_model_cache() -> None:
    """Forget every cached model (tests, or freeing memory between runs)."""
    with _cache_lock:
        _cache.clear()


def load_model(
    ref: str | os.PathLike[str],
    device: str | torch.device | None = None,
    *,
    allow_pickle: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> NerModel:
    """Load a SpanMarker model once per process and device.

    Args:
        ref: ``"default"`` (the model shipped with nerflow, built offline on first use),
            a local directory, an fsspec URI (``s3://…``, ``memory://…``) or a hub id
            (``org/name``). The directory may hold an adapter artifact (what ``nerflow
            train`` writes to ``<output_dir>/adapter/``) rather than a checkpoint.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``None``/``"auto"``.
        allow_pickle: Accept a checkpoint whose only weights are pickle files. Unpickling
            runs arbitrary code, so this is off unless the caller trusts the source.
        storage_options: Passed to fsspec for URI references (credentials, endpoint).

    Returns:
        The cached :class:`NerModel` for this checkpoint and device.

    Raises:
        ModelNotFoundError: Nothing exists under ``ref``.
        UnsafeCheckpointError: Only pickle weights and ``allow_pickle`` is false.
        ModelConfigError: The checkpoint is not a SpanMarker checkpoint.
        ModelDownloadError: A remote checkpoint could not be fetched (retryable).
    """
    ref = str(ref)
    dev = resolve_device(device)
    path = _resolve_local_path(ref, storage_options)
    # Checked before the cache too: a model loaded once with allow_pickle=True must not be
    # handed to a caller who did not opt in.
    weights = _weights_files(path, ref, allow_pickle=allow_pickle)
    key = (str(path.resolve()), str(dev))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(ref, path, weights, dev)
        return _cache[key]


def _resolve_local_path(ref: str, storage_options: dict[str, Any] | None) -> Path:
    if ref == "default":
        return default_model_dir()
    path = _located(ref, storage_options)
    if (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").exists():
        # An adapter is the small artifact a run keeps; candidates are scored from it directly.
        return materialised_dir(path)
    return path


def _located(ref: str, storage_options: dict[str, Any] | None) -> Path:
    if "://" in ref and not ref.startswith("file://"):
        return _fetch_remote(ref, storage_options or {})
    local = Path(ref.removeprefix("file://")).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ModelNotFoundError("a model reference must be a directory, not a file", ref=ref)
    if ref.count("/") == 1 and not ref.startswith((".", "/", "~")):
        return _fetch_hub(ref)
    raise ModelNotFoundError("no model directory at this path", ref=ref)


def _fetch_hub(ref: str) -> Path:
    # Only reached when the caller named a hub id; everything else stays offline.
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"]))
    except Exception as e:  # the hub client raises many unrelated types
        raise ModelDownloadError(f"could not fetch hub model: {e}", ref=ref) from e


def _fetch_remote(uri: str, storage_options: dict[str, Any]) -> Path:
    import fsspec

    from ner_core.cache import atomic_directory, cache_dir

    try:
        fs, root = fsspec.core.url_to_fs(uri, **storage_options)
        listing = fs.find(root, detail=True)
    except FileNotFoundError as e:
        raise ModelNotFoundError("no objects under this URI", ref=uri) from e
    except Exception as e:
        raise ModelDownloadError(f"could not list the model: {e}", ref=uri) from e
    if not listing:
        raise ModelNotFoundError("no objects under this URI", ref=uri)
    # The cache key is the listing's identity (names, sizes, ETags): a re-uploaded model gets a
    # new directory, an unchanged one is never fetched twice.
    identity = sorted(
        (
            name[len(root) :].lstrip("/"),
            info.get("size"),
            str(info.get("ETag") or info.get("etag") or info.get("mtime") or ""),
        )
        for name, info in listing.items()
    )
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:24]
    target = cache_dir() / "models" / digest
    if target.is_dir():
        return target
    logger.info("downloading model %s into %s", uri, target)
    try:
        with atomic_directory(target) as tmp:
            for rel, _, _ in identity:
                dest = Path(tmp) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root.rstrip('/')}/{rel}", str(dest))
    except OSError as e:
        raise ModelDownloadError(f"download failed: {e}", ref=uri) from e
    return target


def _load(ref: str, path: Path, weights: list[Path], device: torch.device) -> NerModel:
    from safetensors.torch import load_file
    from span_marker import SpanMarkerConfig, SpanMarkerModel
    from span_marker.tokenizer import SpanMarkerTokenizer
    from tokenizers.pre_tokenizers import Punctuation, Sequence
    from transformers import AutoConfig, AutoModel, AutoTokenizer, XLMRobertaTokenizerFast

    try:
        config = SpanMarkerConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelConfigError(f"unreadable SpanMarker config: {e}", ref=ref) from e
    if config.model_type != "span-marker" or not config.encoder:
        raise ModelConfigError(f"not a SpanMarker checkpoint (model_type={config.model_type!r})", ref=ref)

    # SpanMarker's own from_pretrained reloads the tokenizer and the encoder config from the
    # encoder's original name (often a hub id): build both from this directory instead.
    encoder_config = dict(config.encoder)
    encoder_config.pop("trust_remote_code", None)
    encoder = AutoModel.from_config(  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        AutoConfig.for_model(**encoder_config)
    )
    model = SpanMarkerModel(config, encoder=encoder)
    # fix_mistral_regex=False: transformers 4.57.3+ warns that every local tokenizer whose
    # config.json it wrote has Mistral's broken pre-tokenizer regex; ours (WordPiece, Unigram)
    # have no such regex, and saying so is what silences the warning.
    tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        path, add_prefix_space=True, fix_mistral_regex=False
    )
    if not getattr(tokenizer, "is_fast", False):
        raise ModelConfigError("the checkpoint needs a fast tokenizer (offset mapping)", ref=ref)
    if isinstance(tokenizer, XLMRobertaTokenizerFast):
        # The same word split SpanMarker applies at inference.
        tokenizer._tokenizer.pre_tokenizer = Sequence([Punctuation(), tokenizer._tokenizer.pre_tokenizer])
    span_tokenizer = SpanMarkerTokenizer(tokenizer, config)
    model.set_tokenizer(span_tokenizer)
    if len(tokenizer) > model.encoder.get_input_embeddings().num_embeddings:
        raise ModelConfigError("tokenizer has more tokens than the encoder's embeddings", ref=ref)

    state = {}
    for file in weights:
        if file.suffix == ".safetensors":
            state.update(load_file(str(file)))
        else:
            state.update(torch.load(file, map_location="cpu", weights_only=False))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Position-id buffers are derived, not learned: their absence is harmless.
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise ModelConfigError(
            f"weights do not fit the config (missing={missing[:5]}, unexpected={unexpected[:5]})", ref=ref
        )
    model.eval().to(device)

    labels = tuple(config.id2label[i] for i in range(len(config.id2label)))
    span_filter = load_span_filter(path, hidden_size=int(config.encoder.get("hidden_size", 0)) or None)
    nm = NerModel(
        ref=ref,
        name=ref.rstrip("/").rsplit("/", 1)[-1] or path.name,
        model_id=_model_id(path, weights),
        path=path,
        span_marker=model,
        tokenizer=tokenizer,
        labels=labels,
        outside_id=int(config.outside_id),
        model_max_length=int(span_tokenizer.model_max_length),
        entity_max_length=int(config.entity_max_length),
        marker_max_length=int(config.marker_max_length),
        device=device,
        cjk_words=cjk_words_of(config),
        span_filter=span_filter.to(device) if span_filter is not None else None,
    )
    logger.info(
        "loaded model %s from %s on %s: %d labels, window %d tokens, entities up to %d words",
        nm.model_id,
        path,
        device,
        len(labels),
        nm.model_max_length,
        nm.entity_max_length,
    )
    return nm


def _weights_files(path: Path, ref: str, *, allow_pickle: bool) -> list[Path]:
    for name in _SAFE_WEIGHTS + _PICKLE_WEIGHTS:
        file = path / name
        if not file.exists():
            continue
        if name in _PICKLE_WEIGHTS and not allow_pickle:
            raise UnsafeCheckpointError(
                f"only pickle weights ({name}) found; unpickling can run arbitrary code. "
                f"Convert it to safetensors with `nerflow convert-checkpoint {path}` (it reads the tensors "
                "without running any of the file's code), or load it with allow_pickle=True if you trust it",
                ref=ref,
            )
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(file.read_text())["weight_map"].values()))
            return [path / shard for shard in shards]
        return [file]
    raise ModelNotFoundError(f"no weights in {path} (expected {_SAFE_WEIGHTS[0]})", ref=ref)


def _model_id(path: Path, weights: list[Path]) -> str:
    # The config's own path fields differ between copies of one checkpoint; hash what the
    # model computes with: its settings minus paths, and the weight bytes.
    config = json.loads((path / "config.json").read_text())
    config.pop("_name_or_path", None)
    if isinstance(config.get("encoder"), dict):
        config["encoder"].pop("_name_or_path", None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    # A span filter changes which spans are scored: it is part of the model when present
    # (and leaves the id of a checkpoint without one as it was).
    extra = [path / FILTER_CONFIG, path / FILTER_WEIGHTS] if has_span_filter(path) else []
    for file in [*weights, *extra]:
        with open(file, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return f"spanmarker-{digest.hexdigest()[:16]}"


def convert_to_safetensors(path: str | Path) -> Path:
    """Write ``model.safetensors`` beside a checkpoint's pickle weights (``pytorch_model.bin``).

    The pickle is read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler
    rebuilds tensors and plain containers and refuses anything else, so converting runs none
    of the file's code. Sharded pickles (``pytorch_model.bin.index.json``) are not handled.

    Returns:
        The safetensors file written.

    Raises:
        UnsafeCheckpointError: No ``pytorch_model.bin``, or it holds more than tensors.
    """
    from safetensors.torch import save_file

    folder = Path(path)
    source, target = folder / "pytorch_model.bin", folder / "model.safetensors"
    if not source.is_file():
        raise UnsafeCheckpointError("no pytorch_model.bin to convert", ref=str(folder))
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UnsafeCheckpointError(f"pytorch_model.bin holds more than tensors: {e}", ref=str(folder)) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsafeCheckpointError("pytorch_model.bin is not a state dict of tensors", ref=str(folder))
    # safetensors stores no shared storage (tied weights): each tensor gets its own copy.
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(target), metadata={"format": "pt"})
    return target
