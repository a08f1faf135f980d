"""benchmarks/table_cells.py: tables of the gold names, laid out as the XLSX reader writes cells."""

from __future__ import annotations

import pytest

from ner_core.labelled import LabelledText


@pytest.fixture
def table_cells(benchmark_module):
    return benchmark_module("table_cells")


def test_each_distinct_name_is_a_cell_with_its_gold_label(table_cells):
    records = [
        LabelledText(id="a", text="Anna  Berg lives in Oslo.", entities=((0, 10, "PER"), (20, 24, "LOC")), lang="en"),
        LabelledText(
            id="b", text="IBM hired Anna Berg in Oslo.", entities=((0, 3, "ORG"), (10, 19, "PER"), (23, 27, "LOC"))
        ),
        LabelledText(id="c", text="Die Bundesliga und Bayern.", entities=((4, 14, "MISC"), (19, 25, "ORG"))),
    ]
    tables = table_cells.tables(records, rows=1)

    assert [text for text, _ in tables] == ["Anna Berg\nOslo\nIBM", "Bayern"]
    assert [[(text[a:b], label) for a, b, label in gold] for text, gold in tables] == [
        [("Anna Berg", "PER"), ("Oslo", "LOC"), ("IBM", "ORG")],
        [("Bayern", "ORG")],
    ]
    [(text, _)] = table_cells.tables(records, rows=2)
    assert text == "Anna Berg\nOslo\nIBM\n\nBayern"  # rows apart by a blank line


def test_a_table_set_as_a_pdf_reads_back_with_its_names_as_gold(table_cells):
    text = "Anna Berg\nOslo\nIBM\n\nBayern"
    gold = [(0, 9, "PER"), (10, 14, "LOC"), (15, 18, "ORG"), (20, 26, "ORG")]
    [(parts_text, parts_gold, parts_breaks)], missing = table_cells.pdf_tables([(text, gold)], cut_rows=True)
    [(lines_text, lines_gold, lines_breaks)], _ = table_cells.pdf_tables([(text, gold)], cut_rows=False)

    assert missing == 0
    assert [(parts_text[a:b], label) for a, b, label in parts_gold] == [(text[a:b], label) for a, b, label in gold]
    assert [(lines_text[a:b], label) for a, b, label in lines_gold] == [(text[a:b], label) for a, b, label in gold]
    assert lines_text.splitlines() == ["Anna Berg Oslo IBM", "Bayern"] and lines_breaks == ()
    # Cut at its gaps, the first row's cells are parts read apart; the second row is one line.
    assert parts_text.splitlines() == ["Anna Berg", "Oslo", "IBM", "Bayern"]
    assert parts_breaks == (parts_text.index("Oslo"), parts_text.index("IBM"), parts_text.index("Bayern"))
