"""Property tests: whatever the text, offsets are valid and entities never overlap."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ner_core import EngineConfig, NerEngine

_PIECES = [
    "Angela Merkel",
    "Paris",
    "New York",
    " ",
    "  ",
    "\n",
    "\t",
    ".",
    ",",
    "!",
    "東京タワー",
    "北京市朝阳区",
    "🙂",
    "👩‍👩‍👧",
    "🇩🇪",
    "مرحبا بالعالم",
    "محمد \ufdfa",
    "\ufdfa\ufdfb",
    "a\u00a8",
    "שלום",
    "e\u0301",
    "a\u0308\u0323",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u00ad",
    "«Газпром»,",
    "(U.S.)",
    "„Zeit“.",
    "http://a.b/c,",
    "日本（东京）。",
    "x" * 300,
    "ab" * 150 + "漢" * 100,
    "Ünïcödé",
    "Ωμέγα",
    "Привет",
]
texts = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.text(max_size=30)),
    max_size=40,
).map("".join)


@pytest.fixture(scope="module")
def engines(tiny_model_pair):
    return [NerEngine(m, EngineConfig(window_tokens=32, overlap_tokens=6, batch_tokens=1024)) for m in tiny_model_pair]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(text=texts)
def test_offsets_valid_text_exact_no_overlap(engines, text):
    for engine in engines:
        result = engine.predict_text(text)
        assert result.n_chars == len(text)
        previous_end = 0
        for e in result.entities:
            assert 0 <= e.start < e.end <= len(text)
            assert e.text == text[e.start : e.end]
            assert e.text == e.text.strip()
            assert e.start >= previous_end, "entities overlap or are unsorted"
            assert 0.0 <= e.score <= 1.0
            previous_end = e.end


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  ", "\u200b\u200b", "\ufeff"])
def test_empty_and_invisible_documents(engines, text):
    for engine in engines:
        result = engine.predict_text(text)
        assert result.entities == ()


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_spaced_punctuation_only_inserts_spaces_and_maps_back(text):
    from ner_core.windowing import spaced_punctuation

    spaced, to_original = spaced_punctuation(text)
    if to_original is None:
        assert spaced == text
        return
    offsets = np.array([[k, k + 1] for k in range(len(spaced))])
    back = to_original(offsets)
    kept = [k for k, (a, b) in enumerate(back.tolist()) if b > a]
    # Every original character comes back once, in order; the rest are inserted spaces.
    assert [back[k][0] for k in kept] == list(range(len(text)))
    assert all(spaced[k] == text[back[k][0]] for k in kept)
    assert all(spaced[k] == " " for k in set(range(len(spaced))) - set(kept))
