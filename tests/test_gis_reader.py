"""Reading GIS layers (GeoJSON, GeoPackage, Shapefile) into columns: files written here with
GDAL (pyogrio), read back with their values, CRS and feature ids, and bad files refused by name."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from geo.errors import BadInput
from importers.gis import read_layer

# Two communities in CGCS2000 / 3-degree Gauss-Kruger CM 117E (EPSG:4547), metres.
SQUARES = [box(500000, 4400000, 500100, 4400100), box(500100, 4400000, 500200, 4400100)]
FIELDS = {
    "code": np.array(["110105026001", "110105026002"], dtype=object),
    "name": np.array(["望京西园一区", "望京西园二区"], dtype=object),
    "levels": np.array([6, 30], dtype=np.int32),
    "height": np.array([18.5, np.nan]),
}
DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}


def write(
    path: Path,
    geoms: list[Any],
    fields: dict[str, np.ndarray] | None = None,
    *,
    crs: str = "EPSG:4547",
    **options: Any,
) -> Path:
    fields = FIELDS if fields is None else fields
    wkb = np.array([None if g is None else shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio.raw.write(
        path, wkb, list(fields.values()), list(fields), driver=DRIVERS[path.suffix], crs=crs,
        geometry_type="Polygon", **options,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_a_layer_reads_back_with_its_values_and_crs(tmp_path: Path, suffix: str) -> None:
    crs = "EPSG:4326" if suffix == ".geojson" else "EPSG:4547"  # GeoJSON is WGS-84 (RFC 7946)
    squares = SQUARES
    if crs == "EPSG:4326":
        squares = [box(116.47, 39.99, 116.48, 40.0), box(116.48, 39.99, 116.49, 40.0)]
    path = write(tmp_path / f"communities{suffix}", squares, crs=crs)
    layer = read_layer(path)
    assert (layer.layer, layer.crs, layer.geometry_type) == ("communities", crs, "Polygon")
    assert layer.names == ["code", "name", "levels", "height"] and len(layer) == 2
    assert layer.columns == {
        "code": ["110105026001", "110105026002"],
        "name": ["望京西园一区", "望京西园二区"],
        "levels": [6, 30],
        "height": [18.5, None],  # an empty cell is None, not NaN
    }
    assert all(shapely.from_wkb(w).equals(s) for w, s in zip(layer.wkb, squares, strict=True))
    first = 1 if suffix == ".gpkg" else 0  # the feature ids GIS software shows
    assert layer.where(1) == f"communities{suffix} feature {first + 1}"


def test_columns_are_chosen_by_name_any_case_and_a_missing_one_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "grids.shp", SQUARES)
    layer = read_layer(path, columns=["CODE", "levels"])
    assert layer.columns == {"CODE": ["110105026001", "110105026002"], "levels": [6, 30]}
    assert layer.names == ["code", "name", "levels", "height"]  # every field of the layer
    with pytest.raises(BadInput) as error:
        read_layer(path, columns=["code", "community_name"])
    assert error.value.argument == "community_name"
    assert "no field 'community_name' in grids.shp" in error.value.message
    assert "its fields: code, name, levels, height" in error.value.message


def test_zipped_shapefile_and_a_gbk_one_without_its_cpg(tmp_path: Path) -> None:
    write(tmp_path / "districts.shp", SQUARES)
    zipped = tmp_path / "districts.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for part in tmp_path.glob("districts.*"):
            if part != zipped:
                z.write(part, part.name)
    assert read_layer(zipped).columns["name"] == ["望京西园一区", "望京西园二区"]
    # A GIS office's Shapefile in GBK that lost its .cpg: name the encoding.
    gbk = write(tmp_path / "gbk.shp", SQUARES, encoding="GBK")
    gbk.with_suffix(".cpg").unlink(missing_ok=True)
    assert read_layer(gbk, encoding="GBK").columns["name"] == ["望京西园一区", "望京西园二区"]


def test_a_file_of_several_layers_needs_the_layer_named(tmp_path: Path) -> None:
    path = write(tmp_path / "areas.gpkg", SQUARES, layer="grids")
    one = {name: values[:1] for name, values in FIELDS.items()}
    write(path, SQUARES[:1], one, layer="communities", append=True)
    with pytest.raises(BadInput, match=r"areas\.gpkg has 2 layers \(grids, communities\)"):
        read_layer(path)
    assert len(read_layer(path, layer="communities")) == 1
    with pytest.raises(BadInput, match=r"no layer 'streets'; its layers: grids, communities"):
        read_layer(path, layer="streets")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_bad_geometries_come_through_as_they_are(tmp_path: Path) -> None:
    """NaN and infinite coordinates, a bow tie, no geometry: read, for the loader to judge."""
    nan = Polygon([(0, 0), (math.nan, 1), (1, 1), (0, 0)])
    inf = Polygon([(0, 0), (math.inf, 1), (1, 1), (0, 0)])
    bow_tie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    fields = {"n": np.array([1, 2, 3, 4])}
    path = write(tmp_path / "bad.gpkg", [nan, inf, bow_tie, None], fields, crs="EPSG:4326")
    layer = read_layer(path)
    assert layer.wkb[3] is None
    read_nan, read_inf, read_bow = (shapely.from_wkb(w) for w in layer.wkb[:3])
    assert math.isnan(shapely.get_coordinates(read_nan)[1][0])
    assert math.isinf(shapely.get_coordinates(read_inf)[1][0])
    assert read_bow.equals_exact(bow_tie, 0) and not read_bow.is_valid


def test_integers_with_empty_cells(tmp_path: Path) -> None:
    """GDAL hands an integer column with empty cells over as floats: ints again, or refused
    when a float may have rounded them (an 18-digit code stored as a number)."""
    fields = {"levels": np.array([6, 0, 3]), "code": np.array([110105026001001001, 2, 3])}
    mask = [np.array([False, True, False]), np.array([False, True, False])]
    points = [Point(0, 0)] * 3
    path = tmp_path / "points.gpkg"
    wkb = np.array([shapely.to_wkb(p) for p in points], dtype=object)
    pyogrio.raw.write(path, wkb, list(fields.values()), list(fields), field_mask=mask,
                      driver="GPKG", crs="EPSG:4326", geometry_type="Point")  # fmt: skip
    assert read_layer(path, columns=["levels"]).columns == {"levels": [6, None, 3]}
    with pytest.raises(BadInput, match=r"field 'code' holds integers too large to read exactly"):
        read_layer(path)


def test_unreadable_files_are_refused_with_gdals_reason(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nothere\.gpkg: no such file"):
        read_layer(tmp_path / "nothere.gpkg")
    good = write(tmp_path / "good.gpkg", SQUARES).read_bytes()
    (tmp_path / "cut.gpkg").write_bytes(good[: len(good) // 2])
    with pytest.raises(BadInput, match=r"cut\.gpkg: .*malformed"):
        read_layer(tmp_path / "cut.gpkg")
    (tmp_path / "cut.geojson").write_text('{"type": "FeatureCollection", "features": [{"ty')
    with pytest.raises(BadInput, match=r"cut\.geojson: Failed to read GeoJSON data"):
        read_layer(tmp_path / "cut.geojson")
    (tmp_path / "notes.txt").write_bytes(b"\x00\x01 not a map")
    with pytest.raises(BadInput, match=r"notes\.txt: .*not recognized as being in a supported"):
        read_layer(tmp_path / "notes.txt")
    (tmp_path / "table.csv").write_text("code,name\n110105,朝阳区\n")
    with pytest.raises(BadInput, match=r"table\.csv: no layer with geometries"):
        read_layer(tmp_path / "table.csv")
