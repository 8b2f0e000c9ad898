"""The `gridmap` command line: the local database, the demo district, the server, the schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from api.settings import ROOT, Settings


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
    from geo.migrate import upgrade

    upgrade(_owner_url(_settings()), revision)
    click.echo(f"schema at {revision}")


@db.command("reset")
@click.confirmation_option(prompt="Drop every row of the local database?")
def db_reset() -> None:
    """Drop and recreate the local database, then migrate (the demo is reloaded by `demo`)."""
    from api import cluster
    from geo.migrate import upgrade

    cluster.reset()
    upgrade(_owner_url(_settings()))
    click.echo("database recreated and migrated")


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

    summary = load_demo(
        url=_owner_url(_settings()), households=households, seed=seed, reset=reset,
        progress=not quiet,
    )  # fmt: skip
    click.echo(summary)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [HOST or 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [PORT or 8000].")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
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
