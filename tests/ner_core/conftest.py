"""Fixtures for the engine's tests: the tiny checkpoints loaded through ``ner_core.loading``.

The checkpoints themselves (``tiny_model_dir`` and friends) come from ``tests/conftest.py``.
Loaded models are shared by the session: tests must not change them.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _load(model_dir: Path):
    from ner_core.loading import load_model

    return load_model(model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """Each tiny checkpoint as a loaded ``NerModel`` on the CPU (ids ``wordpiece``, ``sentencepiece``)."""
    return _load(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_model_pair(tiny_wordpiece_model_dir: Path, tiny_sentencepiece_model_dir: Path):
    """Both tiny checkpoints loaded, WordPiece first, for tests that compare or loop over them."""
    return [_load(tiny_wordpiece_model_dir), _load(tiny_sentencepiece_model_dir)]
