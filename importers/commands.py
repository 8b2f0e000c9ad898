"""`gridmap import …` and `gridmap export …`: options in, a summary out (or `--json`)."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from geo.errors import GridmapError
from importers.run import ImportFailed, Options
from importers.summary import Summary

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _common(command: Callable[..., None]) -> Callable[..., None]:
    """The options every import takes, gathered into `options` (an importers.run.Options)."""

    @click.option("--skip-invalid", is_flag=True, help="Import the valid rows and write the "
                  "refused ones with their reasons to the rejects file (default: a file with "
                  "errors changes nothing).")  # fmt: skip
    @click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Where --skip-invalid writes refused rows [FILE.rejects.csv].")
    @click.option("--crs", "crs_text", default=None, metavar="CRS", help="The file's coordinate "
                  "system: an EPSG code (EPSG:4547), or gcj02 / bd09 for Chinese map providers' "
                  "offsets; converted to WGS-84. [WGS-84, or what the GIS file says]")
    @click.option("--codes", type=click.Choice(["national", "free"]), default="national",
                  show_default=True, help="Check area codes against the national statistical "
                  "tables, or accept any code of the right width (foreign or test areas).")
    @click.option("--no-repair", is_flag=True, help="Refuse invalid geometries instead of "
                  "repairing them (make_valid).")  # fmt: skip
    @click.option("--dry-run", is_flag=True, help="Check and count everything, write nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    @functools.wraps(command)
    def wrapper(file: Path, skip_invalid: bool, rejects: Path | None, crs_text: str | None,
                codes: str, no_repair: bool, dry_run: bool, as_json: bool, quiet: bool,
                **kwargs: Any) -> None:  # fmt: skip
        from importers.crs import parse_crs

        try:
            crs = parse_crs(crs_text) if crs_text else None
        except GridmapError as exc:
            raise click.BadParameter(exc.message, param_hint="--crs") from None
        if skip_invalid and rejects is None:
            rejects = file.with_name(file.name + ".rejects.csv")
        options = Options(skip_invalid=skip_invalid, rejects=rejects, codes=codes, crs=crs,
                          repair=not no_repair, dry_run=dry_run,
                          prefer_file=kwargs.pop("prefer_file", False))  # fmt: skip
        try:
            summary = command(file, options=options, progress=not quiet and not as_json,
                              **kwargs)  # fmt: skip
        except ImportFailed as exc:
            if as_json:
                click.echo(json.dumps(exc.summary.as_json(), ensure_ascii=False, indent=2))
            raise click.ClickException(exc.message) from None
        except GridmapError as exc:
            raise click.ClickException(exc.message) from None
        _report(summary, options, as_json)

    return wrapper


def _report(summary: Summary, options: Options, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_json(), ensure_ascii=False, indent=2))
        return
    for line in summary.lines():
        click.echo(line)
    for line in summary.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in getattr(summary, "conflicts", []):
        click.echo(f"conflict (left as it is; --prefer-file overwrites): {line}", err=True)
    if summary.problems and options.rejects:
        click.echo(f"{len(summary.problems):,} refused rows written to {options.rejects}",
                   err=True)  # fmt: skip
    done = "checked (dry run, nothing written)" if options.dry_run else "imported"
    click.echo(f"{done} in {summary.seconds:.1f} s")


@click.group("import")
def import_group() -> None:
    """Real data into the model: OpenStreetMap, GIS files, registers (CSV/Excel).

    All or nothing: a file with errors changes nothing (each error names the row or feature
    and the field) unless --skip-invalid. Importing the same file again changes nothing;
    a newer file updates what changed. Run as the tables' owner (settings as for `gridmap db`).
    """


@import_group.command("osm")
@click.argument("file", type=FILE)
@click.option("--no-network", is_flag=True, help="Do not rebuild the walking network from the "
              "file's streets.")  # fmt: skip
@_common
def import_osm(file: Path, *, options: Options, progress: bool, no_network: bool) -> Summary:
    """Buildings, shops and offices (as merchants), streets and administrative boundaries from
    an OpenStreetMap file (.osm.pbf or .osm). Ways and relations cut at the extract's edge are
    counted as incomplete, not errors. The streets replace the walking network.

    \b
    Example:
      gridmap import osm wangjing.osm.pbf --json
    """
    from importers import sources

    return sources.osm(_owner_url(), file, options, progress=progress, network=not no_network)


@import_group.command("boundaries")
@click.argument("file", type=FILE)
@click.option("--level", required=True, type=click.Choice(
    ["district", "subdistrict", "community", "grid", "micro_grid"]),
    help="The level of the file's areas; the parent is found by code prefix.")  # fmt: skip
@click.option("--code-field", required=True, metavar="FIELD", help="The attribute holding each "
              "area's code (6, 9, 12, 15 or 18 digits by level).")  # fmt: skip
@click.option("--name-field", default=None, metavar="FIELD", help="The attribute holding names.")
@click.option("--layer", default=None, help="The layer of a GeoPackage [the first].")
@_common
def import_boundaries(file: Path, *, options: Options, progress: bool, level: str,
                      code_field: str, name_field: str | None, layer: str | None) -> Summary:
    """Area boundaries from a GeoJSON, GeoPackage or Shapefile, one level per file, parents
    first (districts, then subdistricts …).

    \b
    Example:
      gridmap import boundaries communities.gpkg --level community --code-field CODE \\
          --name-field NAME --crs EPSG:4547
    """
    from importers import sources

    return sources.boundaries(_owner_url(), file, options, progress=progress, level=level,
                              code_field=code_field, name_field=name_field, layer=layer)


@import_group.command("buildings")
@click.argument("file", type=FILE)
@click.option("--key-field", default=None, metavar="FIELD", help="A stable id of each footprint "
              "in the file, to match it again [the footprint itself].")  # fmt: skip
@click.option("--levels-field", default=None, metavar="FIELD", help="Number of storeys.")
@click.option("--height-field", default=None, metavar="FIELD", help="Height in metres (levels "
              "= height / 3 m, when there is no levels field or it is empty).")  # fmt: skip
@click.option("--name-field", default=None, metavar="FIELD")
@click.option("--address-field", default=None, metavar="FIELD")
@click.option("--layer", default=None, help="The layer of a GeoPackage [the first].")
@_common
def import_buildings(file: Path, *, options: Options, progress: bool, **fields: Any) -> Summary:
    """Building footprints from a GeoJSON, GeoPackage or Shapefile. Buildings inside a
    micro-grid take its code; the others wait for grids to be drawn (`gridmap grids`).

    \b
    Example:
      gridmap import buildings footprints.shp --levels-field FLOORS --crs EPSG:4547
    """
    from importers import sources

    return sources.buildings(_owner_url(), file, options, progress=progress, **fields)


def _register() -> Callable[..., Any]:
    """The options every register (CSV or Excel) takes."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option("--map", "mapping", multiple=True, metavar="FIELD=HEADER",
                               help="Read FIELD from the column HEADER (repeatable).")(command)
        command = click.option("--mapping-file", type=FILE, default=None,
                               help="Column mappings, one `field = header` per line.")(command)
        command = click.option("--sheet", default=None, help="The Excel sheet [the first].")(
            command)
        command = click.option("--encoding", default=None, help="The CSV's encoding [UTF-8 "
                               "or GB18030, detected].")(command)  # fmt: skip
        command = click.option("--prefer-file", is_flag=True, help="Overwrite what workers "
                               "changed in the app since the last import (listed as conflicts "
                               "otherwise).")(command)  # fmt: skip
        return command

    return decorate


def _columns(kind: str) -> str:
    """The fields a register of `kind` is read for, as the help lists them."""
    from importers.headers import FIELDS, label
    from importers.tables import REQUIRED

    fields = ", ".join(f"{name} ({label(kind, name)})" for name in FIELDS[kind])
    required = "; ".join(need.replace("|", " or ").replace("+", " and ") for need in REQUIRED[kind])
    return (f"\n\nColumns (usual Chinese or English headers are recognised; others with --map "
            f"FIELD=HEADER): {fields}. Needed: {required}.")


def _register_command(kind: str, doc: str) -> None:
    @import_group.command(kind, help=doc + _columns(kind))
    @click.argument("file", type=FILE)
    @_register()
    @_common
    def command(file: Path, *, options: Options, progress: bool, mapping: tuple[str, ...],
                mapping_file: Path | None, sheet: str | None, encoding: str | None,
                **extra: Any) -> Summary:  # fmt: skip
        from importers import sources

        return sources.register(_owner_url(), file, kind, options, progress=progress,
                                mapping=mapping, mapping_file=mapping_file, sheet=sheet,
                                encoding=encoding, **extra)  # fmt: skip


REGISTERS = {
    "households": "Households and their members from a register (CSV or Excel, one row per "
    "person; Chinese or English headers). A household is found by its building's code or by "
    "coordinates, with unit and room; those outside every grid are counted, not imported.",
    "workers": "Grid workers and staff (staff number, role, community, grids) from a register.",
    "merchants": "Merchants (business-licence number, name, category, coordinates) from a "
    "register.",
    "openings": "Merchants' job openings from a register (merchant code, title, wage …).",
}
for _kind, _doc in REGISTERS.items():
    _register_command(_kind, _doc + "\n\nExample:\n\n  gridmap import " + _kind + " FILE.xlsx")


@import_group.command("cases")
@click.argument("file", type=FILE)
@_register()
@click.option("--category-map", type=FILE, default=None, help="Foreign categories to ours: a "
              "CSV with columns source,category. Unmapped ones go to OTHER, keeping their name.")
@click.option("--source", default="HOTLINE_12345", show_default=True, type=click.Choice(
    ["HOTLINE_12345", "OPEN311", "GRID_WHISTLE", "RESIDENT_ONLINE", "VISIT"]),
    help="Where the cases came from.")  # fmt: skip
@_common
def import_cases(file: Path, *, options: Options, progress: bool, mapping: tuple[str, ...],
                 mapping_file: Path | None, sheet: str | None, encoding: str | None,
                 category_map: Path | None, source: str) -> Summary:  # fmt: skip
    """Cases from a hotline export (12345, Open311 or a city's 311 export: their usual
    headers are recognised). Rows without coordinates are refused; cases outside every grid
    are counted as outside, not imported. Importing the same export again changes nothing.

    \b
    Example:
      gridmap import cases 12345-2026-11.xlsx --category-map categories.csv
    """
    from importers import sources

    return sources.register(_owner_url(), file, "cases", options, progress=progress,
                            mapping=mapping, mapping_file=mapping_file, sheet=sheet,
                            encoding=encoding, category_map=category_map, source=source)


import_cases.help = inspect.cleandoc(import_cases.help or "") + _columns("cases")


def _owner_url() -> str:
    from api.settings import Settings

    settings = Settings()
    settings.require_database()
    assert settings.owner_database_url
    return settings.owner_database_url
