"""One layer of a GIS file (GeoJSON, GeoPackage, Shapefile, a zipped Shapefile, anything GDAL
reads) as columns, for the loader to validate and bulk-copy: pyogrio's raw reader hands over
WKB and numpy arrays in one call, with no row-by-row Python and no pandas.

Geometries come as they are in the file (its CRS, NaN coordinates, self-intersections and all):
the loader converts, validates and repairs them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
from pyogrio.errors import DataLayerError, DataSourceError

from geo.errors import BadInput

INTEGER_TYPES = ("OFTInteger", "OFTInteger64")
EXACT = 2**53  # the largest integer a float64 (an integer column with empty cells) holds exactly


@dataclass
class Layer:
    """`wkb[i]` and `columns[name][i]` are feature i (None: no geometry, an empty cell);
    `columns` holds the fields asked for, by the names asked for, `names` every attribute field
    of the layer; `crs` is "EPSG:4547" when GDAL can tell, else the file's WKT, None if the file
    has none; `fids` the feature ids GIS software shows (0-based for a Shapefile, 1-based for a
    GeoPackage)."""

    path: Path
    layer: str
    geometry_type: str | None
    crs: str | None
    names: list[str]
    wkb: list[bytes | None]
    fids: list[int]
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.wkb)

    def where(self, i: int) -> str:
        """Feature i as a person finds it: ``districts.gpkg feature 12``."""
        return f"{self.path.name} feature {self.fids[i]}"


def read_layer(
    path: Path,
    *,
    layer: str | None = None,
    columns: list[str] | None = None,
    encoding: str | None = None,
) -> Layer:
    """Read `layer` (needed only when the file holds several spatial layers) with the fields
    `columns` (all when None; a field's case need not match, a Shapefile's DBF upper-cases them).
    `encoding` overrides the file's text encoding (a Shapefile from a Chinese GIS office with no
    .cpg is often "GBK"). Raises BadInput naming the file, the layer or the field."""
    if not path.exists():
        raise BadInput("FILE", f"{path}: no such file")
    name = _layer(path, layer)
    try:
        info = pyogrio.read_info(path, layer=name, encoding=encoding)
        names = [str(n) for n in info["fields"]]
        wanted = names if columns is None else [_field(path, name, names, c) for c in columns]
        meta, fids, wkb, data = pyogrio.raw.read(
            path, layer=name, columns=wanted, encoding=encoding, return_fids=True,
            datetime_as_string=True,  # ISO text, offsets kept
        )  # fmt: skip
    except (DataSourceError, DataLayerError) as exc:
        raise BadInput("FILE", f"{path}: {_message(exc)}") from None
    unknown = [""] * len(data)  # an older pyogrio tells no OGR types: int columns may be floats
    types = zip(
        data, meta.get("ogr_types", unknown), meta.get("ogr_subtypes", unknown), strict=True
    )
    by_field = dict(zip(meta["fields"], types, strict=True))
    out = {}
    for asked, actual in zip(names if columns is None else columns, wanted, strict=True):
        values, ogr_type, subtype = by_field[actual]
        out[asked] = _column(path, name, asked, values, ogr_type, subtype)
    n = len(fids)
    return Layer(
        path=path,
        layer=name,
        geometry_type=meta["geometry_type"],
        crs=meta["crs"],
        names=names,
        wkb=wkb.tolist() if wkb is not None else [None] * n,
        fids=fids.tolist(),
        columns=out,
    )


def _layer(path: Path, layer: str | None) -> str:
    """The layer to read: the one asked for, or the file's only spatial layer."""
    try:
        layers = [(str(n), g) for n, g in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError) as exc:
        raise BadInput("FILE", f"{path}: {_message(exc)}") from None
    names = [n for n, _ in layers]
    spatial = [n for n, geometry in layers if geometry]
    if layer is not None:
        if layer not in names:
            raise BadInput("LAYER", f"{path} has no layer {layer!r}; its layers: {_list(names)}")
        if layer not in spatial:
            raise BadInput("LAYER", f"{path}: layer {layer!r} has no geometries")
        return layer
    if not spatial:
        raise BadInput("FILE", f"{path}: no layer with geometries (layers: {_list(names)})")
    if len(spatial) > 1:
        raise BadInput(
            "LAYER", f"{path} has {len(spatial)} layers ({_list(spatial)}): name the one to read"
        )
    return spatial[0]


def _field(path: Path, layer: str, names: list[str], asked: str) -> str:
    if asked in names:
        return asked
    folded = [n for n in names if n.casefold() == asked.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise BadInput(
        asked, f"no field {asked!r} in {path.name} layer {layer!r}; its fields: {_list(names)}"
    )


def _column(
    path: Path, layer: str, asked: str, values: np.ndarray, ogr_type: str, subtype: str
) -> list[Any]:
    """Python values, None for empty cells. An integer or boolean field with empty cells comes
    as floats (NaN for empty): back to ints or bools, refused when that may have rounded them
    (a code of 18 digits stored as a number)."""
    if values.dtype.kind == "f":
        floats = values.tolist()
        if ogr_type not in INTEGER_TYPES:
            return [None if math.isnan(v) else v for v in floats]
        if subtype == "OFSTBoolean":
            return [None if math.isnan(v) else bool(v) for v in floats]
        if np.nanmax(np.abs(values), initial=0) >= EXACT:
            raise BadInput(
                asked, f"{path.name} layer {layer!r}: field {asked!r} holds integers too large"
                " to read exactly when some cells are empty: store them as text"
            )  # fmt: skip
        return [None if math.isnan(v) else int(v) for v in floats]
    return values.tolist()


def _message(exc: Exception) -> str:
    """GDAL's message, less the path it repeats."""
    return str(exc).strip() or type(exc).__name__


def _list(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
