"""The `gridmap` command line: the local database, the demo district, the server, the schema."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click

from api.grids_cli import grids_group
from api.settings import ROOT, Settings
from geo.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from geo.access import Caller
    from geo.routes import Route

T = TypeVar("T")


def _settings() -> Settings:
    return Settings()


def _owner_url(settings: Settings) -> str:
    settings.require_database()
    assert settings.owner_database_url
    return settings.owner_database_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """gridmap: community grid governance on PostGIS.

    Settings come from GRIDMAP_* environment variables, else from var/gridmap.env, which
    `gridmap db up` writes for the project-local cluster (DATABASE_URL points at another server).
    """


@main.group()
def db() -> None:
    """The project-local PostgreSQL + PostGIS cluster (data under ./var/) and its schema."""


@db.command("up")
def db_up() -> None:
    """Create the cluster if needed and start it; idempotent, seconds when it already runs."""
    from api import cluster

    info = cluster.up()
    click.echo(f"PostGIS ready: {info}")


@db.command("down")
def db_down() -> None:
    """Stop the local cluster (the data stays under ./var/)."""
    from api import cluster

    cluster.down()
    click.echo("cluster stopped")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def db_status(as_json: bool) -> None:
    """Whether the local cluster runs, where, and the schema revision."""
    from api import cluster
    from geo.migrate import current_revision, head_revision

    status = dict(cluster.status())
    settings = _settings()
    if settings.database_url and status.get("running", True):
        try:
            status["revision"] = current_revision(_owner_url(settings))
        except Exception as exc:  # the status command reports, it does not fail
            status["revision_error"] = str(exc).splitlines()[0]
    status["head"] = head_revision()
    if as_json:
        click.echo(json.dumps(status, default=str, indent=2))
    else:
        for key, value in status.items():
            click.echo(f"{key:>12}: {value}")


@db.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to reach.")
def db_migrate(revision: str) -> None:
    """Bring the schema up to date (Alembic migrations, run as the tables' owner)."""
    from geo.migrate import current_revision, head_revision, upgrade

    url = _owner_url(_settings())
    upgrade(url, revision)
    at = current_revision(url)
    wanted = head_revision() if revision == "head" else revision
    if at != wanted:
        # Alembic's upgrade never goes down; a downgrade drops data, so it is not done here.
        raise click.ClickException(
            f"the schema is at {at}, past {revision}: migrations here only go up (going down "
            "drops tables and their data); restore a backup of that revision instead"
        )
    click.echo(f"schema at {at}" + (" (head)" if revision == "head" else ""))


@db.command("reset")
@click.confirmation_option(prompt="Drop every row of the local database?")
def db_reset() -> None:
    """Drop and recreate the local database, then migrate (the demo is reloaded by `demo`)."""
    from api import cluster
    from geo.migrate import upgrade

    cluster.reset()
    upgrade(_owner_url(_settings()))
    click.echo("database recreated and migrated")


@db.command("backup")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The archive to write [var/backups/gridmap-YYYYMMDD-HHMMSS.dump, local "
              "time]; an existing file is not overwritten.")  # fmt: skip
def db_backup(output: Path | None) -> None:
    """Back up the app database: a pg_dump archive (custom format) of the schema, every row,
    the row-level security policies and the app role's grants, taken as the tables' owner while
    the app keeps running. The file is readable by its owner only (it holds personal data);
    its name is printed alone on standard output, the progress on standard error.

    \b
    Example:
      gridmap db backup -o /srv/backups/gridmap.dump
    """
    from api.backup import BackupError, backup

    try:
        done = backup(_owner_url(_settings()), output, say=lambda m: click.echo(m, err=True))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(done), err=True)
    click.echo(str(done.path))


@db.command("restore")
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--database", "database", default=None, metavar="NAME", help="Restore into this "
              "database on the same server, created when absent [the app's database].")  # fmt: skip
@click.option("--yes", "replace", is_flag=True, help="Replace the database if it holds data: "
              "the backup is restored beside it, then the old one is dropped.")  # fmt: skip
def db_restore(file: Path, database: str | None, replace: bool) -> None:
    """Restore a `gridmap db backup` archive into an empty database, as the tables' owner, in
    one transaction (a failed restore leaves nothing behind). The database is created when
    absent; one holding data is refused unless --yes. PostGIS and pgRouting must be in it or
    in template1 (`gridmap db up` puts them there), and the roles gridmap and gridmap_app must
    exist on the server.

    \b
    Examples:
      gridmap db restore var/backups/gridmap-20261130-120000.dump --database gridmap_check
      gridmap db restore gridmap.dump --yes        # replace the app database
    """
    from sqlalchemy.engine import make_url

    from api.backup import BackupError, restore
    from geo.migrate import head_revision

    settings = _settings()
    owner = _owner_url(settings)
    app_role = make_url(settings.database_url).username if settings.database_url else None
    try:
        done = restore(owner, file, database=database, replace=replace, app_role=app_role,
                       say=lambda m: click.echo(m, err=True))  # fmt: skip
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(done))
    head = head_revision()
    if done.revision != head:
        click.echo(f"note: the restored schema is at revision {done.revision}, this code's "
                   f"is {head}: run `gridmap db migrate` on it before serving",
                   err=True)  # fmt: skip


@main.command()
@click.option(
    "--households",
    default=5000,
    show_default=True,
    type=click.IntRange(100, 5_000_000),
    help="Size of the demo; beyond one sub-district more sub-districts are generated.",
)
@click.option("--seed", default=2026, show_default=True, help="Random seed: same seed, same data.")
@click.option("--reset", is_flag=True, help="Empty the model's tables first and load anew.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(households: int, seed: int, reset: bool, quiet: bool) -> None:
    """Load the demo district (Tianmu West Road, Jing'an, Shanghai) if it is not loaded yet,
    or bring an older demo up to date. Never overwrites data that is not a demo."""
    from geo.demo import load_demo

    settings = _settings()
    summary = load_demo(
        url=_owner_url(settings), secret_key=settings.secret_key, households=households,
        seed=seed, reset=reset, progress=not quiet,
    )  # fmt: skip
    click.echo(summary)


@main.group()
def auth() -> None:
    """Tokens, passwords and revocation for workers (signed with the settings' secret key)."""


def _ttl(value: str) -> dt.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return dt.timedelta(seconds=float(value[:-1]) * units[value[-1]])
    except (KeyError, ValueError, IndexError):
        raise click.BadParameter(f"{value!r}: use a number and s, m, h or d (e.g. 12h)") from None


def _worker(code: str) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from geo.workers import worker_by_code

    engine = create_engine(_owner_url(_settings()))
    try:
        with engine.connect() as connection:
            return worker_by_code(connection=connection, code=code)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()


@auth.command("token")
@click.option("--worker", "code", required=True, help="The worker's staff number.")
@click.option("--ttl", default="12h", show_default=True, help="Lifetime: 30m, 12h, 7d …")
def auth_token(code: str, ttl: str) -> None:
    """Print a Bearer token for a worker (for operators and tests), alone on standard output."""
    from api.auth import issue_token

    click.echo(issue_token(_settings(), _worker(code), ttl=_ttl(ttl)))


@auth.command("demo-tokens")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--ttl", default="12h", show_default=True, help="Lifetime of each token.")
def auth_demo_tokens(as_json: bool, ttl: str) -> None:
    """A demo user of each role with a token (and the demo password for the login page)."""
    from api.auth import issue_token
    from geo.demo import DEMO_PASSWORD, demo_logins_of

    settings = _settings()
    logins = demo_logins_of(_owner_url(settings))
    if not logins:
        raise click.ClickException("no demo is loaded: run `gridmap demo`")
    out = {
        role.lower(): {"worker": code, "token": issue_token(settings, _worker(code), ttl=_ttl(ttl))}
        for role, code in logins.items()
    }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"Demo logins (password {DEMO_PASSWORD!r} at /login), with Bearer tokens:")
    for role, entry in out.items():
        click.echo(f"  {role:<12} {entry['worker']:<16} {entry['token']}")


@auth.command("revoke")
@click.option("--worker", "code", required=True, help="The worker's staff number.")
def auth_revoke(code: str) -> None:
    """Revoke every token and browser session of a worker, at once."""
    from sqlalchemy import create_engine

    from geo.workers import revoke_tokens

    engine = create_engine(_owner_url(_settings()))
    try:
        with engine.begin() as connection:
            revoke_tokens(connection=connection, code=code)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    click.echo(f"revoked every token and session of {code}")


@auth.command("password")
@click.option("--worker", "code", required=True, help="The worker's staff number.")
@click.password_option(help="The new password (asked for when not given).")
def auth_password(code: str, password: str) -> None:
    """Set a worker's password for the login page (stored as an argon2 hash)."""
    from sqlalchemy import create_engine

    from api.auth import hash_password
    from geo.workers import set_password

    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="password")
    engine = create_engine(_owner_url(_settings()))
    try:
        with engine.begin() as connection:
            set_password(connection=connection, code=code, password_hash=hash_password(password))
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    click.echo(f"password set for {code}")


@main.group("open311")
def open311_group() -> None:
    """Open311 (GeoReport v2) clients: the API keys they file requests with."""


@open311_group.command("key")
@click.option("--client", required=True, help="The client's name (an app, a hotline system).")
@click.option("--rotate", is_flag=True, help="Replace the client's key: the old one stops "
              "working at once (a revoked client is reinstated).")  # fmt: skip
@click.option("--revoke", is_flag=True, help="Revoke the client's key: its requests are "
              "refused from now on.")  # fmt: skip
def open311_key(client: str, rotate: bool, revoke: bool) -> None:
    """Issue an API key to an Open311 client and print it alone on standard output. It is
    shown this once: only its SHA-256 digest is kept.

    \b
    Example:
      gridmap open311 key --client citizen-app
    """
    import getpass

    from sqlalchemy import create_engine

    from geo import open311
    from geo.errors import GridmapError

    if rotate and revoke:
        raise click.UsageError("--rotate or --revoke, not both")
    try:
        by: str | None = getpass.getuser()
    except (OSError, KeyError):
        by = None
    engine = create_engine(_owner_url(_settings()))
    try:
        with engine.begin() as connection:
            if revoke:
                open311.revoke_key(connection=connection, client=client)
            else:
                key = open311.issue_key(
                    connection=connection, client=client, created_by=by, rotate=rotate
                )
    except GridmapError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    if revoke:
        click.echo(f"revoked the key of Open311 client {client.strip()}", err=True)
    else:
        click.echo(key)


@main.group()
def network() -> None:
    """The walking network that routes are planned on (streets, footpaths, entrances)."""


@network.command("build")
@click.option("--osm", "osm", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="An OpenStreetMap file (.osm.pbf or .osm) covering the "
              "buildings: its streets and footpaths become the network.")  # fmt: skip
def network_build(osm: Path) -> None:
    """Replace the walking network: the file's walkable highways (motorways left out) noded
    where they cross, and each building and community office joined to the street nearest its
    door. Run it after importing buildings or streets. One transaction: on any error the old
    network stays. The demo builds its own network.

    \b
    Example:
      gridmap network build --osm district.osm.pbf
    """
    from geo.errors import GridmapError
    from geo.network import MAX_DOOR_M
    from importers.osm_streets import build_network
    from importers.run import connect

    conn = connect(_owner_url(_settings()))
    try:
        with conn, conn.cursor() as cur:
            counts = build_network(cur, osm)
    except GridmapError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        conn.close()
    click.echo(
        f"walking network: {counts['edges']:,} edges from {counts['streets']:,} streets "
        f"({counts['incomplete']:,} cut at the file's edge and {counts['not_walkable']:,} not "
        f"walkable left out); {counts['entrances']:,} entrances"
    )
    if counts["unreached"]:
        click.echo(
            f"warning: {counts['unreached']:,} buildings or offices are more than "
            f"{MAX_DOOR_M:.0f} m from every street in the file: they have no entrance, and "
            "routes list their households as not walkable", err=True,
        )  # fmt: skip


def _add_importers() -> None:
    from importers.commands import import_group
    from importers.export import export_group

    main.add_command(import_group)
    main.add_command(export_group)


_add_importers()
main.add_command(grids_group)


@main.group("map")
def map_group() -> None:
    """Maps as self-contained HTML files: they open from disk with no internet."""


@map_group.command("coverage")
@click.option("--scope", required=True, help="Area code: district, subdistrict, community, grid "
              "or micro-grid (e.g. 310106015).")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write.")  # fmt: skip
@click.option("--level", default="GRID", show_default=True, type=click.Choice(
    ["GRID", "MICRO_GRID", "BUILDING"], case_sensitive=False),
    help="The layer shown when the map opens (the others are a click away).")  # fmt: skip
@click.option("--as-of", "as_of", default=None, help="Count coverage as of this day "
              "(YYYY-MM-DD) [today].")  # fmt: skip
@click.option("--worker", "code", default=None, help="Draw as this worker (staff number): its "
              "role and areas, overdue households included where it may see them. Without it, "
              "the map the public may see.")  # fmt: skip
def map_coverage(scope: str, output: Path, level: str, as_of: str | None, code: str | None) -> None:
    """Write the visit-coverage map of an area: grids, micro-grids and buildings coloured by
    the share of households contacted within their cadence, with a legend. Leaflet and every
    other asset are written into the file, so it works on a machine with no internet.

    \b
    Example:
      gridmap map coverage --scope 310106015 -o coverage.html --worker JA015-GC-0001
    """
    from api.maps import coverage_html, parse_day

    _write_map(output, code, lambda settings, engine, caller: coverage_html(
        settings, engine, caller, scope=scope, level=level.upper(),
        as_of=parse_day(as_of, "--as-of"), self_contained=True,
    ))  # fmt: skip


@map_group.command("jobs")
@click.option("--scope", required=True, help="Area code: district, subdistrict, community, grid "
              "or micro-grid (e.g. 310106015).")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write.")  # fmt: skip
@click.option("--max-distance", "max_distance", default=None, metavar="METRES",
              help="How far a proposal may send a seeker, and how far around the area "
              "merchants are drawn [1500].")  # fmt: skip
@click.option("--worker", "code", default=None, help="Draw as this worker (staff number): its "
              "role and areas, seekers and proposed matches included where it may see them. "
              "Without it, what the public may see: merchants, openings, offers.")  # fmt: skip
def map_jobs(scope: str, output: Path, max_distance: str | None, code: str | None) -> None:
    """Write the jobs map of an area: merchants by category with their openings, offers, and
    (for grid staff) the job seekers at home with the optimal proposals as lines coloured by
    score. Leaflet and every other asset are written into the file, so it works on a machine
    with no internet.

    \b
    Example:
      gridmap map jobs --scope 310106015 -o jobs.html --worker JA015-GC-0001
    """
    from api.job_maps import jobs_html, parse_distance

    _write_map(output, code, lambda settings, engine, caller: jobs_html(
        settings, engine, caller, scope=scope,
        max_distance=parse_distance(max_distance, "--max-distance"), self_contained=True,
    ))  # fmt: skip


@map_group.command("hotspots")
@click.option("--scope", required=True, help="Area code: district, subdistrict, community, grid "
              "or micro-grid (e.g. 310106015).")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write.")  # fmt: skip
@click.option("--from", "first_day", default=None, metavar="YYYY-MM-DD",
              help="The first day of the window [30 days before --to].")  # fmt: skip
@click.option("--to", "last_day", default=None, metavar="YYYY-MM-DD",
              help="The last day of the window, included [today].")  # fmt: skip
@click.option("--cell", default="HEX", show_default=True, type=click.Choice(
    ["GRID", "MICRO_GRID", "HEX"], case_sensitive=False), help="The cells cases are counted in.")
@click.option("--hex-meters", "hex_meters", default=None, metavar="METRES",
              help="HEX: a hexagon's edge, 25 to 2000 [150].")  # fmt: skip
@click.option("--category", "categories", multiple=True, help="Only cases of this category "
              "code (repeat for more) [all].")  # fmt: skip
@click.option("--worker", "code", default=None, help="Draw as this worker (staff number): its "
              "role and areas, the cases it may see as a heat map and markers. Without it, what "
              "the public may see: the hot and cold cells, no case, no small count.")  # fmt: skip
def map_hotspots(
    scope: str, output: Path, first_day: str | None, last_day: str | None, cell: str,
    hex_meters: str | None, categories: tuple[str, ...], code: str | None,
) -> None:  # fmt: skip
    """Write the case-hotspot map of an area: cells coloured by their Getis-Ord Gi*
    confidence (hot and cold spots) with their trend against the windows before, and, for
    staff, the cases as a heat map and clustered markers. Leaflet and every other asset are
    written into the file, so it works on a machine with no internet.

    \b
    Example:
      gridmap map hotspots --scope 310106015 -o hotspots.html --worker JA015-GC-0001
    """
    from api.hotspot_maps import hotspots_html, parse_hex_meters
    from api.maps import parse_day

    _write_map(output, code, lambda settings, engine, caller: hotspots_html(
        settings, engine, caller, scope=scope, first_day=parse_day(first_day, "--from"),
        last_day=parse_day(last_day, "--to"), cell=cell.upper(),
        hex_m=parse_hex_meters(hex_meters, "--hex-meters"),
        categories=[c.upper() for c in categories] or None, self_contained=True,
    ))  # fmt: skip


def _write_map(output: Path, code: str | None, draw: Callable[..., str]) -> None:
    """Draw a map as ``--worker`` (the public without it) into a self-contained file; bad
    input is an error naming the option, and no file is written."""
    page = _as_caller(code, draw)
    output.write_text(page, encoding="utf-8")
    who = f"as {code}" if code else "as the public sees it"
    click.echo(f"wrote {output} ({len(page) // 1024} KiB, {who})")


def _as_caller(code: str | None, work: Callable[..., T]) -> T:
    """``work(settings, engine, caller)`` as the worker ``code`` (the public when None); its
    errors (``GridmapError``, missing map assets) end the command with their message."""
    from api.auth import caller_of
    from geo.access import PUBLIC
    from geo.db import make_engine
    from geo.errors import GridmapError
    from maps.assets import AssetsMissing

    settings = _settings()
    caller = caller_of(_worker(code)) if code else PUBLIC
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        return work(settings, engine, caller)
    except (GridmapError, AssetsMissing) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@main.command("route")
@click.option("--worker", "code", required=True, help="The block head's staff number (e.g. "
              "JA015-WG-0001). The route is read as that worker, and recorded in the audit "
              "log as read by them.")  # fmt: skip
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD",
              help="The day [today in the worker's subdistrict].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--map", "map_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the route map to this self-contained HTML file.")  # fmt: skip
@click.option("--gpx", "gpx_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the route as GPX, for a phone's map app.")  # fmt: skip
def route(
    code: str, day: str | None, as_json: bool, map_file: Path | None, gpx_file: Path | None
) -> None:
    """Print a block head's walking route for a day: the stops in order with their arrival
    times and the metres walked, the way back, and the households due that it leaves out and
    why. It is the worker's saved plan for the day; when there is none, one is planned with
    the defaults and saved first, so GraphQL (walkingRoute), the map and the GPX file show
    the same route.

    \b
    Example:
      gridmap route --worker JA015-WG-0001 --date 2026-12-02 --map route.html --gpx route.gpx
    """
    from api.maps import parse_day
    from api.route_maps import route_data, route_gpx, route_html
    from maps.assets import check_installed

    def fetch(settings: Settings, engine: Engine, caller: Caller) -> tuple[Route, str | None]:
        if map_file:
            check_installed()  # before planning: a map that cannot be drawn saves nothing
        found = route_data(
            engine=engine, caller=caller, worker=code, day=parse_day(day, "--date"),
            settings=settings.route_settings(), skipped_shown=None,
        )  # fmt: skip
        return found, route_html(settings, found, self_contained=True) if map_file else None

    found, page = _as_caller(code, fetch)
    click.echo(json.dumps(_route_json(found), indent=2, ensure_ascii=False) if as_json
               else _route_table(found))  # fmt: skip
    if map_file and page:
        map_file.write_text(page, encoding="utf-8")
        click.echo(f"wrote {map_file}", err=as_json)  # stdout stays JSON
    if gpx_file:
        gpx_file.write_text(route_gpx(found), encoding="utf-8")
        click.echo(f"wrote {gpx_file}", err=as_json)


def _route_table(route: Route) -> str:
    """The route as a person reads it: a line per stop, the way back, what is left out."""
    zone = ZoneInfo(route.timezone)
    head = f"Walking route of {route.worker_code} on {route.day:%Y-%m-%d (%A)}, from {route.start}"
    head += " and back" + (
        f"; planned {route.planned_at.astimezone(zone):%Y-%m-%d %H:%M}" if route.planned_at else ""
    )
    lines = [head]
    if route.stops:
        width = max(len(s.household_code) for s in route.stops)
        lines.append(f"{'#':>3}  arrives  {'household':<{width}}  class  {'leg m':>6}")
        lines += [
            f"{s.order:>3}  {s.arrival_at.astimezone(zone):%H:%M}    {s.household_code:<{width}}"
            f"  {s.household_class:<5}  {s.leg_m:>6,.0f}"
            for s in route.stops
        ]
        lines.append(f"back to {route.start}: {route.return_m:,.0f} m; total "
                     f"{route.total_m:,.0f} m ({route.total_m / 1000:.1f} km)")  # fmt: skip
    if route.reason:
        lines.append(f"no stops: {route.reason}")
    if route.skipped:
        lines.append(f"skipped ({len(route.skipped)}):")
        lines += [f"  {s.household_code}  {s.reason}" for s in route.skipped]
    return "\n".join(lines)


def _route_json(route: Route) -> dict[str, Any]:
    """camelCase as in GraphQL's ``walkingRoute``; households by code, stops with their door."""
    return {
        "worker": route.worker_code, "date": route.day.isoformat(), "start": route.start,
        "plannedAt": route.planned_at.isoformat() if route.planned_at else None,
        "stops": [{"order": s.order, "household": s.household_code,
                   "householdClass": s.household_class, "arrivalAt": s.arrival_at.isoformat(),
                   "legMeters": s.leg_m, "lon": s.lon, "lat": s.lat} for s in route.stops],
        "returnMeters": route.return_m, "totalMeters": route.total_m,
        "skipped": [{"household": s.household_code, "reason": s.reason} for s in route.skipped],
        "reason": route.reason, "path": json.loads(route.path) if route.path else None,
    }  # fmt: skip


@main.command()
@click.option("--host", default=None, help="Interface to listen on [HOST or 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [PORT or 8000].")
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default="one per core",
    help="Worker processes (each has its own rate limits and connection pools).",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API, GraphiQL and the maps with uvicorn."""
    import uvicorn

    settings = _settings()
    settings.require_database()
    host = host or settings.host
    port = port or settings.port
    click.echo(f"gridmap on http://{host}:{port}/  (GraphiQL: http://{host}:{port}/graphql)")
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="info")  # fmt: skip


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option("--check", is_flag=True, help="Exit 1 if schema.graphql differs from the code.")
def schema(output: Path | None, check: bool) -> None:
    """Print the GraphQL schema (SDL), as committed in schema.graphql."""
    from api.schema import sdl

    text = sdl()
    if check:
        committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
        if committed != text:
            click.echo("schema.graphql is out of date: run `gridmap schema -o schema.graphql`",
                       err=True)  # fmt: skip
            sys.exit(1)
        click.echo("schema.graphql is up to date")
    elif output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
