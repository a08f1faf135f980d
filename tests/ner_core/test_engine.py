import numpy as np
import pytest

from ner_core import Doc, EngineConfig, NerEngine
from ner_core.inference import SpanScorer, WindowScores

SENTENCES = [
    "Angela Merkel visited Paris and the United Nations in New York .",
    "John Smith works for the European Commission in Brussels , Belgium .",
    "El presidente Pedro Sánchez viajó a Buenos Aires con Iberia .",
    "Владимир Путин встретился с Ангелой Меркель в Москве .",
    "Der Bundestag in Berlin stimmte am Montag über das Gesetz ab .",
    "La Tour Eiffel se trouve à Paris , en France .",
    "Il Milan ha battuto la Juventus allo stadio San Siro .",
    "De Nederlandse regering in Den Haag keurde het plan goed .",
    "A Petrobras anunciou lucro recorde no Rio de Janeiro .",
    "Lech Wałęsa założył Solidarność w Gdańsku .",
    "東京 と 大阪 は 日本 の 都市 です 。",
    "Barack Obama met Xi Jinping at the G20 summit in Hangzhou , China , on Sunday .",
    "a",
    "Word-with-hyphens , e-mail@example.com and http://example.org/path?q=1 !",
]


def _predict_reference(model, sentences, batch_size=4):
    """SpanMarker's own predict, with entity offsets stripped of the SentencePiece space."""
    out = []
    for ents in model.span_marker.predict(sentences, batch_size=batch_size):
        row = []
        for e in ents:
            s, t = e["char_start_index"], e["char_end_index"]
            text = e["span"]
            s += len(text) - len(text.lstrip())
            t -= len(text) - len(text.rstrip())
            row.append((s, t, e["label"], e["score"]))
        out.append(row)
    return out


@pytest.mark.parametrize("strategy", ["text_once", "padded"])
def test_parity_with_span_marker_predict(tiny_model, strategy):
    reference = _predict_reference(tiny_model, SENTENCES)
    engine = NerEngine(tiny_model, EngineConfig(strategy=strategy, batch_tokens=512))
    results = list(engine.predict(SENTENCES))
    assert sum(len(r) for r in reference) > 10, "the tiny model must predict entities for parity to mean something"
    for sentence, result, expected in zip(SENTENCES, results, reference):
        assert result.n_windows == 1
        got = [(e.start, e.end, e.label) for e in result.entities]
        assert got == [(s, t, label) for s, t, label, _ in expected], sentence
        np.testing.assert_allclose([e.score for e in result.entities], [x[3] for x in expected], atol=1e-5)
        for e in result.entities:
            assert sentence[e.start : e.end] == e.text


WRITTEN = [
    'Angela Merkel visited Paris, and «Газпром» (Moscow) said "no".',
    "„Die Zeit“ berichtet: Der Bundestag (Berlin) stimmte ab.",
]


def test_parity_with_span_marker_predict_on_text_as_written_when_read_as_is(tiny_model):
    # SpanMarker reads the text as it is and keeps whatever edges its spans have.
    config = EngineConfig(batch_tokens=512, space_punctuation=False, trim_unpaired_quotes=False)
    results = list(NerEngine(tiny_model, config).predict(WRITTEN))
    reference = _predict_reference(tiny_model, WRITTEN)
    assert [[(e.start, e.end, e.label) for e in r.entities] for r in results] == [
        [(s, t, label) for s, t, label, _ in row] for row in reference
    ]


def test_text_as_written_is_encoded_as_its_spaced_form(tiny_model):
    # "«Газпром», (Moscow)" reaches the encoder as "« Газпром » , ( Moscow )": the form of the
    # tokenised corpora the model was trained on.
    from ner_core.windowing import spaced_punctuation

    engine = NerEngine(tiny_model, EngineConfig())
    for text in WRITTEN:
        spaced = spaced_punctuation(text)[0]
        assert spaced != text
        written_ids = [w.input_ids.tolist() for w in engine.window_inputs(Doc(doc_id="w", text=text))]
        spaced_ids = [w.input_ids.tolist() for w in engine.window_inputs(Doc(doc_id="s", text=spaced))]
        assert written_ids == spaced_ids
        for e in engine.predict_text(text).entities:
            assert text[e.start : e.end] == e.text and e.text == e.text.strip()


def test_results_stream_in_input_order_with_ids(tiny_model):
    engine = NerEngine(tiny_model, EngineConfig(lookahead_tokens=50, batch_tokens=256))
    docs = [Doc(doc_id=f"doc-{i}", text=s) for i, s in enumerate(SENTENCES * 3)]
    results = engine.predict(iter(docs))
    assert [r.doc_id for r in results] == [d.doc_id for d in docs]
    assert [r.doc_id for r in engine.predict(["x", "y"])] == ["0", "1"]
    assert engine.stats.documents == len(docs) + 2


def test_text_between_breaks_is_read_as_if_it_were_a_document_of_its_own(tiny_model):
    # Cells of a table: with breaks, each is scored alone, whatever its neighbours.
    cells = [s.rstrip(" .") for s in SENTENCES[:6]]
    text = "\n".join(cells)
    breaks = tuple(text.index(c) for c in cells[1:])
    engine = NerEngine(tiny_model, EngineConfig())
    [whole] = engine.predict([Doc(doc_id="t", text=text, breaks=breaks)])
    alone = [
        (e.start + offset, e.end + offset, e.label)
        for offset, result in zip((text.index(c) for c in cells), engine.predict(cells))
        for e in result.entities
    ]
    assert [(e.start, e.end, e.label) for e in whole.entities] == alone
    assert whole.n_windows == len(cells)
    [run_on] = engine.predict([text])
    assert run_on.n_windows < len(cells), "without breaks, windows hold several cells"


def test_batching_does_not_change_results(tiny_model):
    big = list(NerEngine(tiny_model, EngineConfig(batch_tokens=8192)).predict(SENTENCES))
    small = list(NerEngine(tiny_model, EngineConfig(batch_tokens=64, max_batch_windows=1)).predict(SENTENCES))
    for a, b in zip(big, small):
        assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
        np.testing.assert_allclose([e.score for e in a.entities], [e.score for e in b.entities], atol=1e-5)


def test_a_document_longer_than_the_lookahead_is_scored_a_lookahead_at_a_time(tiny_model):
    text = " ".join(SENTENCES * 12)
    whole = NerEngine(tiny_model).predict_text(text)
    engine = NerEngine(tiny_model, EngineConfig(lookahead_tokens=300))
    built, waiting = [0], []
    window_input, score = engine._window_input, engine.scorer.score

    def counted_input(*args):
        built[0] += 1
        return window_input(*args)

    def counted_score(windows):
        waiting.append(built[0])  # inputs built so far, not yet scored
        built[0] -= len(windows)
        return score(windows)

    engine._window_input, engine.scorer.score = counted_input, counted_score
    parted = engine.predict_text(text)
    assert parted.n_windows >= 8
    # Never all of the document's inputs at once: at most a part of about 300 tokens (plus
    # the window that crosses its end).
    from ner_core.engine import _parts

    tokens = [w.n_tokens for w in engine._prepare(Doc(doc_id="d", text=text)).windows]
    largest_part = max(len(p) for p in _parts(tokens, tokens, 300))
    assert max(waiting) == largest_part < len(tokens)
    assert [(e.start, e.end, e.label) for e in parted.entities] == [(e.start, e.end, e.label) for e in whole.entities]
    np.testing.assert_allclose([e.score for e in parted.entities], [e.score for e in whole.entities], atol=1e-5)


def test_parts_of_a_chunk_keep_order_and_even_size():
    from ner_core.engine import _parts

    items = list(range(10))
    assert _parts(items, [10] * 10, 1000) == [items]
    assert _parts(items, [10] * 10, 90) == [items], "a chunk a little over the budget stays whole"
    parts = _parts(items, [10] * 10, 30)
    assert [i for p in parts for i in p] == items
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert _parts([], [], 30) == []


@pytest.mark.parametrize("mode", ["marker", "mean"])
def test_embeddings_have_the_documented_shape(tiny_model, mode):
    hidden = tiny_model.hidden_size
    for strategy in ("text_once", "padded"):
        engine = NerEngine(tiny_model, EngineConfig(embeddings=mode, strategy=strategy))
        ents = [e for r in engine.predict(SENTENCES) for e in r.entities]
        assert ents
        for e in ents:
            assert e.embedding.dtype == np.float32
            assert e.embedding.shape == ((2 * hidden,) if mode == "marker" else (hidden,))
            assert np.isfinite(e.embedding).all()


def test_marker_embeddings_agree_between_strategies(tiny_model):
    a = NerEngine(tiny_model, EngineConfig(embeddings="marker", strategy="text_once")).predict_text(SENTENCES[0])
    b = NerEngine(tiny_model, EngineConfig(embeddings="marker", strategy="padded")).predict_text(SENTENCES[0])
    for x, y in zip(a.entities, b.entities):
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)


def test_fast_precision_runs_and_stays_close(tiny_model):
    exact = NerEngine(tiny_model).predict_text(SENTENCES[0])
    fast = NerEngine(tiny_model, EngineConfig(precision="fast")).predict_text(SENTENCES[0])
    for e in fast.entities:
        assert SENTENCES[0][e.start : e.end] == e.text
    assert len(fast.entities) >= 1 and len(exact.entities) >= 1


def test_bf16_fast_mode_runs_half_copies_and_leaves_the_shared_model_alone(tiny_model, monkeypatch):
    import torch

    import ner_core.inference as inference

    # As on a CPU with bf16 hardware, whatever CPU runs the tests (emulated bf16 is only slow).
    monkeypatch.setattr(inference, "cpu_fast_kind", lambda: "bf16")
    before = {k: v.clone() for k, v in tiny_model.span_marker.state_dict().items()}
    exact = list(NerEngine(tiny_model).predict(SENTENCES))
    fast_engine = NerEngine(tiny_model, EngineConfig(precision="fast"))
    assert fast_engine.scorer.fast_kind == "bf16"
    assert all(p.dtype == torch.bfloat16 for layer in fast_engine.scorer._layers for p in layer.parameters())
    fast = list(fast_engine.predict(SENTENCES))

    after = tiny_model.span_marker.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert [[(e.start, e.end, e.label) for e in r.entities] for r in NerEngine(tiny_model).predict(SENTENCES)] == [
        [(e.start, e.end, e.label) for e in r.entities] for r in exact
    ]
    # bf16 keeps 8 bits of mantissa: scores of the entities both modes find stay close.
    exact_scores = {(i, e.start, e.end, e.label): e.score for i, r in enumerate(exact) for e in r.entities}
    fast_scores = {(i, e.start, e.end, e.label): e.score for i, r in enumerate(fast) for e in r.entities}
    shared = exact_scores.keys() & fast_scores.keys()
    assert len(shared) >= 0.8 * len(exact_scores) > 0
    assert max(abs(exact_scores[k] - fast_scores[k]) for k in shared) < 0.05
    for sentence, r in zip(SENTENCES, fast):
        assert all(sentence[e.start : e.end] == e.text and np.isfinite(e.score) for e in r.entities)


def test_engine_config_invariants(tiny_model):
    with pytest.raises(ValueError, match="precision must be one of"):
        EngineConfig(precision="int4")
    with pytest.raises(ValueError, match="embeddings must be one of"):
        EngineConfig(embeddings="cls")
    with pytest.raises(ValueError, match="exceeds the model's model_max_length"):
        NerEngine(tiny_model, EngineConfig(window_tokens=tiny_model.model_max_length + 1))


class OracleScorer(SpanScorer):
    """Labels exactly the token sequence of ``target`` as PER, everything else as O."""

    def __init__(self, model, target_ids):
        super().__init__(model)
        self.target = tuple(target_ids)
        self.per = model.labels.index("PER")

    def cost(self, window):
        return window.n_tokens + 2 * window.n_spans

    def _score(self, windows):
        out = []
        for w in windows:
            hit = np.array(
                [tuple(w.input_ids[s : e + 1]) == self.target for s, e in zip(w.start_pos, w.end_pos)], dtype=bool
            )
            out.append(
                WindowScores(
                    scores=np.where(hit, 0.9, 0.99).astype(np.float32),
                    label_ids=np.where(hit, self.per, self.model.outside_id).astype(np.int64),
                )
            )
        return out


def test_long_document_entities_at_every_window_boundary_found_once(tiny_model):
    entity = "Zorblax Quintus"
    target = tiny_model.tokenizer(entity, add_special_tokens=False)["input_ids"]
    filler = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "far", "away"]
    words, placed = [], []
    i = 0
    # An entity every few words: wherever a window is cut, one sits at its edge.
    while sum(len(w) + 1 for w in words) < 4000:
        if i % 3 == 0:
            words.extend(entity.split())
        else:
            words.append(filler[i % len(filler)])
        i += 1
    words.extend(entity.split())
    text = " ".join(words)
    pos = 0
    while (pos := text.find(entity, pos)) >= 0:
        placed.append((pos, pos + len(entity)))
        pos += len(entity)

    engine = NerEngine(tiny_model, EngineConfig(overlap_tokens=24), scorer=OracleScorer(tiny_model, target))
    result = engine.predict_text(text)
    assert result.n_tokens > 10 * tiny_model.model_max_length
    assert result.n_windows >= 10
    assert [(e.start, e.end) for e in result.entities] == placed
    assert all(e.text == entity and e.label == "PER" for e in result.entities)
    assert result.n_window_duplicates > 0, "overlapping windows saw some entities twice"

    # Every cut between windows has an entity in the words next to it.
    from ner_core.windowing import cut_windows, tokenize_document

    doc = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=engine._capacity)
    windows = cut_windows(doc, engine.windowing, n_special=2)
    starts = set(np.searchsorted(doc.word_char_start, [s for s, _ in placed]).tolist())
    for w in windows[1:]:
        assert starts & set(range(w.word_start - 3, w.word_start + 3))


def _random_windows(model, sizes, seed=0):
    from ner_core.inference import WindowInput

    rng = np.random.default_rng(seed)
    vocab = model.tokenizer.vocab_size
    out = []
    for n_tokens, n_spans in sizes:
        starts = rng.integers(1, n_tokens - 1, n_spans)
        ends = np.minimum(starts + rng.integers(0, 4, n_spans), n_tokens - 2)
        out.append(WindowInput(input_ids=rng.integers(5, vocab, n_tokens), start_pos=starts, end_pos=ends))
    return out


def test_text_once_encoding_is_the_same_alone_batched_and_differentiable(tiny_model):
    import torch

    from ner_core.inference import TextOnceScorer

    scorer = TextOnceScorer(tiny_model)
    windows = _random_windows(tiny_model, [(13, 9), (40, 31), (7, 0), (21, 17)])
    with torch.inference_mode():
        batched = scorer.encode(windows)
        alone = [scorer.encode([w]) for w in windows]  # one window: the unpadded path
    with torch.no_grad():
        autograd = scorer.encode(windows, differentiable=True)
    for got in (autograd, tuple(torch.cat(parts) for parts in zip(*alone))):
        for x, y in zip(batched, got):
            assert x.shape == y.shape
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_dense_agrees_with_the_linear_module_and_keeps_gradients():
    import torch
    from torch.nn.utils import parametrize

    from ner_core.inference import _dense

    torch.manual_seed(0)
    linear, x = torch.nn.Linear(48, 96), torch.randn(37, 48)
    with torch.inference_mode():
        torch.testing.assert_close(_dense(linear, x), linear(x), rtol=1e-5, atol=1e-6)
        half = torch.nn.Linear(48, 96).to(torch.bfloat16)
        assert _dense(half, x.to(torch.bfloat16)).dtype == torch.bfloat16
    # Outside inference mode (training) the module runs, so gradients flow to its weights.
    _dense(linear, x).sum().backward()
    assert linear.weight.grad is not None

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    parametrize.register_parametrization(linear, "weight", Double())
    with torch.inference_mode():
        torch.testing.assert_close(_dense(linear, x), linear(x))


@pytest.mark.parametrize("missing", ["intermediate_act_fn", "LayerNorm", "dense"])
def test_an_encoder_without_a_part_the_text_once_path_calls_falls_back_to_padded(tiny_model, missing):
    import copy

    from ner_core.inference import PaddedScorer, make_scorer, supports_text_once

    model = copy.deepcopy(tiny_model)
    layer = model.span_marker.encoder.encoder.layer[0]
    delattr(layer.intermediate if missing != "LayerNorm" else layer.output, missing)
    assert supports_text_once(tiny_model) and not supports_text_once(model)
    assert isinstance(make_scorer(model), PaddedScorer)
