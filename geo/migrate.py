"""Schema migrations (Alembic), run as the tables' owner."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Migrate the database at ``url``; ``secret_key`` seals personal data that a migration
    moves (defaults to the settings' key)."""
    config = alembic_config(url)
    config.attributes["secret_key"] = secret_key
    command.upgrade(config, revision)


def secret_key_of(config: Config) -> str:
    """The key a migration seals data with: the caller's, else the settings' key."""
    key = config.attributes.get("secret_key")
    if key:
        return key
    from api.settings import Settings  # the alembic command line: settings as the app sees them

    return Settings().secret_key


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
