"""Reading the user's own files: bytes, encodings, separators, headers, quoting; every problem one line naming the
file and line. Shared by the series and text readers and by `gru-lab predict`.

Delimited text goes through Python's csv module rather than pandas so that each row keeps the line it starts
on, which every message names (a quoted field may span lines; blank lines are skipped but still counted).
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_lab.errors import DataError

SEPARATORS = (",", ";", "\t", "|")  # what a sniffed separator may be
TAB_SUFFIXES = (".tsv", ".tab")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class Table:
    """A delimited file's rows: every field a string, each row with the file line it starts on (or its
    1-based row number, for Parquet: `unit` says which)."""

    path: Path
    columns: list[str]  # header names, or "0", "1", ... without a header
    rows: list[list[str]]
    lines: list[int]
    unit: str = "line"
    separator: str | None = None  # of a delimited file

    def where(self, i: int) -> str:
        """'file:line 7' (or 'file: row 7') for row i."""
        return f"{self.path}:{self.lines[i]}" if self.unit == "line" else f"{self.path}: row {self.lines[i]}"

    def column_index(self, column: str | int, named_by: str) -> int:
        """The position of a column; a DataError names the file and the header. named_by ends the message: who
        asked for the column ("'data.targets' names it")."""
        if isinstance(column, int):
            if column >= len(self.columns):
                raise DataError(f"{self.path}: no column at position {column}: the file has {len(self.columns)} "
                                f"column(s) (positions 0 to {len(self.columns) - 1}); {named_by}.")
            return column
        if column not in self.columns:
            shown = ", ".join(repr(c) for c in self.columns[:20]) + (", ..." if len(self.columns) > 20 else "")
            hint = " A file without a header row needs data.header: false." if "'data." in named_by else ""
            raise DataError(f"{self.path}:1: no column {column!r} in the header ({shown}); {named_by}.{hint}")
        return self.columns.index(column)


def read_bytes(path: str | Path, key: str) -> bytes:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: '{key}' names a file that does not exist.")
    if path.is_dir():
        raise DataError(f"{path}: '{key}' is a folder; expected a file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read '{key}' ({exc.__class__.__name__}: {exc.strerror}).") from None


def decode(data: bytes, encoding: str, where: Path | str) -> str:
    """Text from bytes; undecodable bytes name the line they sit on. A UTF-8 byte-order mark is dropped."""
    if codecs.lookup(encoding).name == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise DataError(f"{where}:{line}: bytes that are not {encoding} ({data[exc.start:exc.start + 4]!r}...); "
                        "set data.encoding to the file's encoding (latin-1, cp1252, utf-16, ...).") from None


def separator_for(path: Path, text: str, separator: str | None) -> str:
    """The given separator; else tab for .tsv/.tab; else the candidate the header line holds most (quoted parts
    skipped); else csv.Sniffer's guess on a sample; else a comma."""
    if separator is not None:
        return separator
    if path.suffix.lower() in TAB_SUFFIXES:
        return "\t"
    first = next((line for line in text[:1 << 16].splitlines() if line.strip()), "")
    unquoted = "".join(first.split('"')[0::2])
    counts = {s: unquoted.count(s) for s in SEPARATORS}
    best = max(counts.values())
    if best and list(counts.values()).count(best) == 1:
        return max(counts, key=counts.get)
    try:
        return csv.Sniffer().sniff(text[:1 << 16], delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        return ","


def read_delimited(path: str | Path, key: str, separator: str | None, header: bool, encoding: str) -> Table:
    """Every row of a CSV/TSV file as strings, with its line; the same number of fields on every row."""
    path = Path(path).expanduser()
    text = decode(read_bytes(path, key), encoding, path)
    sep = separator_for(path, text, separator)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"', doublequote=True, strict=False)
    rows, lines, columns = [], [], None
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line: skipped, but the lines after it keep their numbers
            if columns is None:
                columns = [f.strip() for f in fields] if header else [str(i) for i in range(len(fields))]
                if header:
                    continue
            if len(fields) != len(columns):
                first = "header has" if header else "first row has"
                raise DataError(f"{path}:{line}: {len(fields)} field(s) where the {first} {len(columns)} (separator "
                                f"{sep!r}); quote fields that hold the separator, or set data.separator.")
            rows.append(fields)
            lines.append(line)
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not readable as delimited text ({exc}).") from None
    if columns is None:
        raise DataError(f"{path}: '{key}' is empty; expected {'a header and ' if header else ''}rows of data.")
    return Table(path, columns, rows, lines, separator=sep)


def read_parquet(path: str | Path, key: str) -> Table:
    """A Parquet file as the same Table of strings (row numbers instead of lines); needs pyarrow."""
    path = Path(path).expanduser()
    read_bytes(path, key)  # the same messages for a missing or unreadable file
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'gru-lab[parquet]'.") from None
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise DataError(f"{path}: not a readable Parquet file ({exc.__class__.__name__}: {exc}).") from None
    rows = [["" if _empty(v) else str(v) for v in row] for row in frame.itertuples(index=False)]
    return Table(path, [str(c) for c in frame.columns], rows, list(range(1, len(rows) + 1)), unit="row")


def read_table(path: str | Path, key: str, separator: str | None, header: bool, encoding: str) -> Table:
    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet(path, key)
    return read_delimited(path, key, separator, header, encoding)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
