"""Registers as tables: a CSV or Excel ``.xlsx`` file read into rows of canonical fields
(importers.headers), for the loader to validate and write. Nothing here touches the database.

Decisions a caller relies on:

- ``where`` names a row as a person finds it: ``cases.csv line 7`` (the first line of the
  record, as a text editor numbers lines; a record with line breaks inside quoted values spans
  more) or ``households.xlsx row 12`` (``households.xlsx sheet 2024 row 12`` when a sheet was
  chosen).
- ``values`` holds the canonical fields found, as stripped text; empty cells are absent (so
  ``values.get("lat")`` is None for a blank). Excel dates are ISO (``2024-04-16``, or
  ``2024-04-16T08:30:00`` when there is a time of day), numbers as Excel shows them (15
  significant digits, no ``.0``), booleans ``TRUE``/``FALSE``. CSV text is kept as written,
  less Excel's ``="0123"`` guard.
- What is wrong with one row is in ``values.problems`` (field or None, message): a formula
  without a saved value (openpyxl and other programs write formulas without computing them:
  the cell is left out and the row carries the problem; opening and saving the file in Excel
  or LibreOffice computes them), an Excel error value (``#N/A``), or values beyond the last
  column of a CSV. What is wrong with the file raises ``geo.errors.BadInput`` naming the file
  and the line or row: not readable, an unknown encoding, a line longer than ``MAX_LINE``
  characters or a value longer than ``FIELD_LIMIT`` (a quote left open), a bad mapping.
- Completely empty rows are skipped. The header is the first non-empty row (of the first ten)
  in which a header is recognised or mapped, else the first non-empty row, so a title row
  above the table (usual in Chinese registers) is passed over.
- Two headers spelling one field: the spelling listed first in importers.headers wins, the
  leftmost column on a tie; the other is in ``Table.shadowed``.
- Required columns are the caller's: ``Table.missing(REQUIRED[kind])`` lists what is missing,
  ``Table.require()`` raises. Rows missing a required value are for the loader to reject.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import BadInput
from importers.headers import FIELDS, KINDS, label, normalise, recognise

# The longest value and the longest physical line read from a CSV, in characters: longer means
# a quote left open or a file that is no table; refused before it is held in memory.
FIELD_LIMIT = 1 << 20
MAX_LINE = 4 * FIELD_LIMIT
HEADER_SEARCH = 10
DELIMITERS = (",", ";", "\t")

# The columns an import cannot do without, per kind; ``a|b+c`` means a, or both b and c.
# Cases keep rows without coordinates out one by one (the loader's job), but a file without
# coordinate columns is refused whole.
REQUIRED: dict[str, tuple[str, ...]] = {
    "households": ("building|lat+lon", "room"),
    "workers": ("code", "name", "role"),
    "merchants": ("code", "name", "lat", "lon"),
    "openings": ("merchant", "title", "shifts", "weekly_hours", "wage|monthly_wage", "headcount"),
    "cases": ("category", "lat", "lon"),
}

# fmt: off
_EXCEL_ERRORS = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A",
                           "#GETTING_DATA", "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!"))
# fmt: on
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s>/]")
_EXCEL_TEXT = re.compile(r'^="(.*)"$', re.S)
_LIST_SEPARATORS = re.compile(r"[;,、；，\s]+")


class Values(dict[str, str]):
    """A row's canonical fields as text, with ``problems``: (field or None, message) the
    reader found in this row, for the loader to reject it with."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[tuple[str | None, str]] = []


@dataclass
class Table:
    """A register's header as recognised; iterating reads the rows from the file again
    (streaming: a row at a time), as ``(where, values)``."""

    path: Path
    kind: str
    columns: dict[str, int]  # canonical field → position of its column (0 first)
    headers: list[str]  # the header row as written
    header_number: int  # its line (CSV) or row (Excel)
    unrecognised: list[str]  # headers that spell no field and are not mapped
    shadowed: dict[str, str]  # header → the field it spells but another header won
    encoding: str | None = None  # CSV only
    delimiter: str | None = None  # CSV only
    sheet: str | None = None  # Excel only: the sheet read
    _label: str = field(default="", repr=False)  # how rows are named: "x.csv line"

    @property
    def fields(self) -> list[str]:
        """The canonical fields found, in the order of importers.headers."""
        return [name for name in FIELDS[self.kind] if name in self.columns]

    def header_of(self, name: str) -> str:
        """The file's header read as a canonical field, for messages."""
        return self.headers[self.columns[name]]

    def missing(self, required: Iterable[str] | None = None) -> list[str]:
        """The requirements (``REQUIRED[kind]`` by default) that no column meets."""
        out = []
        for need in REQUIRED[self.kind] if required is None else required:
            options = [alt.split("+") for alt in need.split("|")]
            if not any(all(name in self.columns for name in alt) for alt in options):
                out.append(need)
        return out

    def require(self, required: Iterable[str] | None = None) -> None:
        """Raise BadInput naming the missing columns, their usual spellings, and the headers
        the file has, so a person can write the mapping."""
        missing = self.missing(required)
        if not missing:
            return
        wanted = []
        for need in missing:
            names = sorted({n for alt in need.split("|") for n in alt.split("+")})
            spellings = "; ".join(f"{n}: {', '.join(FIELDS[self.kind][n][:4])}" for n in names)
            wanted.append(f"{need.replace('|', ' or ')} ({spellings})")
        raise BadInput(
            self.path.name,
            f"no column for {'; '.join(wanted)}. Headers found: "
            f"{', '.join(h for h in self.headers if h) or 'none'}. "
            "Name the column with a mapping, e.g. --map lat=HEADER",
        )

    def __iter__(self) -> Iterator[tuple[str, Values]]:
        width = len(self.headers)
        for number, cells, formulas in _records(self):
            if number <= self.header_number:
                continue
            texts = [_text(cell) for cell in cells]
            if not any(texts):
                continue
            values = Values()
            for name, col in self.columns.items():
                text = texts[col] if col < len(texts) else ""
                if text in _EXCEL_ERRORS and formulas is not None:
                    values.problems.append((name, f"{_cell(col, number)} holds the error {text}"))
                elif text:
                    values[name] = text
                elif formulas is not None and col < len(formulas) and _is_formula(formulas[col]):
                    problem = (
                        f"{_cell(col, number)} is a formula ({formulas[col]}) without a saved "
                        "value: open and save the file in Excel or LibreOffice to compute it"
                    )
                    values.problems.append((name, problem))
            if formulas is None and any(texts[width:]):
                extra = sum(1 for text in texts[width:] if text)
                problem = (
                    f"{extra} value(s) beyond the {width} columns of the header: a delimiter "
                    "inside a value that is not quoted?"
                )
                values.problems.append((None, problem))
            yield f"{self._label} {number}", values


def read_table(
    path: Path,
    kind: str,
    *,
    mapping: Mapping[str, str] | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Table:
    """Read the header of a register and recognise its columns; the rows are read when the
    table is iterated. ``mapping`` (canonical field → header as in the file) overrides the
    spellings; ``encoding`` and ``delimiter`` override detection (CSV), ``sheet`` picks an
    Excel sheet by name (the first one otherwise)."""
    path = Path(path)
    if kind not in KINDS:
        raise BadInput("kind", f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(FIELDS[kind]))
    if unknown:
        problem = f"no field {', '.join(unknown)} in {kind}; the fields are "
        raise BadInput("mapping", problem + ", ".join(FIELDS[kind]))
    if not path.is_file():
        raise BadInput(str(path), "no such file")
    fmt = _format(path)
    table = Table(path, kind, {}, [], 0, [], {})
    if fmt == "xlsx":
        if encoding or delimiter:
            raise BadInput(path.name, "an encoding or a delimiter applies to CSV files only")
        table.sheet = _sheet_name(path, sheet)
        table._label = f"{path.name} row" if sheet is None else f"{path.name} sheet {sheet} row"
    else:
        if sheet is not None:
            raise BadInput(path.name, "a sheet applies to Excel files only: this is a text file")
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise BadInput("encoding", f"unknown encoding {encoding!r}") from None
        table.encoding = encoding or _detect_encoding(path)
        if delimiter is not None and delimiter not in (*DELIMITERS, "|"):
            raise BadInput("delimiter", f"{delimiter!r}: one of , ; | or a tab")
        table.delimiter = delimiter or _sniff_delimiter(path, table.encoding)
        table._label = f"{path.name} line"
    table.header_number, table.headers = _find_header(table, mapping)
    _match_columns(table, mapping)
    return table


def _format(path: Path) -> str:
    with path.open("rb") as f:
        magic = f.read(8)
    if magic.startswith(b"PK\x03\x04"):
        return "xlsx"
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        problem = "an Excel 97-2003 (.xls) workbook: save it as .xlsx (or CSV) and import that"
        raise BadInput(path.name, problem)
    return "csv"


def _find_header(table: Table, mapping: Mapping[str, str]) -> tuple[int, list[str]]:
    """The first non-empty row of the first ten in which a header is recognised or mapped,
    else the first non-empty row."""
    mapped = {normalise(h) for h in mapping.values()}
    first: tuple[int, list[str]] | None = None
    seen = 0
    records = _records(table, formulas=False)
    try:
        for number, cells, _ in records:
            texts = [_text(cell).lstrip("\ufeff").strip() for cell in cells]
            if not any(texts):
                continue
            while texts and not texts[-1]:
                texts.pop()
            if first is None:
                first = (number, texts)
            if any(recognise(table.kind, t) or normalise(t) in mapped for t in texts if t):
                return number, texts
            seen += 1
            if seen == HEADER_SEARCH:
                break
    finally:
        records.close()
    if first is None:
        raise BadInput(table.path.name, "empty: no header row")
    return first


def _match_columns(table: Table, mapping: Mapping[str, str]) -> None:
    headers = table.headers
    taken: set[int] = set()
    for name, wanted in mapping.items():
        exact = [i for i, h in enumerate(headers) if h == wanted.strip()]
        loose = [i for i, h in enumerate(headers) if h and normalise(h) == normalise(wanted)]
        found = exact or loose
        if not found:
            columns = ", ".join(h for h in headers if h)
            problem = f"mapping {name}={wanted}: no such column; the columns are {columns}"
            raise BadInput(table.path.name, problem)
        if len(found) > 1:
            where = ", ".join(f"{_column_letter(i)} ({headers[i]!r})" for i in found)
            problem = f"mapping {name}={wanted}: ambiguous, it names columns {where}"
            raise BadInput(table.path.name, problem)
        table.columns[name] = found[0]
        taken.add(found[0])
    best: dict[str, tuple[int, int]] = {}
    spelled: dict[int, str] = {}
    for col, header in enumerate(headers):
        if col in taken or not header:
            continue
        hit = recognise(table.kind, header)
        if hit is None:
            table.unrecognised.append(header)
            continue
        name, rank = hit
        spelled[col] = name
        if name not in mapping and (name not in best or (rank, col) < best[name]):
            best[name] = (rank, col)
    for name, (_, col) in best.items():
        table.columns[name] = col
    for col, name in spelled.items():
        if table.columns.get(name) != col:
            table.shadowed[headers[col]] = name
    table.columns = {n: table.columns[n] for n in FIELDS[table.kind] if n in table.columns}


def _records(
    table: Table, *, formulas: bool = True
) -> Iterator[tuple[int, Sequence[Any], Sequence[Any] | None]]:
    """(line or row number, cells, the row's formulas: None for CSV, () when not looked for
    or the sheet has none)."""
    if table.sheet is not None:
        return _xlsx_records(table.path, table.sheet, formulas)
    assert table.encoding is not None and table.delimiter is not None
    return _csv_records(table.path, table.encoding, table.delimiter)


# --- CSV ------------------------------------------------------------------------------------


def _detect_encoding(path: Path) -> str:
    """UTF-16 by its byte-order mark (Excel's "Unicode text"); else UTF-8 (a BOM or not) when
    the whole file decodes strictly, read a chunk at a time; else GB18030, the superset of
    GBK that Chinese Excel writes its "CSV" in."""
    with path.open("rb") as f:
        if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return "utf-16"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def _lines(f: io.TextIOBase, name: str) -> Iterator[str]:
    """The physical lines, none held longer than MAX_LINE characters: csv would read a
    100 MB line whole before its field limit applies."""
    number = 0
    while True:
        number += 1
        try:
            line = f.readline(MAX_LINE)
        except UnicodeDecodeError as exc:
            problem = (
                f"not readable as {getattr(f, 'encoding', '?')} ({exc.reason}): "
                "give the file's encoding, e.g. --encoding gb18030"
            )
            raise BadInput(f"{name} line {number}", problem) from None
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            problem = f"longer than {MAX_LINE:,} characters: not a table, or a quote left open"
            raise BadInput(f"{name} line {number}", problem)
        yield line


def _sniff_delimiter(path: Path, encoding: str) -> str:
    """The most frequent of , ; and tab outside quotes on the first line that has any."""
    with path.open(encoding=encoding, newline="") as f:
        for count, line in enumerate(_lines(f, path.name)):
            bare = re.sub(r'"[^"]*"?', "", line)
            counts = {d: bare.count(d) for d in DELIMITERS}
            best = max(DELIMITERS, key=lambda d: counts[d])
            if counts[best] or count >= 20:
                return best if counts[best] else ","
    return ","


def _csv_records(
    path: Path, encoding: str, delimiter: str
) -> Iterator[tuple[int, list[str], None]]:
    """(first line of the record, its values) in file order; blank lines come as []."""
    csv.field_size_limit(FIELD_LIMIT)  # process-wide, and the same for every table
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(_lines(f, path.name), delimiter=delimiter)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem = str(exc)
                if "field larger than field limit" in problem:
                    problem = f"a value longer than {FIELD_LIMIT:,} characters: a quote left open?"
                where = f"{path.name} line {reader.line_num}"
                raise BadInput(where, f"{problem} (in the record from line {start})") from None
            yield start, [_csv_text(v) for v in row], None


def _csv_text(value: str) -> str:
    """Excel's guard for text that looks like a number, ``="0123"``, taken off."""
    if value.startswith('="'):
        m = _EXCEL_TEXT.match(value.strip())
        if m:
            return m.group(1)
    return value


# --- Excel ----------------------------------------------------------------------------------


def _open_workbook(path: Path, data_only: bool) -> Any:
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=data_only)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors alike
        problem = f"not a readable Excel .xlsx workbook ({type(exc).__name__}: {exc})"
        raise BadInput(path.name, problem) from None


def _sheet_name(path: Path, sheet: str | None) -> str:
    wb = _open_workbook(path, data_only=True)
    try:
        names = wb.sheetnames
    finally:
        wb.close()
    if not names:
        raise BadInput(path.name, "the workbook has no sheet")
    if sheet is None:
        return names[0]
    if sheet not in names:
        raise BadInput(path.name, f"no sheet {sheet!r}; the sheets are {', '.join(names)}")
    return sheet


def _xlsx_records(
    path: Path, sheet: str, formulas: bool
) -> Iterator[tuple[int, Sequence[Any], Sequence[Any]]]:
    """(row number, cached values, formulas) a row at a time: the sheet read twice in step,
    as openpyxl gives either the values Excel saved or the formulas, not both."""
    values_wb = _open_workbook(path, data_only=True)
    formulas_wb = None
    try:
        values_ws = values_wb[sheet]
        # The dimension a program wrote may be wrong: read every row there is.
        values_ws.reset_dimensions()
        values = values_ws.iter_rows(min_row=1, values_only=True)
        if not formulas or not _has_formulas(path, getattr(values_ws, "_worksheet_path", None)):
            for number, cells in enumerate(values, start=1):
                yield number, cells, ()
            return
        formulas_wb = _open_workbook(path, data_only=False)
        formulas_ws = formulas_wb[sheet]
        formulas_ws.reset_dimensions()
        saved = formulas_ws.iter_rows(min_row=1, values_only=True)
        for number, (cells, row) in enumerate(zip(values, saved, strict=True), start=1):
            yield number, cells, row
    finally:
        values_wb.close()
        if formulas_wb is not None:
            formulas_wb.close()


def _has_formulas(path: Path, member: str | None) -> bool:
    """Whether the sheet's XML holds a formula element (``<f>``, ``<x:f …>``): scanned as
    bytes, a fraction of what parsing it a second time costs. True when in doubt."""
    if member is None:
        return True
    tail = b""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as xml:
            while chunk := xml.read(1 << 20):
                if _FORMULA_TAG.search(tail + chunk):
                    return True
                tail = chunk[-16:]
    except (KeyError, OSError, zipfile.BadZipFile):
        return True
    return False


def _is_formula(value: Any) -> bool:
    """A formula as openpyxl reads it when not asked for values."""
    if isinstance(value, str):
        return value.startswith("=")
    return type(value).__name__ in ("ArrayFormula", "DataTableFormula")


def _column_letter(col: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(col + 1)


def _cell(col: int, number: int) -> str:
    return f"{_column_letter(col)}{number}"


def _text(value: Any) -> str:
    """A cell as the text a person reads: dates ISO, numbers without a needless ``.0``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.microsecond:
            value = (value + dt.timedelta(microseconds=500_000)).replace(microsecond=0)
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        shown = float(f"{value:.15g}")  # Excel shows 15 significant digits
        return str(int(shown)) if shown.is_integer() else repr(shown)
    return str(value).strip()


# --- Mappings and lists ---------------------------------------------------------------------


def parse_mapping(items: Iterable[str], *, source: str = "--map") -> dict[str, str]:
    """``field=header`` items (``--map lat=Y_COORD``) as a mapping; a field given twice is an
    error, not the last one silently."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, header = item.partition("=")
        name, header = name.strip(), header.strip()
        if not sep or not name or not header:
            raise BadInput(source, f"{item!r}: write field=header, e.g. lat=Y_COORD")
        if name in mapping and mapping[name] != header:
            problem = f"{name} mapped twice, to {mapping[name]!r} and to {header!r}"
            raise BadInput(source, problem)
        mapping[name] = header
    return mapping


def load_mapping(path: Path) -> dict[str, str]:
    """A mapping file: one ``field = header`` a line (UTF-8, a BOM or not); blank lines and
    lines starting with ``#`` are skipped. The header is the text after the first ``=``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(str(path), f"mapping file not readable ({exc})") from None
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path.name} line {number}"
        ((name, header),) = parse_mapping([line], source=where).items()
        if name in mapping:
            problem = f"{name} mapped twice, to {mapping[name]!r} and to {header!r}"
            raise BadInput(where, problem)
        mapping[name] = header
    return mapping


def split_list(text: str | None) -> list[str]:
    """Several codes in one cell (a worker's grids, an opening's skills), separated by
    ; , 、 (half- or full-width) or spaces."""
    return [part for part in _LIST_SEPARATORS.split(text or "") if part]


# --- Writing --------------------------------------------------------------------------------


def write_xlsx(
    path: Path,
    kind: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    chinese: bool = True,
    fields: Sequence[str] | None = None,
) -> int:
    """Write rows of canonical fields as an Excel register that reads back with no options:
    headers are each field's first Chinese (or English) spelling. Columns are ``fields``, or
    the fields of the first row in canonical order. Dates and naive datetimes are Excel dates;
    aware datetimes ISO text with their offset (Excel has no time zones); lists are joined
    with ``;``; text is never a formula. Streams; returns the number of rows written."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(kind)
    rows = iter(rows)
    first = next(rows, None)
    if fields is None:
        fields = [name for name in FIELDS[kind] if first is not None and name in first]
    unknown = [name for name in fields if name not in FIELDS[kind]]
    if unknown:
        raise ValueError(f"no field {', '.join(unknown)} in {kind}")
    ws.append([label(kind, name, chinese=chinese) for name in fields])

    def cell(value: Any) -> Any:
        if isinstance(value, list | tuple | set | frozenset):
            value = ";".join(str(v) for v in value)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.isoformat()
        if isinstance(value, str):
            out = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value))
            out.data_type = "s"  # a text starting with "=" stays text
            return out
        return value

    count = 0
    try:
        for row in itertools.chain((first,), rows) if first is not None else ():
            extra = set(row) - set(FIELDS[kind])
            if extra:
                raise ValueError(f"no field {', '.join(sorted(extra))} in {kind}")
            ws.append([cell(row.get(name)) for name in fields])
            count += 1
    except BaseException:
        ws.close()  # its temporary file; nothing is written to path
        raise
    wb.save(path)
    return count


__all__ = [
    "FIELD_LIMIT",
    "MAX_LINE",
    "REQUIRED",
    "Table",
    "Values",
    "load_mapping",
    "parse_mapping",
    "read_table",
    "split_list",
    "write_xlsx",
]
