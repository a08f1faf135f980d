"""Training: the windows it learns from, the plan of batches, learning, resuming, exporting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ner_core.adapters import new_span_marker
from ner_core.errors import ModelConfigError
from ner_core.labelled import LabelledText, sentence_to_text
from ner_core.training import LabelCoverage, PlannedWindow, TrainConfig, Trainer, build_windows, plan_batches
from tests.fixtures_models import weight_files

SENTENCES = [
    (["Angela", "Merkel", "visited", "Paris", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    (
        ["the", "United", "Nations", "met", "in", "New", "York", "."],
        ["O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "I-LOC", "O"],
    ),
    (["John", "Smith", "is", "at", "Google", "."], ["B-PER", "I-PER", "O", "O", "B-ORG", "O"]),
    (["Maria", "visited", "Berlin", "and", "Rome", "."], ["B-PER", "O", "B-LOC", "O", "B-LOC", "O"]),
]


def _records(sentences=SENTENCES):
    out = []
    for i, (tokens, tags) in enumerate(sentences):
        text, offsets, entities = sentence_to_text(tokens, tags)
        out.append(LabelledText(id=f"s{i}", text=text, entities=tuple(entities), lang="en", tokens=offsets))
    return out


def _config(tmp_path, encoder_dir, **overrides) -> TrainConfig:
    base = dict(
        train=[],
        encoder=str(encoder_dir),
        labels=["PER", "ORG", "LOC", "MISC"],
        model_max_length=64,
        entity_max_length=4,
        marker_max_length=32,
        lora_rank=4,
        lora_alpha=8.0,
        learning_rate=5e-3,
        head_learning_rate=5e-3,
        warmup_ratio=0.0,
        batch_tokens=400,
        max_steps=6,
        checkpoint_every=2,
        eval_every=0,
        output_dir=str(tmp_path / "run"),
        seed=3,
        negative_rate=0.5,
        dropout=0.0,
    )
    base.update(overrides)
    return TrainConfig(**base)


class _Interrupted(Exception):
    pass


def _stop_at(stop: int):
    """A progress callback that interrupts a run when it reaches step ``stop``."""

    def progress(step, total, loss):
        if step == stop:
            raise _Interrupted

    return progress


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_wordpiece_encoder_dir):
    model = new_span_marker(
        str(tiny_wordpiece_encoder_dir),
        ["PER", "ORG", "LOC", "MISC"],
        model_max_length=64,
        entity_max_length=4,
        marker_max_length=32,
    )
    return model.tokenizer.tokenizer, {v: int(k) for k, v in model.config.id2label.items()}


def test_every_gold_entity_labels_exactly_its_span(tiny_tokenizer):
    tokenizer, label2id = tiny_tokenizer
    records = _records()
    coverage = LabelCoverage()
    windows = build_windows(
        records, tokenizer, label2id=label2id, model_max_length=64, entity_max_length=4, coverage=coverage
    )
    assert len(windows) == len(records)
    assert coverage.entities == 9 and coverage.as_dict() == {**coverage.as_dict(), "not_word_aligned": 0, "too_long": 0}
    assert sum(int((w.labels > 0).sum()) for w in windows) == 9
    first = windows[0]
    # "Angela Merkel" is words 0-1: the span (0, 2), the second candidate of word 0.
    assert first.labels[1] == label2id["PER"]
    # Hard negatives: every span overlapping an entity is always trained on.
    assert first.always[first.labels > 0].all() and first.always.sum() > (first.labels > 0).sum()


def test_entities_the_model_cannot_represent_are_counted_not_silently_lost(tiny_tokenizer):
    tokenizer, label2id = tiny_tokenizer
    text = "Ein sehr sehr langer Name der Organisation hier ."
    records = [
        LabelledText(id="long", text=text, entities=((0, 42, "ORG"),)),  # 7 words > entity_max_length 4
        LabelledText(id="inside", text="Paris!", entities=((1, 3, "LOC"),)),  # not on a word boundary
        LabelledText(id="other", text="Paris", entities=((0, 5, "XYZ"),)),  # not a model label
    ]
    coverage = LabelCoverage()
    build_windows(records, tokenizer, label2id=label2id, model_max_length=64, entity_max_length=4, coverage=coverage)
    assert (coverage.entities, coverage.too_long, coverage.not_word_aligned, coverage.unknown_label) == (3, 1, 1, 1)


def test_a_span_labelled_twice_keeps_its_first_label_and_counts_the_other(tiny_tokenizer):
    tokenizer, label2id = tiny_tokenizer
    records = [
        LabelledText(
            id="twice",
            text="Paris Hilton",
            entities=(
                (0, 12, "PER"),
                (0, 12, "ORG"),
                (0, 12, "PER"),
                (0, 5, "LOC"),
            ),
        )
    ]
    coverage = LabelCoverage()
    [window] = build_windows(
        records, tokenizer, label2id=label2id, model_max_length=64, entity_max_length=4, coverage=coverage
    )
    assert (coverage.entities, coverage.conflicting_label, coverage.repeated) == (4, 1, 1)
    assert sorted(int(x) for x in window.labels[window.labels > 0]) == sorted([label2id["PER"], label2id["LOC"]])


def test_batch_plan_is_deterministic_keeps_hard_spans_and_respects_the_budget(tiny_tokenizer):
    tokenizer, label2id = tiny_tokenizer
    windows = build_windows(_records() * 8, tokenizer, label2id=label2id, model_max_length=64, entity_max_length=4)
    a = plan_batches(windows, batch_tokens=300, seed=1, epoch=0, negative_rate=0.3)
    b = plan_batches(windows, batch_tokens=300, seed=1, epoch=0, negative_rate=0.3)
    c = plan_batches(windows, batch_tokens=300, seed=1, epoch=1, negative_rate=0.3)
    key = lambda plan: [[(p.window, p.spans.tolist()) for p in batch] for batch in plan]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)
    assert sorted(p.window for batch in a for p in batch) == list(range(len(windows)))
    for batch in a:
        for p in batch:
            assert set(np.flatnonzero(windows[p.window].always)) <= set(p.spans.tolist())
        assert len(batch) == 1 or sum(windows[p.window].input.n_tokens + 2 * len(p.spans) for p in batch) <= 300
    full = plan_batches(windows, batch_tokens=300, seed=1, epoch=0, negative_rate=1.0)
    assert all(len(p.spans) == windows[p.window].input.n_spans for batch in full for p in batch)


def _trainable(trainer) -> dict[str, torch.Tensor]:
    from ner_core.adapters import trainable_state

    return trainable_state(trainer.model)


@pytest.mark.parametrize("encoder", ["wordpiece", "sentencepiece"])
def test_training_learns_the_training_sentences(tmp_path, request, encoder):
    # Full fine-tuning: the tiny random encoder maps all marker pairs to nearly the same
    # vector, which only updating its embeddings can fix in a few steps.
    encoder_dir = request.getfixturevalue(f"tiny_{encoder}_encoder_dir")
    config = _config(
        tmp_path,
        encoder_dir,
        method="full",
        max_steps=120,
        checkpoint_every=120,
        negative_rate=1.0,
        batch_tokens=2000,
        learning_rate=1e-2,
        head_learning_rate=1e-2,
    )
    losses = []
    trainer = Trainer(config, _records(), progress=lambda step, total, loss: losses.append(loss))
    result = trainer.run()
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:5])

    from ner_core import NerEngine, load_model

    model = load_model(result.model_dir)
    found = {(e.text, e.label) for r in NerEngine(model).predict([rec.text for rec in _records()]) for e in r.entities}
    gold = {(rec.text[a:b], label) for rec in _records() for a, b, label in rec.entities}
    assert found == gold


def test_the_head_starts_at_the_label_prior_and_its_standardisation_folds_into_a_plain_classifier(
    tmp_path, tiny_wordpiece_encoder_dir
):
    from ner_core.adapters import StandardisedHead

    trainer = Trainer(_config(tmp_path, tiny_wordpiece_encoder_dir), _records())
    head = trainer.model.classifier
    assert isinstance(head, StandardisedHead)
    counts = np.bincount(np.concatenate([w.labels for w in trainer.windows]), minlength=5) + 1.0
    features = torch.randn(7, head.linear.in_features)
    with torch.no_grad():
        probs = head(features).softmax(-1).numpy()
    np.testing.assert_allclose(probs, np.tile(counts / counts.sum(), (7, 1)), rtol=1e-5)

    torch.manual_seed(0)
    trained = StandardisedHead(torch.nn.Linear(6, 3), torch.randn(6), torch.rand(6) + 0.1)
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(trained.fold()(x), trained(x), rtol=1e-5, atol=1e-5)

    result = trainer.run()
    assert type(trainer.model.classifier) is torch.nn.Linear  # what is saved is SpanMarker's own head
    assert (result.model_dir / "model.safetensors").exists()


def test_an_interrupted_run_resumes_at_its_last_checkpoint_and_ends_where_an_uninterrupted_run_ends(
    tmp_path, tiny_wordpiece_encoder_dir
):
    straight = Trainer(_config(tmp_path / "a", tiny_wordpiece_encoder_dir), _records() * 3)
    straight.run()

    config = _config(tmp_path / "b", tiny_wordpiece_encoder_dir)
    with pytest.raises(_Interrupted):
        Trainer(config, _records() * 3, progress=_stop_at(5)).run()
    steps_seen = []
    resumed = Trainer(config, _records() * 3, progress=lambda step, total, loss: steps_seen.append(step))
    resumed.run()
    assert steps_seen == [5, 6]  # checkpoint at step 4, then the remaining steps
    a, b = _trainable(straight), _trainable(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_export_is_safetensors_only_and_the_adapter_rebuilds_the_same_model(tmp_path, tiny_sentencepiece_encoder_dir):
    from ner_core import NerEngine, load_model
    from ner_core.default_model import materialised_dir

    result = Trainer(_config(tmp_path, tiny_sentencepiece_encoder_dir), _records()).run()
    assert weight_files(result.model_dir) == ["model.safetensors"]
    assert weight_files(result.adapter_dir) == ["adapter.safetensors"]
    adapter_config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["lora"]["rank"] == 4 and adapter_config["labels"] == ["PER", "ORG", "LOC", "MISC"]
    rebuilt = materialised_dir(result.adapter_dir, cache_root=tmp_path / "cache")
    from ner_core.documents import Doc

    doc = Doc(doc_id="x", text="Angela Merkel visited Paris and the United Nations in 北京 .")
    m1, m2 = load_model(result.model_dir), load_model(rebuilt)
    assert [x.input_ids.tolist() for x in NerEngine(m1).window_inputs(doc)] == [
        x.input_ids.tolist() for x in NerEngine(m2).window_inputs(doc)
    ]
    s1 = NerEngine(m1).scorer.score(NerEngine(m1).window_inputs(doc))[0]
    s2 = NerEngine(m2).scorer.score(NerEngine(m2).window_inputs(doc))[0]
    np.testing.assert_array_equal(s1.label_ids, s2.label_ids)
    np.testing.assert_allclose(s1.scores, s2.scores, rtol=1e-5, atol=1e-6)


def test_cjk_characters_are_words_of_their_own_for_sentencepiece_models(tiny_sentencepiece_encoder_dir):
    from ner_core.windowing import tokenize_document

    model = new_span_marker(
        str(tiny_sentencepiece_encoder_dir), ["LOC"], model_max_length=64, entity_max_length=4, marker_max_length=32
    )
    doc = tokenize_document(model.tokenizer.tokenizer, "d", "北京是中国的 Paris, ok", max_word_tokens=60)
    words = [doc.text[a:b] for a, b in zip(doc.word_char_start, doc.word_char_end)]
    assert words == ["北", "京", "是", "中", "国", "的", "Paris", ",", "ok"]


def test_cjk_words_can_be_the_encoders_own_pieces(tiny_sentencepiece_encoder_dir, monkeypatch):
    from ner_core.windowing import tokenize_document

    model = new_span_marker(
        str(tiny_sentencepiece_encoder_dir),
        ["LOC"],
        model_max_length=64,
        entity_max_length=4,
        marker_max_length=32,
        cjk_words="pieces",
    )
    tokenizer = model.tokenizer.tokenizer
    doc = tokenize_document(tokenizer, "d", "北京是中国的 Paris, ok", max_word_tokens=60, cjk_pieces=True)
    words = [doc.text[a:b] for a, b in zip(doc.word_char_start, doc.word_char_end)]
    # Each of the encoder's own pieces of the Chinese is a word (here "北京" is one piece).
    pieces = [
        t.lstrip("▁") for t in tokenizer.backend_tokenizer.encode("北京是中国的", add_special_tokens=False).tokens
    ]
    assert "北京" in pieces
    assert words == [p for p in pieces if p] + ["Paris", ",", "ok"]
    # Long texts are tokenised in blocks: the words do not depend on where the blocks fall.
    import ner_core.windowing as windowing

    text = "北京是中国的 Paris, ok 东京 " * 12
    whole = tokenize_document(tokenizer, "d", text, max_word_tokens=60, cjk_pieces=True)
    monkeypatch.setattr(windowing, "_BLOCK_CHARS", 25)
    blocks = tokenize_document(tokenizer, "d", text, max_word_tokens=60, cjk_pieces=True)
    assert blocks.word_char_start.tolist() == whole.word_char_start.tolist()
    assert blocks.word_char_end.tolist() == whole.word_char_end.tolist()
    with pytest.raises(ModelConfigError, match="cjk_words"):
        new_span_marker(
            str(tiny_sentencepiece_encoder_dir),
            ["LOC"],
            model_max_length=64,
            entity_max_length=4,
            marker_max_length=32,
            cjk_words="words",
        )


def test_an_adapter_trained_on_cjk_pieces_rebuilds_with_them(tmp_path, tiny_sentencepiece_encoder_dir):
    from ner_core import NerEngine, load_model
    from ner_core.default_model import materialised_dir
    from ner_core.documents import Doc
    from ner_core.windowing import enumerate_spans, tokenize_document

    config = _config(tmp_path, tiny_sentencepiece_encoder_dir, cjk_words="pieces")
    result = Trainer(config, _records()).run()
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["cjk_words"] == "pieces"
    for directory in (result.model_dir, materialised_dir(result.adapter_dir, cache_root=tmp_path / "cache")):
        model = load_model(directory)
        assert model.cjk_words == "pieces"
        doc = tokenize_document(model.tokenizer, "d", "北京是中国的", max_word_tokens=60, cjk_pieces=True)
        assert next(doc.text[a:b] for a, b in zip(doc.word_char_start, doc.word_char_end)) == "北京"
        # The engine cuts the model's Chinese into the same pieces: as many candidate spans.
        (window,) = NerEngine(model).window_inputs(Doc(doc_id="d", text="北京是中国的"))
        assert len(window.start_pos) == len(enumerate_spans(doc.n_words, model.entity_max_length)[0])


def test_the_lora_update_is_peft_lora_exactly(tmp_path, tiny_wordpiece_encoder_dir):
    """peft, given the exported adapter, merges to the very weights our parametrization computes."""
    from peft import PeftModel
    from transformers import AutoModel

    from ner_core.adapters import add_lora, export_peft_adapter, merge_lora

    model = new_span_marker(
        str(tiny_wordpiece_encoder_dir), ["PER"], model_max_length=64, entity_max_length=4, marker_max_length=32
    )
    add_lora(model, rank=4, alpha=8.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    export_peft_adapter(model, tmp_path / "peft")
    merge_lora(model)
    ours = model.encoder.state_dict()

    base = AutoModel.from_pretrained(str(tiny_wordpiece_encoder_dir))
    base.resize_token_embeddings(model.encoder.get_input_embeddings().num_embeddings)
    theirs = PeftModel.from_pretrained(base, str(tmp_path / "peft")).merge_and_unload().state_dict()
    layers = [k for k in ours if ".layer." in k and k.endswith("weight") and "LayerNorm" not in k]
    assert layers
    for key in layers:
        torch.testing.assert_close(ours[key], theirs[key], msg=key)


def test_a_second_stage_starts_exactly_where_the_adapter_it_continues_left_off(tmp_path, tiny_wordpiece_encoder_dir):
    first = Trainer(_config(tmp_path / "first", tiny_wordpiece_encoder_dir), _records()).run()
    from ner_core import NerEngine, load_model
    from ner_core.documents import Doc

    doc = Doc(doc_id="x", text="Angela Merkel visited Paris and the United Nations .")
    trained = load_model(first.model_dir)
    expected = NerEngine(trained).scorer.score(NerEngine(trained).window_inputs(doc))[0]

    # Other data, so the standardisation statistics differ: the head is rescaled to match.
    second = Trainer(
        _config(tmp_path / "second", tiny_wordpiece_encoder_dir, init_from=str(first.adapter_dir), seed=9),
        _records()[::-1] * 2,
    )
    second.model.eval()
    start = second.ner_model
    got = NerEngine(start).scorer.score(NerEngine(start).window_inputs(doc))[0]
    np.testing.assert_array_equal(got.label_ids, expected.label_ids)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-5)
    second.run()

    # A higher rank starts from the same function too, and its added rank learns.
    wider = Trainer(
        _config(tmp_path / "wider", tiny_wordpiece_encoder_dir, init_from=str(first.adapter_dir), lora_rank=8),
        _records()[::-1] * 2,
    )
    wider.model.eval()
    got = NerEngine(wider.ner_model).scorer.score(NerEngine(wider.ner_model).window_inputs(doc))[0]
    np.testing.assert_array_equal(got.label_ids, expected.label_ids)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-5)
    from safetensors.torch import load_file

    from ner_core.adapters import ADAPTER_WEIGHTS

    widened = load_file(str(wider.run().adapter_dir / ADAPTER_WEIGHTS))
    added = [p[:, 4:] for name, p in widened.items() if name.endswith("lora_B")]
    assert added and all(b.shape[1] == 4 for b in added)
    assert any(bool(b.abs().sum() > 0) for b in added)

    # A lower rank cannot hold the adapter.
    with pytest.raises(ValueError, match="other settings"):
        Trainer(
            _config(tmp_path / "third", tiny_wordpiece_encoder_dir, init_from=str(first.adapter_dir), lora_rank=2),
            _records(),
        )


def test_averaged_adapters_compute_the_weighted_mean_of_their_weights(tmp_path, tiny_wordpiece_encoder_dir):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from ner_core.adapters import average_adapters, materialise_adapter
    from ner_core.errors import ModelConfigError

    runs = [
        Trainer(_config(tmp_path / f"run{seed}", tiny_wordpiece_encoder_dir, seed=seed), _records()).run()
        for seed in (3, 4)
    ]
    members = [
        load_file(str(materialise_adapter(r.adapter_dir, tmp_path / f"model{i}") / "model.safetensors"))
        for i, r in enumerate(runs)
    ]
    changed = [k for k in members[0] if not torch.equal(members[0][k], members[1][k])]
    assert any(".layer." in k and "LayerNorm" not in k for k in changed)
    assert any(k.startswith("classifier") for k in changed)
    # The embedding matrix is padded with rows no token uses, random in each checkpoint.
    used = len(AutoTokenizer.from_pretrained(str(tmp_path / "model0")))
    # A plain average, and an extrapolation past the first member (a negative weight on the second).
    for weights in ([0.25, 0.75], [1.5, -0.5]):
        name = "_".join(map(str, weights))
        averaged = average_adapters([r.adapter_dir for r in runs], tmp_path / f"avg{name}", weights=weights)
        merged = load_file(str(materialise_adapter(averaged, tmp_path / f"model{name}") / "model.safetensors"))
        # W0 + sum_i w_i * delta_i is the weighted mean of the merged weights, LoRA layers included.
        for key in changed:
            rows = slice(None, used) if "word_embeddings" in key else slice(None)
            expected = weights[0] * members[0][key][rows] + weights[1] * members[1][key][rows]
            torch.testing.assert_close(merged[key][rows], expected, msg=key)

    with pytest.raises(ValueError, match="summing to 1"):
        average_adapters([r.adapter_dir for r in runs], tmp_path / "bad", weights=[0.5, 0.6])
    other = Trainer(_config(tmp_path / "other", tiny_wordpiece_encoder_dir, entity_max_length=3), _records()).run()
    with pytest.raises(ModelConfigError, match="different settings"):
        average_adapters([runs[0].adapter_dir, other.adapter_dir], tmp_path / "bad")


def test_averaged_adapters_truncated_to_a_rank_keep_each_updates_best_approximation(
    tmp_path, tiny_wordpiece_encoder_dir
):
    import json

    from safetensors.torch import load_file

    from ner_core.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, average_adapters

    runs = [
        Trainer(_config(tmp_path / f"run{seed}", tiny_wordpiece_encoder_dir, seed=seed), _records()).run()
        for seed in (3, 4)
    ]
    exact_dir = average_adapters([r.adapter_dir for r in runs], tmp_path / "exact")
    truncated_dir = average_adapters([r.adapter_dir for r in runs], tmp_path / "rank3", max_rank=3)
    exact = load_file(str(exact_dir / ADAPTER_WEIGHTS))
    truncated = load_file(str(truncated_dir / ADAPTER_WEIGHTS))
    config = json.loads((truncated_dir / ADAPTER_CONFIG).read_text())
    assert (config["lora"]["rank"], config["lora"]["alpha"]) == (3, 3.0)
    assert config["metadata"]["truncated_from_rank"] == 8  # two members of rank 4
    assert 0 < config["metadata"]["truncation_relative_error"] < 1

    pairs = [name[: -len("lora_A")] for name in exact if name.endswith("lora_A")]
    assert pairs
    for prefix in pairs:
        a, b = truncated[prefix + "lora_A"], truncated[prefix + "lora_B"]
        assert a.shape[0] == b.shape[1] == 3
        # Eckart-Young: the best rank-3 approximation of the exact averaged update.
        u, singular, vh = torch.linalg.svd(exact[prefix + "lora_B"].double() @ exact[prefix + "lora_A"].double())
        best = (u[:, :3] * singular[:3]) @ vh[:3]
        torch.testing.assert_close((b.double() @ a.double()), best, atol=1e-6, rtol=1e-5)
    # Every tensor that is not a LoRA factor is the plain average, untouched by the truncation.
    for name, tensor in exact.items():
        if not name.endswith(("lora_A", "lora_B")):
            torch.testing.assert_close(truncated[name], tensor, msg=name)
    # A rank at or above the members' sum changes nothing.
    untouched = average_adapters([r.adapter_dir for r in runs], tmp_path / "rank8", max_rank=8)
    assert "truncated_from_rank" not in json.loads((untouched / ADAPTER_CONFIG).read_text())["metadata"]


def test_sources_can_be_joined_into_pseudo_documents(tmp_path):
    import gzip

    from ner_core.training import DataSource, read_sources

    path = tmp_path / "s.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for tokens, tags in SENTENCES:
            f.write(json.dumps({"tokens": tokens, "ner_tags": tags, "lang": "en"}) + "\n")
    joined = read_sources([DataSource(uri=str(path), join=3)], seed=1)["s+join3"]
    assert len(joined) == 2  # 4 sentences: 3 + 1
    single = _records()
    doc = joined[0]
    assert doc.text == "\n".join(r.text for r in single[:3])
    assert [doc.text[s:e] for s, e, _ in doc.entities] == [r.text[s:e] for r in single[:3] for s, e, _ in r.entities]
    assert [doc.text[s:e] for s, e in doc.tokens] == [t for tokens, _ in SENTENCES[:3] for t in tokens]
    assert joined[1].text == single[3].text and joined[1].entities == single[3].entities


def test_sources_can_rejoin_a_seeded_share_of_sentences_as_written_and_trim_quotes(tmp_path):
    import gzip

    from ner_core.training import DataSource, read_sources

    path = tmp_path / "q.jsonl.gz"
    sentences = [
        (["Акции", "«", "Газпром", "»", f"выросли{i}", "."], ["O", "B-ORG", "I-ORG", "I-ORG", "O", "O"])
        for i in range(10)
    ]
    with gzip.open(path, "wt") as f:
        for tokens, tags in sentences:
            f.write(json.dumps({"tokens": tokens, "ner_tags": tags, "lang": "ru"}) + "\n")
    source = DataSource(uri=str(path), written=0.5, trim_quotes=True)
    records = read_sources([source], seed=3)["q+written0.5"]
    assert records == read_sources([source], seed=3)["q+written0.5"]  # the seed decides which
    written = [r for r in records if "«Газпром»" in r.text]
    assert len(written) == 5 and len(records) == 10
    assert {r.text[s:e] for r in records for s, e, _ in r.entities} == {"Газпром"}
    assert (
        read_sources([DataSource(uri=str(path), written=1.0)], seed=3)["q+written"][0].text
        == "Акции «Газпром» выросли0."
    )
    untouched = read_sources([DataSource(uri=str(path))], seed=3)["q"][0]
    assert (
        untouched.text == "Акции « Газпром » выросли0 ."
        and untouched.text[slice(*untouched.entities[0][:2])] == "« Газпром »"
    )


def test_bf16_mixed_precision_runs_the_encoder_in_bf16_keeps_float32_weights_and_learns_alike(
    tmp_path, tiny_wordpiece_encoder_dir, monkeypatch
):
    import ner_core.training as training

    def run(precision, out):
        losses, dtypes = [], set()
        trainer = Trainer(
            _config(tmp_path / out, tiny_wordpiece_encoder_dir, precision=precision),
            _records(),
            progress=lambda step, total, loss: losses.append(loss),
        )
        query = trainer.model.encoder.encoder.layer[0].attention.self.query
        query.register_forward_hook(lambda module, args, output: dtypes.add(output.dtype))
        trainer.run()
        assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
        return losses, dtypes

    monkeypatch.setattr(training, "cpu_fast_kind", lambda: "bf16")
    fp32, fp32_dtypes = run("fp32", "a")
    bf16, bf16_dtypes = run("bf16", "b")
    assert fp32_dtypes == {torch.float32} and torch.bfloat16 in bf16_dtypes
    assert bf16 != fp32
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)

    monkeypatch.setattr(training, "cpu_fast_kind", lambda: "int8")
    with pytest.raises(ValueError, match="AVX-512-BF16"):
        Trainer(_config(tmp_path / "c", tiny_wordpiece_encoder_dir, precision="bf16"), _records())


def test_runs_of_several_epochs_go_through_epochs_whose_plans_differ_in_length(tmp_path, tiny_wordpiece_encoder_dir):
    # Each epoch samples other easy negatives, so its plan can be a batch longer or shorter
    # than epoch 0's; that once ended multi-epoch runs with an IndexError.
    records = _records() * 6
    config = _config(
        tmp_path, tiny_wordpiece_encoder_dir, max_steps=None, epochs=4.0, batch_tokens=120, checkpoint_every=50
    )
    trainer = Trainer(config, records)
    lengths = {len(trainer._plan(e)) for e in range(4)}
    steps = []
    trainer.progress = lambda step, total, loss: steps.append(step)
    trainer.run()
    assert steps == list(range(1, 4 * trainer.steps_per_epoch + 1))
    assert len(lengths) > 1, "the test needs epochs of different lengths"


def test_a_run_refuses_to_resume_from_a_checkpoint_of_another_config(tmp_path, tiny_wordpiece_encoder_dir):
    from ner_core.errors import TrainingError

    config = _config(tmp_path, tiny_wordpiece_encoder_dir)
    with pytest.raises(_Interrupted):
        Trainer(config, _records(), progress=_stop_at(3)).run()
    changed = config.model_copy(update={"learning_rate": 5e-2})
    with pytest.raises(TrainingError, match=r"another config \(learning_rate differ\)"):
        Trainer(changed, _records()).run()
    # Running longer is what resuming is for.
    longer = config.model_copy(update={"max_steps": 8})
    steps = []
    Trainer(longer, _records(), progress=lambda step, total, loss: steps.append(step)).run()
    assert steps[0] == 3 and steps[-1] == 8


def test_training_data_with_nothing_to_learn_is_an_error(tmp_path, tiny_wordpiece_encoder_dir):
    from ner_core.errors import TrainingError

    lowercase = [(["Anna", "lives", "in", "Rome"], ["B-per", "O", "O", "B-loc"])]
    with pytest.raises(TrainingError, match="nothing to learn"):
        Trainer(_config(tmp_path, tiny_wordpiece_encoder_dir), _records(lowercase))
    with pytest.raises(TrainingError, match="nothing to learn: 0 training texts"):
        Trainer(_config(tmp_path, tiny_wordpiece_encoder_dir), [])


def test_a_damaged_last_checkpoint_falls_back_to_the_one_before(tmp_path, tiny_wordpiece_encoder_dir):
    config = _config(tmp_path, tiny_wordpiece_encoder_dir, keep_checkpoints=3)
    with pytest.raises(_Interrupted):
        Trainer(config, _records(), progress=_stop_at(5)).run()
    checkpoints = tmp_path / "run" / "checkpoints"
    last = checkpoints / "step-0000004" / "trainable.safetensors"
    last.write_bytes(last.read_bytes()[:1000])  # a truncated file
    (checkpoints / ".tmp-step-0000006-123").mkdir()  # left by a run killed while writing
    steps = []
    Trainer(config, _records(), progress=lambda step, total, loss: steps.append(step)).run()
    assert steps == [3, 4, 5, 6]  # from step 2's checkpoint
    assert not list(checkpoints.glob(".tmp-step-*"))


def test_a_silver_sources_easy_negatives_weigh_less_in_the_loss(tmp_path, tiny_wordpiece_encoder_dir):
    import gzip

    import torch.nn.functional as F

    from ner_core.training import DataSource, read_sources

    path = tmp_path / "silver.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for tokens, tags in SENTENCES:
            f.write(json.dumps({"tokens": tokens, "ner_tags": tags, "lang": "en"}) + "\n")
    silver = read_sources([DataSource(uri=str(path), negative_weight=0.25)], seed=1)["silver"]
    assert {r.negative_weight for r in silver} == {0.25}
    assert {r.negative_weight for r in _records()} == {1.0}

    config = _config(tmp_path, tiny_wordpiece_encoder_dir, negative_rate=1.0)
    trainer = Trainer(config, silver)
    assert {w.negative_weight for w in trainer.windows} == {0.25}
    batch = [PlannedWindow(i, np.arange(w.input.n_spans)) for i, w in enumerate(trainer.windows)]
    with torch.no_grad():
        starts, ends, _ = trainer.encoder.encode([w.input for w in trainer.windows])
        sm = trainer.model
        logits = sm.classifier(torch.cat((starts, ends), dim=-1))
        labels = torch.from_numpy(np.concatenate([w.labels for w in trainer.windows]))
        per_span = F.cross_entropy(logits, labels, reduction="none")
        always = torch.from_numpy(np.concatenate([w.always for w in trainer.windows]))
        weight = torch.where(always, 1.0, 0.25)
        expected = (per_span * weight).sum() / weight.sum()
        assert float(trainer.loss(batch)) == pytest.approx(float(expected), rel=1e-5)
        assert float(trainer.loss(batch)) != pytest.approx(float(per_span.mean()), rel=1e-3)


def test_top_layers_train_in_full_beside_lora_and_travel_with_the_adapter(tmp_path, tiny_wordpiece_encoder_dir):
    from safetensors.torch import load_file

    from ner_core.adapters import ADAPTER_WEIGHTS, materialise_adapter

    plain = Trainer(_config(tmp_path / "plain", tiny_wordpiece_encoder_dir), _records()).run()
    trainer = Trainer(
        _config(tmp_path / "top", tiny_wordpiece_encoder_dir, train_top_layers=1, top_layers_learning_rate=1e-2),
        _records(),
    )
    top_index = trainer.model.encoder.config.num_hidden_layers - 1
    groups = {g["lr"]: len(g["params"]) for g in trainer.optimizer.param_groups}
    assert groups[1e-2] > 0  # the top layer's weights, at their own rate
    result = trainer.run()

    saved = load_file(str(result.adapter_dir / ADAPTER_WEIGHTS))
    # peft's LoRA format cannot hold a layer trained in full: no partial copy is written.
    assert (plain.adapter_dir / "peft").is_dir() and not (result.adapter_dir / "peft").exists()
    full = [k for k in saved if "lora_" not in k and "LayerNorm" not in k and ".layer." in k]
    assert full and all(f".layer.{top_index}." in k for k in full)
    assert not [k for k in load_file(str(plain.adapter_dir / ADAPTER_WEIGHTS)) if k in full]

    # The top layer's own weights moved from the encoder's; the layers below kept them.
    encoder = load_file(str(next(tiny_wordpiece_encoder_dir.glob("*.safetensors"))))
    below = [k for k in encoder if f".layer.{top_index - 1}.attention.self.query.weight" in k]
    query = [k for k in encoder if f".layer.{top_index}.attention.self.query.weight" in k]
    assert len(below) == len(query) == 1
    trained_query = next(
        v for k, v in saved.items() if f".layer.{top_index}.attention.self.query." in k and "original" in k
    )
    assert not torch.equal(trained_query, encoder[query[0]])
    assert not any(f".layer.{top_index - 1}." in k and "original" in k for k in saved)

    # The rebuilt checkpoint is the exported one, the full top layer included.
    rebuilt = load_file(str(materialise_adapter(result.adapter_dir, tmp_path / "rebuilt") / "model.safetensors"))
    exported = load_file(str(result.model_dir / "model.safetensors"))
    layer_keys = [k for k in exported if ".layer." in k]
    assert any(f".layer.{top_index}." in k for k in layer_keys)
    for key in layer_keys:
        torch.testing.assert_close(rebuilt[key], exported[key], msg=key)

    with pytest.raises(ValueError, match="needs method = 'lora'"):
        Trainer(_config(tmp_path / "full", tiny_wordpiece_encoder_dir, method="full", train_top_layers=1), _records())
