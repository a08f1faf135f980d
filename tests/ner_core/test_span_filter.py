"""The span filter: scoring only some spans, storing the filter, choosing the rule."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from ner_core import EngineConfig, NerEngine, load_model
from ner_core.errors import ModelConfigError
from ner_core.inference import TextOnceScorer, make_scorer
from ner_core.span_filter import (
    FILTER_CONFIG,
    OperatingPoint,
    SpanFilter,
    SpanFilterHead,
    batch_span_positions,
    load_span_filter,
    parse_span_filter,
    save_span_filter,
    span_selection,
)
from tests.ner_core.test_engine import SENTENCES, _random_windows


def _random_filter(model, *, design="mlp", threshold=0.5, seed=0) -> SpanFilter:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = SpanFilterHead(model.hidden_size, design=design, inner=16, width_dim=4)
        # Spread the logits so that a threshold of 0.5 keeps about half of the spans.
        torch.nn.init.normal_(head.out.weight, std=2.0)
    head.eval()
    return SpanFilter(head=head, operating_point=OperatingPoint(threshold=threshold, spans_per_word=4.0, recall=1.0))


def _with_filter(model, span_filter):
    return dataclasses.replace(model, span_filter=span_filter)


@pytest.mark.parametrize("design", ["mlp", "biaffine"])
def test_kept_spans_score_as_in_exact_mode_and_pruned_ones_are_outside(tiny_model, design):
    model = _with_filter(tiny_model, _random_filter(tiny_model, design=design))
    exact = TextOnceScorer(model)
    pruned = make_scorer(model, span_filter="stored")
    windows = _random_windows(model, [(13, 9), (40, 31), (7, 0), (21, 17), (60, 120)])
    full = exact.score(windows)
    for got in (pruned.score(windows), [s for w in windows for s in pruned.score([w])]):
        n_kept = 0
        for w, g, f in zip(windows, got, full):
            kept = g.scored
            assert np.all(np.diff(kept) > 0) and (len(kept) == 0 or kept[-1] < w.n_spans)
            np.testing.assert_allclose(g.scores[kept], f.scores[kept], atol=1e-5)
            np.testing.assert_array_equal(g.label_ids[kept], f.label_ids[kept])
            rest = np.setdiff1d(np.arange(w.n_spans), kept)
            assert np.all(g.label_ids[rest] == model.outside_id)
            n_kept += len(kept)
        assert 0 < n_kept < sum(w.n_spans for w in windows), "the filter must keep some spans and prune others"


def test_a_filter_keeping_every_span_gives_exact_modes_entities(tiny_model):
    model = _with_filter(tiny_model, _random_filter(tiny_model))
    exact = list(NerEngine(model, EngineConfig(span_filter="off")).predict(SENTENCES))
    engine = NerEngine(model, EngineConfig(span_filter="threshold=0"))
    every = list(engine.predict(SENTENCES))
    assert sum(len(r.entities) for r in exact) > 10
    for a, b in zip(exact, every):
        assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
        np.testing.assert_allclose([e.score for e in a.entities], [e.score for e in b.entities], atol=1e-5)
    assert engine.stats.spans_scored == engine.stats.spans


def test_pruned_entities_are_exact_entities_of_kept_spans_and_counted(tiny_model):
    model = _with_filter(tiny_model, _random_filter(tiny_model))
    exact_engine = NerEngine(model, EngineConfig(span_filter="off"))
    engine = NerEngine(model, EngineConfig(span_filter="auto"))
    assert engine.span_filter_rule == "stored (threshold=0.5)"
    assert exact_engine.span_filter_rule == "off"
    pruned = list(engine.predict(SENTENCES))
    list(exact_engine.predict(SENTENCES))
    st, ex = engine.stats, exact_engine.stats
    assert st.spans == ex.spans == ex.spans_scored
    assert 0 < st.spans_scored < st.spans
    # Encoder tokens: every window's text, and two markers per scored span only.
    assert st.encoder_tokens == ex.encoder_tokens - 2 * (st.spans - st.spans_scored)
    for r in pruned:
        for e in r.entities:
            assert e.label in model.entity_labels


def test_budget_keeps_the_most_probable_spans_per_word(tiny_model):
    model = _with_filter(tiny_model, _random_filter(tiny_model))
    scorer = make_scorer(model, span_filter="budget=0.5")
    windows = _random_windows(model, [(40, 31), (21, 17)])
    for w, s in zip(windows, scorer.score(windows)):
        words = len(np.unique(w.start_pos))  # every word starts a span
        assert len(s.scored) == min(w.n_spans, int(np.ceil(0.5 * words)))
        pruned = np.setdiff1d(np.arange(w.n_spans), s.scored)
        # Pruned spans carry the filter's probability of "not an entity"; the kept spans were
        # the most probable, so every pruned span is at least as likely "not an entity" as
        # the budget's last kept one under a threshold that keeps exactly as many.
        assert np.all(s.label_ids[pruned] == model.outside_id)


def test_span_positions_of_a_batch_point_into_each_windows_own_text_states():
    starts, ends = batch_span_positions(
        [5, 3, 4],
        [np.array([1, 2]), np.array([0]), np.array([1, 3])],
        [np.array([2, 4]), np.array([2]), np.array([3, 3])],
    )
    assert starts.tolist() == [1, 2, 5, 9, 11]
    assert ends.tolist() == [2, 4, 7, 11, 11]
    empty = batch_span_positions([], [], [])
    assert [len(a) for a in empty] == [0, 0]


def test_settings_are_parsed_and_bad_ones_refused(tiny_model):
    assert parse_span_filter("AUTO").mode == "auto"
    assert parse_span_filter("threshold=0.02").value == 0.02
    assert parse_span_filter("budget=1.5").value == 1.5
    for bad in ("on", "threshold=2", "threshold=x", "budget=0", "budget=inf", ""):
        with pytest.raises(ValueError, match="span_filter"):
            parse_span_filter(bad)
    with pytest.raises(ValueError, match="span_filter"):
        EngineConfig(span_filter="sometimes")
    # A model without a filter: auto scores every span, an explicit filter setting is refused.
    assert NerEngine(tiny_model, EngineConfig(span_filter="auto")).span_filter_rule == "off"
    with pytest.raises(ValueError, match="train-filter"):
        NerEngine(tiny_model, EngineConfig(span_filter="stored"))
    filtered = _with_filter(tiny_model, _random_filter(tiny_model))
    with pytest.raises(ValueError, match="text-once"):
        NerEngine(filtered, EngineConfig(strategy="padded", span_filter="stored"))
    assert NerEngine(filtered, EngineConfig(strategy="padded", span_filter="auto")).span_filter_rule == "off"
    # A model's filter is used by default (docs/performance.md, "Span filter"); exact mode is one flag away.
    assert NerEngine(filtered, EngineConfig()).span_filter_rule.startswith("stored (threshold=")
    assert NerEngine(filtered, EngineConfig(span_filter="off")).span_filter_rule == "off"


def test_a_threshold_below_the_stored_one_plans_by_the_recall_curve_or_for_every_span(tiny_model):
    point = _random_filter(tiny_model, threshold=0.3)
    assert span_selection(point, parse_span_filter("threshold=0.1")).spans_per_word == float("inf")
    assert span_selection(point, parse_span_filter("threshold=0.4")).spans_per_word == 4.0
    # With the recall curve of its dev data: the figure at the nearest curve threshold at or
    # below the one asked for (it keeps at least as many spans), every span below the curve.
    curve = [{"threshold": t, "spans_per_word": k} for t, k in ((0.2, 5.0), (0.1, 6.0), (0.05, 7.5))]
    with_curve = dataclasses.replace(point, info={"curve": curve})
    planned = {
        t: span_selection(with_curve, parse_span_filter(f"threshold={t}")).spans_per_word for t in (0.15, 0.1, 0.01)
    }
    assert planned == {0.15: 6.0, 0.1: 6.0, 0.01: float("inf")}
    assert span_selection(with_curve, parse_span_filter("threshold=0.3")).spans_per_word == 4.0


def test_the_filter_is_stored_beside_the_checkpoint_which_still_loads_in_span_marker(
    tiny_wordpiece_model_dir, tmp_path
):
    from span_marker import SpanMarkerModel

    directory = tmp_path / "model"
    shutil.copytree(tiny_wordpiece_model_dir, directory)
    plain = load_model(directory, device="cpu")
    assert plain.span_filter is None
    span_filter = _random_filter(plain, threshold=0.25)
    span_filter = SpanFilter(head=span_filter.head, operating_point=span_filter.operating_point, info={"note": "test"})
    save_span_filter(directory, span_filter)
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    loaded = load_model(copy, device="cpu")
    assert loaded.span_filter is not None
    assert loaded.span_filter.operating_point == span_filter.operating_point
    assert loaded.span_filter.info == {"note": "test"}
    assert loaded.model_id != plain.model_id, "the filter decides what is scored: part of the model's identity"
    for a, b in zip(loaded.span_filter.head.state_dict().values(), span_filter.head.state_dict().values()):
        torch.testing.assert_close(a, b)
    # SpanMarker's own loader ignores the filter's files.
    reference = SpanMarkerModel.from_pretrained(str(copy))
    assert reference.config.entity_max_length == loaded.entity_max_length


def test_a_damaged_filter_is_a_model_config_error(tiny_wordpiece_model_dir, tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(tiny_wordpiece_model_dir, directory)
    model = load_model(directory, device="cpu")
    save_span_filter(directory, _random_filter(model))
    config = json.loads((directory / FILTER_CONFIG).read_text())
    config["hidden_size"] += 1
    (directory / FILTER_CONFIG).write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="span filter"):
        load_span_filter(directory, hidden_size=model.hidden_size)
