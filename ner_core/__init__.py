"""nerflow's NER engine: SpanMarker inference over documents of any length.

Pure engine code: no orchestration, storage or validation imports, so it runs the same in
a notebook, a Prefect task, a Ray actor or a test.
"""

from ner_core.documents import Doc, DocResult, Entity
from ner_core.engine import EngineConfig, EngineStats, NerEngine
from ner_core.errors import NerflowError
from ner_core.loading import NerModel, clear_model_cache, load_model

__all__ = [
    "Doc",
    "DocResult",
    "Entity",
    "EngineConfig",
    "EngineStats",
    "NerEngine",
    "NerModel",
    "NerflowError",
    "load_model",
    "clear_model_cache",
]
