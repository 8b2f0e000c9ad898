"""`gridmap grids …`: drawing grids, as the tables' owner (the app only reads them)."""

from __future__ import annotations

import json
from pathlib import Path

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


@grids_group.command("draw", short_help="Draw grids of about N households for a community.")
@click.option("--community", required=True, help="The community's 12-digit code.")
@click.option("--target-households", "target", required=True, type=click.IntRange(1, 100_000),
              help="Households per grid to aim at (a few hundred: one grid worker's share).")
@click.option("--tolerance", default=0.15, show_default=True, type=click.FloatRange(0, 1,
              max_open=True), help="How far a grid's households may be from the target.")
@click.option("--micro-households", type=click.IntRange(1, 100_000), default=None,
              help="Merge small neighbouring buildings into one micro-grid up to this many "
              "households [default: one micro-grid per building].")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print the proposal and write the map comparing "
              "the grids now and the proposed ones; change nothing.")  # fmt: skip
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where the dry run's map goes [grids-COMMUNITY.html].")
@click.option("--json", "as_json", is_flag=True, help='Print {"grids": [{"code", "households", '
              '"polsbyPopper", "contiguous", …}], "cv", …} as JSON (applied: and "applied").')
def draw_grids(community: str, target: int, tolerance: float, micro_households: int | None,
               dry_run: bool, map_file: Path | None, as_json: bool) -> None:  # fmt: skip
    """Partition a community's buildings into contiguous, compact grids of about the target
    households each, not crossing major streets (trunk, primary, secondary, tertiary), their
    boundaries covering the community without gaps or overlaps. Buildings not placed in a grid
    yet have their households estimated from footprint and levels (flagged). A grid with exactly
    the buildings of a grid now keeps its code; new ones are numbered after the highest code
    ever used (retired codes are never reused), west to east, north to south. The report gives
    households per grid (min, max, coefficient of variation), compactness (Polsby-Popper),
    contiguity and major streets crossed.

    Run it with --dry-run first: it prints the proposal and writes a map of the grids now and
    the proposed ones. Without --dry-run the drawing is applied in one transaction: grids not
    kept are retired into the history with their micro-grids; new grids are drawn into
    micro-grids (one per building, or small buildings merged up to --micro-households);
    moved buildings, their households and members get new codes (the old ones are kept in
    code_change); workers follow their grid's households; open cases go to the grid they lie
    in.

    \b
    Examples:
        gridmap grids draw --community 310106015001 --target-households 300 --dry-run
        gridmap grids draw --community 310106015001 --target-households 300
    """
    import getpass

    from api.cli import _owner_url, _settings
    from api.maps import render
    from geo.grids.apply import apply
    from geo.grids.draw import propose
    from importers.run import connect
    from maps.grids import grids_map

    conn = connect(_owner_url(_settings()))
    applied = None
    try:
        with conn, conn.cursor() as cur:
            if dry_run:
                proposal = propose(cur, community, target, tolerance)
            else:
                proposal, applied = apply(cur, community, target, tolerance,
                                          micro_households=micro_households,
                                          drawn_by=getpass.getuser())  # fmt: skip
    except GridmapError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        conn.close()
    report = proposal.as_json()
    if dry_run:
        output = map_file or Path(f"grids-{community}.html")
        output.write_text(render(grids_map(proposal), self_contained=True), encoding="utf-8")
    if as_json:
        if applied is not None:
            report["applied"] = applied.as_json()
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    click.echo(f"{'grid':<17} {'households':>10} {'buildings':>9} {'Polsby-Popper':>13}  notes")
    for g in proposal.grids:
        notes = [n for n, on in (("kept", g.kept), ("estimated", g.estimated),
                                 ("NOT CONTIGUOUS", not g.contiguous),
                                 (f"crosses {g.streets_crossed} major streets",
                                  g.streets_crossed)) if on]  # fmt: skip
        click.echo(f"{g.code:<17} {g.households:>10,} {len(g.buildings):>9,} "
                   f"{g.polsby_popper:>13.2f}  {', '.join(notes)}")
    click.echo(f"{len(proposal.grids)} grids; households min {report['min']:,}, max "
               f"{report['max']:,}, cv {proposal.cv:.3f}; median Polsby-Popper "
               f"{proposal.median_polsby_popper:.2f}")  # fmt: skip
    for problem in proposal.problems:
        click.echo(f"cannot satisfy: {problem}", err=True)
    if applied is None:
        click.echo(f"wrote {output} (grids now dashed, proposed filled); nothing changed")
        return
    if not applied.created and not applied.retired:
        click.echo("every grid is kept as it is: nothing to apply")
        return
    click.echo(f"applied: {len(applied.kept)} grids kept, {len(applied.created)} drawn "
               f"({applied.micro_grids:,} micro-grids), {len(applied.retired)} retired; new codes "
               f"for {applied.buildings:,} buildings, {applied.households:,} households, "
               f"{applied.persons:,} persons; {applied.open_cases:,} open cases moved")
    moves: dict[tuple[str, str], list[str]] = {}
    for w in applied.workers:
        moves.setdefault((w["from"], w["to"]), []).append(w["worker"])
    for (old, new), workers in moves.items():
        click.echo(f"retired grid {old}: its workers now on {new}: {', '.join(workers)}")
    for code in applied.unstaffed:
        click.echo(f"grid {code} has no grid worker yet: assign one", err=True)
