"""The raw load step: rows into a temporary staging table by COPY (one round trip, streamed),
where SQL then validates, places and merges them into the model.

Rows are encoded a batch at a time, column by column: a column of geometries goes to EWKB in
one shapely call, a column of plain text or numbers is checked or converted in one pass, and
only other values (booleans, lists, dates, text with tabs or backslashes) go through `text`
one by one. The lines of a batch are joined and encoded at once."""

from __future__ import annotations

import gc
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

CHUNK = 1 << 20
BATCH = 10_000  # rows encoded at a time
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = ("\\", "\t", "\n", "\r")
_NUMBERS = {int, float}
NULL = "\\N"
# A little-endian EWKB type's last byte (its flags) with the SRID flag set, then SRID 4326.
_SRID = [bytes([flags | 0x20]) + (4326).to_bytes(4, "little") for flags in range(256)]


def text(value: Any) -> str:
    """One value in COPY's text format: NULL as \\N, geometries as EWKB hex in WGS-84."""
    if value is None:
        return NULL
    if isinstance(value, BaseGeometry):
        return shapely.to_wkb(shapely.set_srid(value, 4326), hex=True, include_srid=True)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list | tuple):
        return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                              for v in value).translate(_ESCAPES) + "}"  # fmt: skip
    return str(value).translate(_ESCAPES)


def column(values: Sequence[Any]) -> list[str]:
    """A column of values in COPY's text format, as `text` gives them one by one."""
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return [NULL] * len(values)
    if all(issubclass(k, BaseGeometry) for k in kinds):
        return _geometries(values)
    if kinds == {str}:
        joined = "".join(filter(None, values))  # every character of the column, once
        if not any(c in joined for c in _SPECIAL):
            return [NULL if v is None else v for v in values] if nulls else list(values)
    elif kinds <= _NUMBERS:  # exactly int and float: not bool, not an enum
        return [NULL if v is None else str(v) for v in values] if nulls else list(map(str, values))
    return list(map(text, values))


def _geometries(values: Sequence[Any]) -> list[str]:
    """EWKB hex in WGS-84, NULL for None: what `text` gives, for a whole column in one shapely
    call. The SRID goes in by hand rather than by `shapely.set_srid` (which copies every
    geometry): after the byte order and the type, little-endian, with the type's SRID flag.
    Binary WKB and `bytes.hex` are several times faster than shapely's hex writer."""
    geoms = np.empty(len(values), dtype=object)
    geoms[:] = values
    wkbs = shapely.to_wkb(geoms, byte_order=1)
    return [NULL if w is None else (w[:4] + _SRID[w[4]] + w[5:]).hex() for w in wkbs]


def lines(rows: Iterable[Sequence[Any]], batch: int = BATCH) -> Iterator[bytes]:
    """COPY's text format, a batch of rows per piece: the values and the tabs and newlines
    between them laid out in one list, column by column, and joined once."""
    it = iter(rows)
    while chunk := list(islice(it, batch)):
        columns = [column(c) for c in zip(*chunk, strict=True)]
        step = 2 * len(columns)
        parts = ["\t"] * (step * len(chunk))
        for i, values in enumerate(columns):
            parts[2 * i :: step] = values
        parts[step - 1 :: step] = ["\n"] * len(chunk)
        yield "".join(parts).encode()


class _Lines(io.RawIOBase):
    """A file psycopg2's copy_expert reads from, fed by a row iterator (never all in memory)."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self._pieces = lines(rows)
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of the current batch (fewer at its end), b"" at the end."""
        if not self._buffer:
            self._buffer = memoryview(next(self._pieces, b""))
        want = CHUNK if size is None or size < 0 else size
        data, self._buffer = self._buffer[:want], self._buffer[want:]
        return bytes(data)


@contextmanager
def _without_gc() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. Encoding rows allocates containers (the rows
    themselves, when they come from a generator) by the hundred thousand, and each of Python's
    full collections on the way walks every object of the import (its features, rows and
    geometries): about half the encoding time of 100,000 buildings. Nothing here makes cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def stage(cur: Any, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> int:
    """Create the temporary ``table (columns)`` (dropped at commit) and COPY ``rows`` into it."""
    cur.execute(f"CREATE TEMP TABLE {table} ({columns}) ON COMMIT DROP")
    with _without_gc():
        cur.copy_expert(f"COPY {table} FROM STDIN", _Lines(rows), size=CHUNK)
    cur.execute(f"ANALYZE {table}")
    return cur.rowcount
