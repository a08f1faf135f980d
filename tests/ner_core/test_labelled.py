"""Reading labelled data: sentences become text with character spans, documents are checked."""

from __future__ import annotations

import gzip
import json

import pytest

from ner_core.labelled import LabelledDataError, read_labelled, sentence_to_text


def test_sentence_tokens_are_joined_with_spaces_and_tags_become_character_spans():
    text, offsets, entities = sentence_to_text(
        ["Angela", "Merkel", "visited", "New", "York", "."], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    )
    assert text == "Angela Merkel visited New York ."
    assert [text[a:b] for a, b in offsets] == ["Angela", "Merkel", "visited", "New", "York", "."]
    assert [(text[a:b], label) for a, b, label in entities] == [("Angela Merkel", "PER"), ("New York", "LOC")]


def test_cjk_tokens_are_joined_without_spaces_but_latin_neighbours_keep_theirs():
    text, _, entities = sentence_to_text(["北京", "是", "中国", "的", "iPhone", "App"], ["B-LOC", "O", "B-LOC", "O", "B-MISC", "I-MISC"])
    assert text == "北京是中国的 iPhone App"
    assert [(text[a:b], label) for a, b, label in entities] == [("北京", "LOC"), ("中国", "LOC"), ("iPhone App", "MISC")]


def test_an_i_tag_without_its_b_starts_no_entity_as_in_seqeval_strict():
    _, _, entities = sentence_to_text(["a", "b", "c"], ["I-PER", "O", "B-ORG"])
    assert entities == [(4, 5, "ORG")]


def _write(path, records, *, gz: bool):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def test_reads_sentences_and_documents_from_plain_and_gzip_files(tmp_path):
    sentences = _write(tmp_path / "s.jsonl.gz", [
        {"id": "s1", "lang": "en", "tokens": ["Paris", "!"], "ner_tags": ["B-LOC", "O"]},
    ], gz=True)
    documents = _write(tmp_path / "d.jsonl", [
        {"text": "Ich wohne in Berlin.", "entities": [{"start": 13, "end": 19, "label": "LOC"}]},
        {"text": "Rom", "spans": [[0, 3, "LOC"]]},
    ], gz=False)
    (s1,) = read_labelled(sentences)
    assert (s1.id, s1.lang, s1.text, s1.entities, s1.tokens) == ("s1", "en", "Paris !", ((0, 5, "LOC"),), ((0, 5), (6, 7)))
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
