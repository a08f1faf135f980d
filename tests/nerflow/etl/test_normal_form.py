"""The two implementations of the text normal form agree, and the map points at the source."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nerflow.etl.normal_form import normalise_text, normalise_with_map

# Characters every rule touches: line breaks of each kind, controls, tabs, Zs spaces,
# combining marks and Hangul jamo that compose, plus ordinary letters.
_ALPHABET = st.sampled_from(
    list("ab Zé\t\n\r\x0b\x0c\x1c\x85\u2028\u2029\x00\x07\x7f\u00a0\u2003\u3000\u0301\u0308\u00ad\u200bЖ日")
    + ["e\u0301", "\u1100\u1161", "\r\n"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_python_rules_equal_the_polars_expression(raw: str) -> None:
    text, index = normalise_with_map(raw)
    assert text == normalise_text(raw)
    assert len(index) == len(text)
    assert all(0 <= i < len(raw) for i in index.tolist())
    assert list(index) == sorted(index)


def test_map_points_at_the_source_character() -> None:
    raw = "  Anna\u00a0\u00a0Berg\r\n\r\n\r\nlives in  Köln\x07."
    text, index = normalise_with_map(raw)
    assert text == "Anna Berg\n\nlives in Köln."
    for k, ch in enumerate(text):
        if not ch.isspace():
            assert raw[index[k]] == ch
    assert raw[index[text.index("Köln")]] == "K"


def test_composed_character_maps_to_its_base() -> None:
    text, index = normalise_with_map("Cafe\u0301 bar")
    assert text == "Café bar"
    assert index.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]


def test_normal_form_is_idempotent() -> None:
    once = normalise_text(" a \t b\n\n\n\nc\u0301 ")
    assert normalise_text(once) == once == "a\tb\n\nć"
