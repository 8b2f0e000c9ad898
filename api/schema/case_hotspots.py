"""`caseHotspots`: where cases cluster, cell by cell, with Getis-Ord Gi*, an FDR-corrected
confidence and the trend against the windows before (``geo.case_hotspots`` computes them,
``geo.hotspots`` defines every figure).

Hotspots are aggregates: every caller gets the same statistics, counted over all the cases of
the scope by a ``SECURITY DEFINER`` function that returns counts only (migration 0010), so a
grid worker's hotspots of a subdistrict are the grid center's. The public gets no count of
fewer than ``GRIDMAP_K_ANONYMITY`` cases (``count`` null, ``suppressed`` true).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
import strawberry

from api.schema.base import GeoJSON, values_enum
from api.schema.context import Info
from geo import case_hotspots as ch
from geo import hotspots as stats

HotspotCellKind = values_enum(
    "HotspotCellKind",
    ch.CELLS,
    "GRID and MICRO_GRID: the areas' own polygons; HEX: hexagons of `hexMeters` made per call.",
)
HotspotConfidence = values_enum(
    "HotspotConfidence",
    stats.CONFIDENCES,
    "Hot (z > 0) or cold (z < 0) at a false-discovery rate of 1, 5 or 10 % over the cells of "
    "the call (Benjamini–Hochberg adjusted p-value `qValue` at most 0.01, 0.05, 0.10).",
)
EmergingHotspot = values_enum(
    "EmergingHotspot",
    stats.EMERGING,
    "A hot cell against the previous windows of the same length: NEW (hot in none of them), "
    "INTENSIFYING or DIMINISHING (its z rises or falls across the windows by more than chance "
    "gives one time in twenty), PERSISTENT (no trend, hot in at least half of them); NONE for "
    "every cell that is not hot now, and for a hot cell hot before only now and then.",
)

SUPPRESSED = (
    "True when `count` is withheld from the public: fewer cases than the k-anonymity threshold."
)


@strawberry.type(description="One cell of a hotspot analysis.")
class HotspotCell:
    code: str = strawberry.field(
        description="The grid's or micro-grid's code; for a hexagon `H{edge}-c{column}-r{row}` "
        "(ST_HexagonGrid's i and j in the projection `srid`), the same on every call."
    )
    name: str | None = strawberry.field(description="The grid's or micro-grid's name.")
    geometry: GeoJSON
    count: int | None = strawberry.field(description="Cases reported in the window.")
    z_score: float = strawberry.field(
        description="Getis-Ord Gi*: binary weights, the cell and its neighbours (cells sharing "
        "an edge or a vertex with it)."
    )
    p_value: float = strawberry.field(description="Two-sided p-value of the z-score.")
    q_value: float = strawberry.field(
        description="The p-value adjusted for the false-discovery rate (Benjamini–Hochberg) "
        "over the cells of the call: what `confidence` is read from."
    )
    confidence: HotspotConfidence  # type: ignore[valid-type]
    emerging: EmergingHotspot  # type: ignore[valid-type]
    suppressed: bool = strawberry.field(description=SUPPRESSED)


@strawberry.type(description="Local days, the first and the last included.")
class HotspotWindow:
    from_: dt.date = strawberry.field(name="from")
    to: dt.date


@strawberry.type(description="Hot and cold spots of cases in an area over a window of days.")
class CaseHotspots:
    scope: str
    cell: HotspotCellKind  # type: ignore[valid-type]
    window: HotspotWindow
    previous_windows: list[HotspotWindow] = strawberry.field(
        description="The windows of the same length before, oldest first, that `emerging` "
        "compares the window with."
    )
    hex_meters: float | None = strawberry.field(description="HEX: the hexagons' edge length.")
    srid: int | None = strawberry.field(
        description="HEX: the projection the hexagons are made in (EPSG code of the UTM zone of "
        "the scope's district); hexagon codes are per projection."
    )
    cells: list[HotspotCell] = strawberry.field(
        description="Every cell of the scope, empty ones included, in code order (hexagons by "
        "column, then row)."
    )


def _window(w: ch.Window) -> HotspotWindow:
    return HotspotWindow(from_=w.first_day, to=w.last_day)


def _cell(c: dict[str, Any]) -> HotspotCell:
    return HotspotCell(
        code=c["code"], name=c["name"], geometry=orjson.Fragment(c["geometry"]),
        count=c["count"], z_score=c["z"], p_value=c["p"], q_value=c["q"],
        confidence=HotspotConfidence(c["confidence"]), emerging=EmergingHotspot(c["emerging"]),
        suppressed=c.get("suppressed", False),
    )  # fmt: skip


async def case_hotspots(
    info: Info,
    scope: Annotated[str, strawberry.argument(description="An area code, district to micro-grid.")],
    from_: Annotated[
        dt.date | None,
        strawberry.argument(
            name="from", description="The first local day of the window [30 days before `to`]."
        ),
    ] = None,
    to: Annotated[
        dt.date | None,
        strawberry.argument(description="The last local day, included [today]."),
    ] = None,
    categories: Annotated[
        list[str] | None,
        strawberry.argument(description="Only cases of these category codes [all]."),
    ] = None,
    cell: HotspotCellKind = HotspotCellKind.HEX,  # type: ignore[attr-defined]
    hex_meters: Annotated[
        float,
        strawberry.argument(
            description=f"HEX: a hexagon's edge in metres, {ch.HEX_MIN_M:g} to {ch.HEX_MAX_M:g}."
        ),
    ] = ch.DEFAULT_HEX_M,
) -> CaseHotspots:
    """Where cases cluster: each cell's count in the window, its Gi* z-score, p-value and
    confidence, and how it compares with the previous windows. Days are the subdistrict's.
    Cases merged into another and rejected ones are not counted."""
    found = await info.context.db.run(
        ch.hotspots, scope=scope, first_day=from_, last_day=to, categories=categories,
        cell=cell.value, hex_m=hex_meters,
    )  # fmt: skip
    cells = found.cells
    if info.context.caller.is_public:
        k = info.context.settings.k_anonymity
        cells = [ch.suppress(c, k) for c in cells]
    return CaseHotspots(
        scope=found.scope, cell=cell, window=_window(found.window),
        previous_windows=[_window(w) for w in found.previous], hex_meters=found.hex_m,
        srid=found.srid, cells=[_cell(c) for c in cells],
    )  # fmt: skip
