import numpy as np
import pytest

from ner_core.windowing import (
    TokenizedDoc,
    WindowingConfig,
    cut_windows,
    enumerate_spans,
    spaced_punctuation,
    tokenize_document,
)


def _doc(
    word_tokens: list[int], sentence_starts: set[int] = frozenset(), breaks: set[int] = frozenset()
) -> TokenizedDoc:
    """A synthetic document whose i-th word has ``word_tokens[i]`` tokens; ``breaks`` are the
    words right after a break."""
    ends = np.cumsum(word_tokens)
    starts = ends - np.asarray(word_tokens)
    n = len(word_tokens)
    sent = np.zeros(n, dtype=bool)
    sent[list(sentence_starts | {0})] = True
    return TokenizedDoc(
        doc_id="d",
        text="",
        input_ids=np.zeros(int(ends[-1]), dtype=np.int64),
        word_token_start=starts,
        word_token_end=ends,
        word_char_start=np.arange(n),
        word_char_end=np.arange(n) + 1,
        sentence_start=sent,
        after_break=np.isin(np.arange(n), list(breaks)),
    )


def test_windowing_config_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap_tokens must satisfy"):
        WindowingConfig(window_tokens=64, overlap_tokens=32)
    with pytest.raises(ValueError, match="window_tokens must be at least 8"):
        WindowingConfig(window_tokens=4, overlap_tokens=0)


@pytest.mark.parametrize("overlap", [0, 5, 20])
def test_windows_fit_cover_and_overlap(overlap):
    rng = np.random.default_rng(0)
    doc = _doc(rng.integers(1, 6, size=400).tolist(), sentence_starts=set(range(0, 400, 17)))
    windows = cut_windows(doc, WindowingConfig(window_tokens=64, overlap_tokens=overlap), n_special=2)
    assert windows[0].word_start == 0 and windows[0].at_doc_start
    assert windows[-1].word_end == doc.n_words and windows[-1].at_doc_end
    covered = np.zeros(doc.n_words, dtype=bool)
    for prev, w in zip(windows, windows[1:]):
        assert w.word_start > prev.word_start, "windows always move forward"
        assert w.word_start <= prev.word_end, "no word falls between two windows"
        shared = doc.word_token_end[prev.word_end - 1] - doc.word_token_start[w.word_start]
        assert shared >= min(overlap, 1) - 1
    for w in windows:
        assert w.n_tokens <= 62
        covered[w.word_start : w.word_end] = True
    assert covered.all()


def test_windows_prefer_sentence_boundaries():
    doc = _doc([1] * 200, sentence_starts={40, 95, 150})
    windows = cut_windows(doc, WindowingConfig(window_tokens=66, overlap_tokens=0), n_special=2)
    # 64 tokens fit; the window ends at the sentence start at word 40 (more than half full).
    assert windows[0].word_end == 40
    assert windows[1].word_start == 40


@pytest.mark.parametrize("overlap", [0, 5, 20])
def test_no_window_reaches_across_a_break(overlap):
    rng = np.random.default_rng(1)
    breaks = {3, 4, 90, 91, 250}  # one-word runs, a run longer than a window, runs in between
    doc = _doc(rng.integers(1, 6, size=400).tolist(), sentence_starts=set(range(0, 400, 17)), breaks=breaks)
    windows = cut_windows(doc, WindowingConfig(window_tokens=64, overlap_tokens=overlap), n_special=2)
    bounds = [0, *sorted(breaks), 400]
    for w in windows:
        run = max(b for b in bounds if b <= w.word_start)
        end = min(b for b in bounds if b > w.word_start)
        assert w.word_end <= end, "a window holds the words of one run"
        assert w.at_doc_start == (w.word_start == run) and w.at_doc_end == (w.word_end == end)
    covered = np.zeros(doc.n_words, dtype=int)
    for w in windows:
        covered[w.word_start : w.word_end] += 1
    assert covered.all()
    # Each run is cut as if it were a document of its own.
    for start, end in zip(bounds[:-1], bounds[1:]):
        sizes = (doc.word_token_end - doc.word_token_start)[start:end].tolist()
        alone = _doc(sizes, sentence_starts={i - start for i in range(start, end) if doc.sentence_start[i]})
        cut_alone = cut_windows(alone, WindowingConfig(window_tokens=64, overlap_tokens=overlap), n_special=2)
        in_run = [w for w in windows if start <= w.word_start < end]
        assert [(w.word_start - start, w.word_end - start) for w in in_run] == [
            (w.word_start, w.word_end) for w in cut_alone
        ]


def test_breaks_mark_the_first_word_at_or_after_each_offset(tiny_model):
    text = "Name\nMaren Holloway\n\nPort Aldren"
    doc = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=100, breaks=(0, 5, 19, 20, 999))
    firsts = [text[doc.word_char_start[i] : doc.word_char_end[i]] for i in np.flatnonzero(doc.after_break)]
    assert firsts == ["Maren", "Port"]  # 0 is before the first word, 999 past the last
    plain = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=100)
    assert not plain.after_break.any()


def test_enumerate_spans_matches_span_marker_order():
    from span_marker.tokenizer import SpanMarkerTokenizer

    starts, ends = enumerate_spans(7, 3)
    expected = list(SpanMarkerTokenizer.get_all_valid_spans(None, 7, 3))
    assert list(zip(starts.tolist(), ends.tolist())) == expected
    assert enumerate_spans(0, 3)[0].size == 0


def test_long_word_is_split_not_dropped(tiny_model):
    tok = tiny_model.tokenizer
    # One "word" of many tokens; under 100 characters, where WordPiece would give up and
    # emit a single [UNK] (as mBERT does).
    blob = "QmFzZTY0xK9" * 9
    assert len(tok(blob, add_special_tokens=False)["input_ids"]) > 8
    text = f"Start {blob} end ."
    doc = tokenize_document(tok, "d", text, max_word_tokens=8)
    assert doc.n_split_words == 1
    assert (doc.word_token_end - doc.word_token_start).max() <= 8
    # The pieces cover the blob's characters contiguously, nothing lost.
    blob_start = text.index(blob)
    pieces = [
        (s, e) for s, e in zip(doc.word_char_start, doc.word_char_end) if blob_start <= s < blob_start + len(blob)
    ]
    assert pieces[0][0] == blob_start and pieces[-1][1] == blob_start + len(blob)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))


def test_tokenize_document_word_ranges_have_no_outer_whitespace(tiny_model):
    text = "  Hello   wörld,\n\tnew  line 東京タワー 🙂 end  "
    doc = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=60)
    for s, e in zip(doc.word_char_start.tolist(), doc.word_char_end.tolist()):
        assert 0 <= s <= e <= len(text)
        if e > s:
            assert not text[s].isspace() and not text[e - 1].isspace()
    assert doc.sentence_start[0]


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000"])
def test_empty_documents_have_no_words(tiny_model, text):
    doc = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=60)
    assert doc.n_words == 0 and doc.n_tokens == 0
    assert cut_windows(doc, WindowingConfig(window_tokens=64, overlap_tokens=8), n_special=2) == []


def test_special_token_text_is_plain_text(tiny_model):
    tok = tiny_model.tokenizer
    doc = tokenize_document(tok, "d", "a <start> b [SEP] </s> c", max_word_tokens=60)
    specials = {tok.convert_tokens_to_ids(t) for t in ("<start>", "<end>")} | set(tok.all_special_ids)
    assert not specials & set(doc.input_ids.tolist())


@pytest.mark.parametrize("text", ["Muhammad \ufdfa said", "a \u00a8 b", "x \ufdfa\ufdfa y \ufdfb z", "\ufdfa"])
def test_words_never_share_characters(tiny_model_pair, text):
    # NFKC turns U+FDFA into four words and U+00A8 into a space and a mark, all with the
    # offsets of the one character: they must stay one word, or two entities could share it.
    for model in tiny_model_pair:
        doc = tokenize_document(model.tokenizer, "d", text, max_word_tokens=60)
        ranges = [(s, e) for s, e in zip(doc.word_char_start.tolist(), doc.word_char_end.tolist()) if e > s]
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), ranges
        for ligature in ("\ufdfa", "\ufdfb"):
            for at in (i for i, ch in enumerate(text) if ch == ligature):
                assert sum(s <= at < e for s, e in ranges) == 1


def test_pieces_of_a_split_word_never_share_characters(tiny_model_pair):
    # Cut every word into one-token pieces: a character that became several tokens (U+FDFA
    # here) is kept by the first piece only.
    for model in tiny_model_pair:
        text = "ab\ufdfacd \ufdfa"
        doc = tokenize_document(model.tokenizer, "d", text, max_word_tokens=1)
        ranges = [(s, e) for s, e in zip(doc.word_char_start.tolist(), doc.word_char_end.tolist()) if e > s]
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), ranges
        assert "".join(text[s:e] for s, e in ranges) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        # Full-width terminators end a sentence with no space after them.
        ("北京很大。上海也很大！东京呢？", ["北", "上", "东"]),
        ("他说：「走吧。」然后走了。", ["他", "然"]),
        # A Latin full stop needs a space after it: "3.5" and "e.g.x" are not sentence ends.
        ("It costs 3.5 euros. Then e.g.x stops.", ["It", "Then"]),
        ('He said "Go." Then he left.', ["He", "Then"]),
    ],
)
def test_sentence_starts_follow_terminators_with_and_without_spaces(tiny_model, text, starts):
    doc = tokenize_document(tiny_model.tokenizer, "d", text, max_word_tokens=60)
    found = [
        text[s:e]
        for s, e, first in zip(doc.word_char_start.tolist(), doc.word_char_end.tolist(), doc.sentence_start.tolist())
        if first
    ]
    assert [w[: len(x)] for w, x in zip(found, starts)] == starts and len(found) == len(starts)


@pytest.mark.parametrize(
    ("text", "spaced"),
    [
        ("Акции «Газпром» выросли, сообщает «Интерфакс».", "Акции « Газпром » выросли , сообщает « Интерфакс » ."),
        ('He met "Smith" (of AT&T) in Paris.', 'He met " Smith " ( of AT&T ) in Paris .'),
        # What tokenised corpora keep in one token stays in one.
        ("Нью-Йорк, 3.5 km/h, 90% and U.S. e.g. Mr. Comey", "Нью-Йорк , 3.5 km/h , 90% and U.S. e.g. Mr. Comey"),
        ("am 20. Januar m.in. l'ONU aan- en verkoop", "am 20. Januar m.in. l'ONU aan- en verkoop"),
        ("see http://www.x.org/a, mail me@x.org.", "see http://www.x.org/a, mail me@x.org."),
        ("日本（东京）的“GCHQ”。", "日本（东京）的“GCHQ”。"),
        ("in den USA.", "in den USA ."),
        ("already « spaced » .", "already « spaced » ."),
    ],
)
def test_spaced_punctuation_sets_marks_apart_from_words(text, spaced):
    assert spaced_punctuation(text)[0] == spaced


@pytest.mark.parametrize("text", ["«Газпром», (Москва).", 'x"y" z', "a.«b»!?", "(((x)))"])
def test_spaced_punctuation_maps_offsets_back_to_the_original(text):
    spaced, to_original = spaced_punctuation(text)
    assert spaced != text
    for k, ch in enumerate(spaced):
        start, end = to_original(np.array([[k, k + 1]]))[0]
        assert text[start:end] == ("" if ch == " " and end == start else ch)
    assert to_original(np.array([[0, len(spaced)]])).tolist() == [[0, len(text)]]


def test_spaced_punctuation_keeps_words_and_offsets_of_the_original(tiny_model_pair):
    # The encoder reads "« Газпром » ," but every word keeps its own characters: the same
    # non-empty words as reading the text as it is, with other token ids.
    text = "Акции компании «Газпром» выросли, сообщает агентство «Интерфакс» (Москва)."
    for model in tiny_model_pair:
        docs = [
            tokenize_document(model.tokenizer, "d", text, max_word_tokens=60, space_punctuation=flag)
            for flag in (False, True)
        ]
        words = [[(s, e) for s, e in zip(d.word_char_start.tolist(), d.word_char_end.tolist()) if e > s] for d in docs]
        assert words[0] == words[1]
        assert [text[s:e] for s, e in words[1]][2:5] == ["«", "Газпром", "»"]
        assert docs[1].sentence_start.tolist().count(True) == 1
