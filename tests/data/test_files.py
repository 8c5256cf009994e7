"""Reading the user's delimited files: separators, quoting, headers, encodings, line numbers in every message."""

from __future__ import annotations

import pytest

from gru_lab.data.files import read_delimited, read_table, separator_for
from gru_lab.errors import DataError


@pytest.mark.parametrize("name,text,expected", [
    ("a.csv", "x,y\n1,2\n", ","),
    ("a.csv", "x;y;z\n1,5;2;3\n", ";"),
    ("a.txt", "x|y\n1|2\n", "|"),
    ("a.tsv", "x,y\tz\n", "\t"),  # the suffix decides
    ("a.csv", '"a, b, c";x\n"d, e";y\n', ";"),  # separators inside quotes do not count
])
def test_separator_for(tmp_path, name, text, expected):
    assert separator_for(tmp_path / name, text, None) == expected
    assert separator_for(tmp_path / name, text, "#") == "#"  # data.separator always wins


def test_quoted_fields_keep_separators_quotes_and_line_breaks(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"one, two ""three""\nfour",pos\n\nplain,neg\n', encoding="utf-8")
    table = read_delimited(path, "data.path", None, True, "utf-8")
    assert table.columns == ["text", "label"]
    assert table.rows == [['one, two "three"\nfour', "pos"], ["plain", "neg"]]
    assert table.lines == [2, 5]  # the quoted row starts on line 2; the blank line 4 still counts


def test_without_header_columns_are_positions(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\t1\nb\t2\n")
    table = read_delimited(path, "data.path", None, False, "utf-8")
    assert table.columns == ["0", "1"] and table.rows == [["a", "1"], ["b", "2"]] and table.lines == [1, 2]
    assert table.column_index(1, "x") == 1
    with pytest.raises(DataError, match=r"no column at position 2: the file has 2 column\(s\)"):
        table.column_index(2, "'data.label_column' names it")


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\nx,1\n".encode("utf-8-sig"))
    assert read_delimited(path, "data.path", None, True, "utf-8").columns == ["text", "label"]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252"])
def test_other_encodings_read_when_named(tmp_path, encoding):
    path = tmp_path / "t.csv"
    path.write_text("text;label\ncafé crème;à\n", encoding=encoding)
    table = read_delimited(path, "data.path", None, True, encoding)
    assert table.rows == [["café crème", "à"]]


def test_undecodable_bytes_name_their_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\nfine,1\n".encode() + "caf\xe9,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"t\.csv:3: bytes that are not utf-8 .*set data.encoding"):
        read_delimited(path, "data.path", None, True, "utf-8")


def test_a_row_with_too_many_fields_names_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\na,1\nb,c,1\n")
    with pytest.raises(DataError, match=r"t\.csv:3: 3 field\(s\) where the header has 2"):
        read_delimited(path, "data.path", None, True, "utf-8")


@pytest.mark.parametrize("content,fragment", [(None, "does not exist"), ("", "is empty")])
def test_missing_or_empty_file(tmp_path, content, fragment):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        read_delimited(path, "data.path", None, True, "utf-8")


def test_unknown_column_lists_the_header_and_hints_at_header_false(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("great film,pos\n")
    table = read_delimited(path, "data.path", None, True, "utf-8")
    with pytest.raises(DataError, match=r"t\.csv:1: no column 'text' in the header \('great film', 'pos'\); "
                                        r"'data.text_column' names it\. .*data.header: false"):
        table.column_index("text", "'data.text_column' names it")


def test_parquet_reads_as_the_same_table(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow", reason="pyarrow (gru-lab[parquet]) reads Parquet")
    path = tmp_path / "s.parquet"
    pd.DataFrame({"t": [1, 2, 3], "y": [0.5, None, 1.5]}).to_parquet(path)
    table = read_table(path, "data.path", None, True, "utf-8")
    assert table.columns == ["t", "y"] and table.rows == [["1", "0.5"], ["2", ""], ["3", "1.5"]]
    assert table.where(1) == f"{path}: row 2"
