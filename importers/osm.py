"""Buildings, merchants, streets and administrative boundaries read from an OpenStreetMap file
(``.osm.pbf``, ``.osm``, also gzip/bzip2-compressed XML) as `Feature`s for the loader.

Streaming: features come out while the file is read; what is kept in memory is the node
locations (libosmium's cache) and the multipolygon relations waiting for their ways.

The reader counts in the `Summary`, per kind:
- ``read``: features handed out plus those it rejected (``rejected`` is a part of ``read``);
- ``incomplete``: ways with nodes missing from the file and relations with ways missing (cut at
  the extract's edge): skipped, not errors. ``read + incomplete`` is every object of the kind;
- ``rejected``, with a Problem: a building outline that does not close, a multipolygon whose rings
  do not assemble.
Shops with no name are common in OpenStreetMap and of no use as merchants (nobody can be sent
to them): they are counted as ``incomplete`` too, with a warning, not refused — a real extract
would otherwise never import without ``--skip-invalid``.
The loader counts the rest (inserted, updated, …) and decides whether boundary codes are valid.
Geometries are WGS-84 WKB as drawn in OpenStreetMap, not validated: the loader repairs them.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import osmium
import shapely
from shapely.errors import GEOSException

from geo.errors import BadInput
from importers.records import Feature
from importers.summary import Summary

OSM_KINDS = ("buildings", "merchants", "streets", "boundaries")

# Merchants: objects with one of these keys, the first key that names a business giving the
# category ("shop=supermarket"). shop=*, office=* and craft=* are businesses unless closed or
# (offices) public bodies; amenity, tourism and leisure only for the values below.
MERCHANT_KEYS = ("shop", "amenity", "office", "craft", "tourism", "leisure")
BUSINESS_AMENITIES = frozenset(
    {
        # eating and drinking
        "restaurant", "cafe", "fast_food", "bar", "pub", "biergarten", "food_court", "ice_cream",
        # money
        "bank", "bureau_de_change", "money_transfer", "payment_centre",
        # health
        "pharmacy", "clinic", "dentist", "doctors", "veterinary",
        # entertainment
        "cinema", "theatre", "nightclub", "casino", "gambling", "internet_cafe", "karaoke_box",
        "events_venue",
        # services
        "car_wash", "car_rental", "fuel", "vehicle_inspection", "driving_school",
        "language_school", "music_school", "training", "coworking_space", "marketplace",
        "animal_boarding", "childcare",
    }
)  # fmt: skip
BUSINESS_TOURISM = frozenset({"hotel", "motel", "hostel", "guest_house", "apartment"})
BUSINESS_LEISURE = frozenset(
    {"fitness_centre", "sauna", "bowling_alley", "amusement_arcade", "escape_game"}
)
PUBLIC_OFFICES = frozenset({"government", "diplomatic", "political_party", "religion"})
CLOSED = frozenset({"no", "vacant", "disused", "closed", "abandoned"})

# Streets: every highway=* way except roads that are not (or no longer) there.
NOT_BUILT = frozenset(
    {"proposed", "planned", "abandoned", "razed", "demolished", "dismantled", "disused", "no"}
)

# Boundaries: the first of these tags gives the code. China's division codes (the Statistics
# Bureau's first: the national statistical tables the loader checks against), then plain ref.
CODE_TAGS = ("ref:admin:CN:nbs", "ref:admin:CN", "ref:admin:CN:mca", "ref")

# Building tags that do not parse are dropped with a warning, not refused (they are optional).
ODD = {"building:levels": "a number of levels from 1 to 200", "height": "a height in metres"}

AREA_RELATIONS = frozenset({"multipolygon", "boundary"})  # what libosmium assembles
AREA_KEYS = ("building", "boundary", *MERCHANT_KEYS)
PROGRESS_EVERY = 1000

Progress = Callable[[int], None]


def read_osm(
    path: Path,
    summary: Summary,
    *,
    kinds: Collection[str] = OSM_KINDS,
    progress: Progress | None = None,
) -> Iterator[Feature]:
    """The file's features of `kinds`, in file order (nodes, ways, then relations' areas).
    `progress`, if given, is called with the number of objects handled so far (features,
    rejected and incomplete ones) every thousand and at the end. Raises BadInput naming the file
    when it is missing or not readable OpenStreetMap data (truncated, XML with entities, …)."""
    unknown = set(kinds) - set(OSM_KINDS)
    if unknown:
        raise ValueError(f"not a kind of OpenStreetMap feature: {sorted(unknown)}")
    source = _source(path)  # a missing or foreign file fails here, not at the first feature
    return _features(path, source, _Reader(path.name, summary, frozenset(kinds), progress))


def _features(path: Path, source: osmium.io.File, reader: _Reader) -> Iterator[Feature]:
    try:
        yield from reader.read(source)
    except (RuntimeError, OSError) as exc:  # libosmium: truncated, damaged, XML entities …
        raise BadInput("FILE", f"{path}: not a readable OpenStreetMap file ({exc})") from None
    reader.finish()


def merchant_category(tags: Any) -> str | None:
    """``key=value`` of the first tag naming a business, or None (a bench, a vacant shop)."""
    for key in MERCHANT_KEYS:
        value = tags.get(key)
        if not value:
            continue
        values = {v.strip() for v in value.split(";")}
        if key == "amenity":
            business = bool(values & BUSINESS_AMENITIES)
        elif key == "tourism":
            business = bool(values & BUSINESS_TOURISM)
        elif key == "leisure":
            business = bool(values & BUSINESS_LEISURE)
        elif key == "office":
            business = not values <= CLOSED | PUBLIC_OFFICES
        else:
            business = not values <= CLOSED
        if business:
            return f"{key}={value}"
    return None


def is_building(tags: Any) -> bool:
    return tags.get("building", "no") != "no"


def is_street(tags: Any) -> bool:
    highway = tags.get("highway")
    return bool(highway) and highway not in NOT_BUILT


def is_boundary(tags: Any) -> bool:
    return tags.get("boundary") == "administrative"


def boundary_code(tags: Any) -> tuple[str | None, str | None]:
    """(code, the tag it came from), or (None, None)."""
    for key in CODE_TAGS:
        value = (tags.get(key) or "").strip()
        if value:
            return value, key
    return None, None


def parse_levels(value: str | None) -> int | None:
    """building:levels as a whole number 1..200; halves round up ("2.5": a floor and an attic
    are three floors to visit). None when absent or not a number in range."""
    if not value:
        return None
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    levels = math.floor(number + 0.5)
    return levels if 1 <= levels <= 200 else None


_HEIGHT = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(m|metres|meters|ft|')?\s*$", re.IGNORECASE)


def parse_height(value: str | None) -> float | None:
    """height in metres ("12", "12.5 m", "40 ft"), or None."""
    match = _HEIGHT.match(value or "")
    if not match:
        return None
    metres = float(match.group(1).replace(",", "."))
    if (match.group(2) or "").lower() in ("ft", "'"):
        metres *= 0.3048
    return round(metres, 2) if metres > 0 else None


_CJK = re.compile(r"[\u3400-\u9fff]")


def compose_address(tags: Any) -> str | None:
    """addr:full, or the addr:* parts: Chinese order with no spaces for a Chinese address
    ("北京市朝阳区望京街10号"), else "street housenumber, postcode city". None when there is
    neither a street (or place) nor a house number: a city alone does not find a door."""
    full = (tags.get("addr:full") or "").strip()
    if full:
        return full
    part = {
        key: (tags.get(f"addr:{key}") or "").strip()
        for key in ("province", "city", "district", "subdistrict", "street", "place",
                    "housenumber", "postcode")
    }  # fmt: skip
    street = part["street"] or part["place"]
    if not street and not part["housenumber"]:
        return None
    if any(_CJK.search(value) for value in part.values()):
        number = part["housenumber"]
        number += "号" if number.isdigit() else ""
        big = [part["province"], part["city"], part["district"], part["subdistrict"]]
        big = [p for i, p in enumerate(big) if p and p not in big[:i]]  # 北京市 北京市
        return _join_cjk([*big, street, number])
    line = " ".join(p for p in (street, part["housenumber"]) if p)
    town = " ".join(p for p in (part["postcode"], part["city"]) if p)
    return ", ".join(p for p in (line, town) if p)


def _latin(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _join_cjk(parts: list[str]) -> str:
    """Chinese parts run together, a Latin one ("Beijing") set apart by spaces."""
    out = ""
    for part in filter(None, parts):
        apart = out and (_latin(out[-1]) or _latin(part[0]))
        out += (" " if apart else "") + part
    return out


def _named_or_coded(tags: Any) -> bool:
    return bool(boundary_code(tags)[0] or _name(tags))


def _name(tags: Any, *keys: str) -> str | None:
    for key in ("name", "name:zh", "name:en", *keys):
        value = (tags.get(key) or "").strip()
        if value:
            return value
    return None


def _source(path: Path) -> osmium.io.File:
    """The file for libosmium, its format told by its first bytes (an upload's temporary name
    says nothing), else by its name."""
    if not path.is_file():
        raise BadInput("FILE", f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        raise BadInput("FILE", f"{path}: the file is empty")
    if b"OSMHeader" in head:
        return osmium.io.File(str(path), "pbf")
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):  # XML, BOM or not
        return osmium.io.File(str(path), "osm")
    if head.startswith(b"\x1f\x8b"):
        return osmium.io.File(str(path), "osm.gz")
    if head.startswith(b"BZh"):
        return osmium.io.File(str(path), "osm.bz2")
    raise BadInput(
        "FILE", f"{path}: not an OpenStreetMap file (.osm.pbf, or .osm XML, plain or compressed)"
    )


def _point_wkb(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def _flat(coords: list[tuple[float, float]]) -> bytes:
    return struct.pack(f"<{2 * len(coords)}d", *(c for xy in coords for c in xy))


def _line_wkb(coords: list[tuple[float, float]]) -> bytes:
    return struct.pack("<BII", 1, 2, len(coords)) + _flat(coords)


def _polygon_wkb(ring: list[tuple[float, float]]) -> bytes:
    return struct.pack("<BIII", 1, 3, 1, len(ring)) + _flat(ring)


def _inside(geom: Any) -> bytes:
    """A point on the surface (an L-shaped shop's centroid may be outside it); the mean of the
    vertices when GEOS gives up on an invalid outline."""
    try:
        point = shapely.point_on_surface(geom)
    except GEOSException:
        point = None
    if point is None or point.is_empty:
        point = shapely.Point(shapely.get_coordinates(geom).mean(axis=0))
    return _point_wkb(point.x, point.y)


class _Candidates:
    """First pass over the relations: those that may become buildings, merchants or boundaries,
    remembered with their kinds; every other relation is dropped before area assembly."""

    def __init__(self, kinds: frozenset[str], out: dict[int, tuple[str, ...]]) -> None:
        self.kinds = kinds
        self.out = out

    def relation(self, r: Any) -> bool:
        tags = r.tags
        kind = tags.get("type")
        found = []
        if kind == "multipolygon":
            if "buildings" in self.kinds and is_building(tags):
                found.append("buildings")
            if "merchants" in self.kinds and merchant_category(tags):
                found.append("merchants")
        if kind in AREA_RELATIONS and "boundaries" in self.kinds and is_boundary(tags):
            found.append("boundaries")
        if found:
            self.out[r.id] = tuple(found)
        return not found  # True: filtered out


class _Reader:
    def __init__(
        self, name: str, summary: Summary, kinds: frozenset[str], progress: Progress | None
    ) -> None:
        self.name = name
        self.summary = summary
        self.kinds = kinds
        self.progress = progress
        self.handled = 0
        self.relations: dict[int, tuple[str, ...]] = {}  # waiting for their area
        self.wkb = osmium.geom.WKBFactory()
        self.odd: dict[str, list[str]] = {tag: [] for tag in ODD}  # where and value
        self.unnamed: list[str] = []  # merchants

    # -- counting -------------------------------------------------------------------------

    def _tick(self) -> None:
        self.handled += 1
        if self.progress and self.handled % PROGRESS_EVERY == 0:
            self.progress(self.handled)

    def _incomplete(self, kind: str) -> None:
        self.summary.count(kind, "incomplete")
        self._tick()

    def _reject(self, kind: str, where: str, field: str | None, message: str) -> None:
        self.summary.count(kind, "read")
        self.summary.reject(kind, where, field, message)
        self._tick()

    def _feature(
        self, kind: str, key: str, where: str, wkb: bytes, fields: dict[str, Any]
    ) -> Feature:
        self.summary.count(kind, "read")
        self._tick()
        return Feature(kind, key, where, wkb, fields)

    # -- reading --------------------------------------------------------------------------

    def read(self, source: osmium.io.File) -> Iterator[Feature]:
        for obj in self._objects(source):
            if obj.is_node():
                yield from self._node(obj)
            elif obj.is_way():
                yield from self._way(obj)
            elif obj.is_area() and not obj.from_way():
                yield from self._area(obj)

    def _objects(self, source: osmium.io.File) -> Iterator[Any]:
        """Nodes and ways that may matter, then (interleaved) the areas of the candidate
        relations as soon as their ways are read: the two passes of osmium's FileProcessor
        with areas, its filters placed after the location cache and the area assembly, which
        must see every node and way."""
        pool = osmium.io.ThreadPool()
        locations = osmium.NodeLocationsForWays(osmium.index.create_map("flex_mem"))
        locations.ignore_errors()  # a node missing from the file: an incomplete way, below
        handlers: list[Any] = [locations]
        areas = None
        if self.kinds & {"buildings", "merchants", "boundaries"}:
            manager = osmium.area.AreaManager()
            with osmium.io.Reader(source, osmium.osm.RELATION, thread_pool=pool) as first:
                osmium.apply(first, _Candidates(self.kinds, self.relations),
                             manager.first_pass_handler())  # fmt: skip
            # pyosmium's iterators and handler chains hold raw pointers to their handlers:
            # every one must stay referenced here for the whole read (a temporary filter
            # was freed at once and read afterwards: an intermittent segfault).
            area_keys = osmium.filter.KeyFilter(*AREA_KEYS)
            areas = osmium.BufferIterator(area_keys)
            handlers.append(manager.second_pass_to_buffer(areas))
        if "merchants" in self.kinds:
            nodes = osmium.filter.KeyFilter(*MERCHANT_KEYS)
            nodes.enable_for(osmium.osm.NODE)
        else:
            nodes = osmium.filter.EntityFilter(osmium.osm.WAY | osmium.osm.AREA)
        handlers.append(nodes)
        way_keys = {
            "streets": ("highway",), "buildings": ("building",), "merchants": MERCHANT_KEYS,
            "boundaries": ("boundary",),
        }  # fmt: skip
        ways = osmium.filter.KeyFilter(*(k for kind in self.kinds for k in way_keys[kind]))
        ways.enable_for(osmium.osm.WAY)
        handlers.append(ways)
        with osmium.io.Reader(source, osmium.osm.NODE | osmium.osm.WAY, thread_pool=pool) as reader:
            for obj in osmium.OsmFileIterator(reader, *handlers):
                yield obj
                if areas:
                    yield from areas
        if areas:
            yield from areas

    def finish(self) -> None:
        """Relations that never became an area had ways (or their nodes) missing."""
        for kinds in self.relations.values():
            for kind in kinds:
                self._incomplete(kind)
        self.relations.clear()
        for tag, examples in self.odd.items():
            if examples:
                self.summary.warnings.append(
                    f"{self.name}: {len(examples):,} buildings with a {tag} that is not"
                    f" {ODD[tag]}, kept without it (e.g. {examples[0]})"
                )
        if self.unnamed:
            self.summary.warnings.append(
                f"{self.name}: {len(self.unnamed):,} shops or offices without a name, counted as"
                f" incomplete, not imported (e.g. {self.unnamed[0]})"
            )
        if self.progress:
            self.progress(self.handled)

    def _node(self, node: Any) -> Iterator[Feature]:
        category = merchant_category(node.tags)
        if category is None:
            return
        where = f"{self.name} node {node.id}"
        location = node.location
        if not location.valid():
            self._reject("merchants", where, None, "no valid coordinates")
            return
        merchant = self._merchant(f"osm:n{node.id}", where, node.tags, category,
                                  _point_wkb(location.lon, location.lat))  # fmt: skip
        if merchant:
            yield merchant

    def _way(self, way: Any) -> Iterator[Feature]:
        tags = way.tags
        closed = len(way.nodes) > 1 and way.is_closed()
        category = merchant_category(tags) if "merchants" in self.kinds else None
        wanted = {
            "streets": is_street(tags),
            "buildings": is_building(tags),
            "merchants": category is not None,
            # A closed way of its own, not a segment of a boundary relation.
            "boundaries": closed and is_boundary(tags) and _named_or_coded(tags),
        }
        kinds = [kind for kind in OSM_KINDS if kind in self.kinds and wanted[kind]]
        if not kinds:
            return
        try:
            coords = [(n.lon, n.lat) for n in way.nodes]
        except osmium.InvalidLocationError:
            coords = []  # cut at the extract's edge
        if len(coords) < 2:  # … or the nodes outside dropped by the extract tool
            for kind in kinds:
                self._incomplete(kind)
            return
        where = f"{self.name} way {way.id}"
        key = f"osm:w{way.id}"
        for kind in kinds:
            if kind == "streets":
                fields = {"highway": tags["highway"], "name": _name(tags)}
                yield self._feature(kind, key, where, _line_wkb(coords), fields)
            elif kind == "merchants":
                if closed and len(coords) >= 4:
                    point = _inside(shapely.Polygon(coords))
                else:
                    point = _inside(shapely.LineString(coords))
                merchant = self._merchant(key, where, tags, category or "", point)
                if merchant:
                    yield merchant
            elif not closed:
                self._reject(kind, where, None, "the outline does not close")
            elif len(coords) < 4:
                self._reject(kind, where, None, "an outline of fewer than three corners")
            elif kind == "buildings":
                fields = self._building_fields(tags, where)
                yield self._feature(kind, key, where, _polygon_wkb(coords), fields)
            else:
                yield self._feature(kind, key, where, _polygon_wkb(coords),
                                    self._boundary_fields(tags))  # fmt: skip

    def _area(self, area: Any) -> Iterator[Feature]:
        relation = area.orig_id()
        kinds = self.relations.pop(relation, ())
        if not kinds:
            return
        where = f"{self.name} relation {relation}"
        key = f"osm:r{relation}"
        try:
            wkb = bytes.fromhex(self.wkb.create_multipolygon(area))
        except RuntimeError:  # libosmium assembled no ring: open or crossing
            for kind in kinds:
                self._reject(kind, where, None,
                             "the multipolygon's ways do not form closed rings")  # fmt: skip
            return
        tags = area.tags
        for kind in kinds:
            if kind == "buildings":
                yield self._feature(kind, key, where, wkb, self._building_fields(tags, where))
            elif kind == "merchants":
                point = _inside(shapely.from_wkb(wkb))
                merchant = self._merchant(key, where, tags, merchant_category(tags) or "", point)
                if merchant:
                    yield merchant
            else:
                yield self._feature(kind, key, where, wkb, self._boundary_fields(tags))

    # -- fields ---------------------------------------------------------------------------

    def _merchant(
        self, key: str, where: str, tags: Any, category: str, point: bytes
    ) -> Feature | None:
        name = _name(tags, "brand")
        if name is None:
            self.unnamed.append(where.removeprefix(self.name + " "))
            self._incomplete("merchants")
            return None
        fields = {"name": name, "category": category, "address": compose_address(tags)}
        return self._feature("merchants", key, where, point, fields)

    def _building_fields(self, tags: Any, where: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "name": _name(tags),
            "building": tags.get("building"),
            "levels": None,
            "height": None,
            "address": compose_address(tags),
        }
        for tag, parse, field in (("building:levels", parse_levels, "levels"),
                                  ("height", parse_height, "height")):  # fmt: skip
            value = tags.get(tag)
            if value is not None:
                fields[field] = parse(value)
                if fields[field] is None:
                    self.odd[tag].append(f"{where.removeprefix(self.name + ' ')}: {value!r}")
        return fields

    def _boundary_fields(self, tags: Any) -> dict[str, Any]:
        code, code_tag = boundary_code(tags)
        level = tags.get("admin_level", "")
        return {
            "code": code,
            "code_tag": code_tag,
            "name": _name(tags),
            "admin_level": int(level) if level.isdigit() else None,
        }
