"""Reading labelled data: sentences become text with character spans, documents are checked."""

from __future__ import annotations

import gzip
import json

import pytest

from ner_core.labelled import (
    LabelledDataError,
    LabelledText,
    as_written,
    join_texts,
    read_labelled,
    sentence_to_text,
    split_lines,
    trim_entity_quotes,
)


def test_sentence_tokens_are_joined_with_spaces_and_tags_become_character_spans():
    text, offsets, entities = sentence_to_text(
        ["Angela", "Merkel", "visited", "New", "York", "."], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    )
    assert text == "Angela Merkel visited New York ."
    assert [text[a:b] for a, b in offsets] == ["Angela", "Merkel", "visited", "New", "York", "."]
    assert [(text[a:b], label) for a, b, label in entities] == [("Angela Merkel", "PER"), ("New York", "LOC")]


def test_cjk_tokens_are_joined_without_spaces_but_latin_neighbours_keep_theirs():
    text, _, entities = sentence_to_text(
        ["北京", "是", "中国", "的", "iPhone", "App"], ["B-LOC", "O", "B-LOC", "O", "B-MISC", "I-MISC"]
    )
    assert text == "北京是中国的iPhone App"
    assert [(text[a:b], label) for a, b, label in entities] == [
        ("北京", "LOC"),
        ("中国", "LOC"),
        ("iPhone App", "MISC"),
    ]


@pytest.mark.parametrize(
    "tokens, text",
    [
        # Chinese puts no space around its punctuation, digits or hyphens.
        (["他", "2004", "年", "，", "在", "北京", "。"], "他2004年，在北京。"),
        (["乘坐", "图", "-", "154", "飞机"], "乘坐图-154飞机"),
        (["就读", "于", "Secondary", "School", "，", "后", "离开"], "就读于Secondary School，后离开"),
        # An English sentence quoting a Chinese name keeps its spaces.
        (["I", "met", "王", "明", "in", "Beijing", "."], "I met 王明 in Beijing ."),
    ],
)
def test_a_sentence_is_joined_as_its_script_is_written(tokens, text):
    assert sentence_to_text(tokens, ["O"] * len(tokens))[0] == text


def _sentence(tokens: str, tags: str, lang: str) -> LabelledText:
    text, offsets, entities = sentence_to_text(tokens.split(), tags.split())
    return LabelledText(id="s", text=text, entities=tuple(entities), lang=lang, tokens=offsets)


@pytest.mark.parametrize(
    "lang, tokens, written",
    [
        (
            "ru",
            "Акции « Газпром » выросли на 3 % , сообщает « Интерфакс » ( Москва ) .",
            "Акции «Газпром» выросли на 3%, сообщает «Интерфакс» (Москва).",
        ),
        (
            "de",
            'Die Bank ( Frankfurt ) und die „ Süddeutsche Zeitung “ sagen : " Ja " .',
            'Die Bank (Frankfurt) und die „Süddeutsche Zeitung“ sagen: "Ja".',
        ),
        ("en", "He said \" I do n't know \" , and “ she ” ca n't .", "He said \"I don't know\", and “she” can't."),
        ("es", '¿ Dónde está la " ONU " ? Madrid , 23 may ( EFE ) .', '¿Dónde está la "ONU"? Madrid, 23 may (EFE).'),
        # French typography keeps the space inside guillemets and before ; : ! ?
        ("fr", "Il a dit : « Bonjour » à l' ONU !", "Il a dit : « Bonjour » à l'ONU !"),
        (
            "it",
            "il presidente dell' Europa , Mario Rossi , ha detto ...",
            "il presidente dell'Europa, Mario Rossi, ha detto...",
        ),
    ],
)
def test_as_written_puts_punctuation_against_its_neighbours_as_running_text_does(lang, tokens, written):
    record = _sentence(tokens, " ".join(["O"] * len(tokens.split())), lang)
    got = as_written(record)
    assert got.text == written
    assert [got.text[a:b] for a, b in got.tokens] == tokens.split()


def test_as_written_keeps_every_entity_on_its_tokens():
    record = _sentence(
        "Акции компании « Газпром » , сообщает агентство Интерфакс ( Москва ) .",
        "O O O B-ORG O O O O B-ORG O B-LOC O O",
        "ru",
    )
    got = as_written(record)
    assert got.text == "Акции компании «Газпром», сообщает агентство Интерфакс (Москва)."
    assert [(got.text[s:e], label) for s, e, label in got.entities] == [
        ("Газпром", "ORG"),
        ("Интерфакс", "ORG"),
        ("Москва", "LOC"),
    ]


def test_as_written_leaves_chinese_documents_and_entities_inside_tokens_alone():
    chinese = _sentence("他 在 北京 。", "O O B-LOC O", "zh")
    assert as_written(chinese) is chinese
    document = LabelledText(id="d", text="In Rome .", entities=((3, 7, "LOC"),), lang="en")
    assert as_written(document) is document
    inside = LabelledText(
        id="i", text="( Rome )", entities=((2, 4, "LOC"),), lang="en", tokens=((0, 1), (2, 6), (7, 8))
    )
    assert as_written(inside) is inside


def test_trim_entity_quotes_takes_quotes_off_entity_edges_only():
    record = _sentence("акции « Газпром » и « Роснефти » , « »", "O B-ORG I-ORG I-ORG O O B-ORG O O B-ORG I-ORG", "ru")
    got = trim_entity_quotes(record)
    assert [(got.text[s:e], label) for s, e, label in got.entities] == [("Газпром", "ORG"), ("Роснефти", "ORG")]
    assert got.text == record.text and got.tokens == record.tokens
    clean = _sentence("акции Газпрома", "O B-ORG", "ru")
    assert trim_entity_quotes(clean) is clean


def test_split_lines_gives_back_the_sentences_join_texts_joined():
    sentences = [
        LabelledText(id="a", text="Angela Merkel spoke .", entities=((0, 13, "PER"),)),
        LabelledText(id="b", text="", entities=()),
        LabelledText(id="c", text="Paris and Rome", entities=((0, 5, "LOC"), (10, 14, "LOC"))),
    ]
    doc = join_texts(sentences)
    lines = split_lines(doc)
    assert [(line.text, line.entities) for line in lines] == [(s.text, s.entities) for s in sentences]
    assert [line.id for line in lines] == [f"{doc.id}:line{n}" for n in range(3)]


def test_split_lines_refuses_an_entity_across_a_line_break():
    doc = LabelledText(id="d", text="New\nYork", entities=((0, 8, "LOC"),))
    with pytest.raises(ValueError, match="spans a line break"):
        split_lines(doc)


def test_an_i_tag_without_its_b_starts_no_entity_as_in_seqeval_strict():
    _, _, entities = sentence_to_text(["a", "b", "c"], ["I-PER", "O", "B-ORG"])
    assert entities == [(4, 5, "ORG")]


def _write(path, records, *, gz: bool):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def test_reads_sentences_and_documents_from_plain_and_gzip_files(tmp_path):
    sentences = _write(
        tmp_path / "s.jsonl.gz",
        [
            {"id": "s1", "lang": "en", "tokens": ["Paris", "!"], "ner_tags": ["B-LOC", "O"]},
        ],
        gz=True,
    )
    documents = _write(
        tmp_path / "d.jsonl",
        [
            {"text": "Ich wohne in Berlin.", "entities": [{"start": 13, "end": 19, "label": "LOC"}]},
            {"text": "Rom", "spans": [[0, 3, "LOC"]]},
        ],
        gz=False,
    )
    (s1,) = read_labelled(sentences)
    assert (s1.id, s1.lang, s1.text, s1.entities, s1.tokens) == (
        "s1",
        "en",
        "Paris !",
        ((0, 5, "LOC"),),
        ((0, 5), (6, 7)),
    )
    d1, d2 = read_labelled(documents)
    assert d1.id == "d:1" and d1.text[13:19] == "Berlin" and d1.tokens is None
    assert d2.entities == ((0, 3, "LOC"),)
    assert len(list(read_labelled(documents, limit=1))) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ('{"words": []}', "needs 'tokens'"),
        ('{"text": "abc", "entities": [{"start": 1, "end": 9, "label": "X"}]}', "outside a text"),
        ('{"tokens": ["a"], "ner_tags": ["O", "O"]}', "1 tokens but 2 tags"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n' + line + "\n")
    with pytest.raises(LabelledDataError, match=message) as info:
        list(read_labelled(str(path)))
    assert f"{path}:2" in str(info.value)


def test_expand_uri_raises_for_a_missing_plain_path_and_an_empty_glob(tmp_path):
    from ner_core.labelled import expand_uri

    (tmp_path / "a.jsonl").write_text("")
    assert [path for path, _ in expand_uri(str(tmp_path / "a.jsonl"))] == [str(tmp_path / "a.jsonl")]
    with pytest.raises(FileNotFoundError, match="no labelled file matches"):
        expand_uri(str(tmp_path / "b.jsonl"))
    with pytest.raises(FileNotFoundError, match="no labelled file matches"):
        expand_uri(str(tmp_path / "*.gz"))


@pytest.mark.parametrize(
    "record, message",
    [
        ({"tokens": ["Anna", "X"], "ner_tags": ["PER", "O"]}, "ner_tags must be IOB2"),
        ({"text": "Anna", "entities": [{"start": 0, "end": 4}]}, "an entity is"),
        ({"text": "Anna", "entities": [{"start": "0", "end": 4, "label": "PER"}]}, "offsets must be integers"),
        ({"text": "Anna", "entities": [[0.5, 4, "PER"]]}, "offsets must be integers"),
        ({"text": "Anna", "entities": [[0, 4]]}, "an entity is"),
    ],
)
def test_malformed_records_are_errors_naming_the_file_and_line(tmp_path, record, message):
    from ner_core.labelled import LabelledDataError, read_labelled

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "fine", "entities": []}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(LabelledDataError, match=rf"bad\.jsonl:2: .*{message}"):
        list(read_labelled(str(path)))
