"""`gridmap grids …`: drawing grids, as the tables' owner (the app only reads them)."""

from __future__ import annotations

import json

import click

from geo.errors import GridmapError
from geo.grids.units import MAX_AREA_M2, MIN_AREA_M2


@click.group("grids")
def grids_group() -> None:
    """Grids drawn over an area, written as the tables' owner."""


@grids_group.command(
    "unit", short_help="A layer of regular cells of one area (e.g. 10,000 m²) over an area."
)
@click.option("--scope", required=True, help="The area to cover: a district, sub-district, "
              "community, grid or micro-grid code (e.g. 310106015).")  # fmt: skip
@click.option("--area-m2", type=click.IntRange(MIN_AREA_M2, MAX_AREA_M2), default=10_000,
              show_default=True, help="Each cell's area on the ground, in m².")  # fmt: skip
@click.option("--shape", type=click.Choice(["square", "hex"]), default="square",
              show_default=True, help="Square cells, or hexagons (flat-topped).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print {scope, shape, areaM2, cells, "
              "partial} as JSON.")  # fmt: skip
def unit(scope: str, area_m2: int, shape: str, as_json: bool) -> None:
    """Draw a layer of regular cells of one area over an area (the urban-management unit grid),
    replacing the layer of the same scope, shape and area in one transaction.

    Whole cells sharing area with the scope are kept; those reaching beyond its boundary are
    counted as partial. Codes: the scope's code, S or H, and a six-digit number running west to
    east along a row, rows north to south.

    \b
    Example:
        gridmap grids unit --scope 310106015 --area-m2 10000 --shape hex
    """
    from api.cli import _owner_url, _settings
    from geo.grids.units import draw
    from importers.run import connect

    conn = connect(_owner_url(_settings()))
    try:
        with conn, conn.cursor() as cur:
            result = draw(cur, scope, area_m2=area_m2, shape=shape)
    except GridmapError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    click.echo(f"{result.cells:,} {shape} cells of {area_m2:,} m² over {scope} "
               f"({result.partial:,} partial, laid out in EPSG:{result.srid})")  # fmt: skip
