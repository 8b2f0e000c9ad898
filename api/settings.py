"""One settings object for the app, the CLI and the tests.

Values come from the environment (prefix ``GRIDMAP_``), then from ``var/gridmap.env``, which
``gridmap db up`` writes for the project-local cluster, so the CLI and ``make run`` agree with no
variables set. The usual ``DATABASE_URL``, ``HOST`` and ``PORT`` are honoured too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo.routes import RouteSettings

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
ENV_FILE = VAR / "gridmap.env"
DEVELOPMENT_SECRET = "development-only-secret-key-never-use-it"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDMAP_", env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = "development"
    # The app serves requests as this role: it owns nothing (row-level security keys on it).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GRIDMAP_DATABASE_URL", "DATABASE_URL")
    )
    # Migrations and the demo loader run as the tables' owner.
    owner_database_url: str | None = None
    secret_key: str = DEVELOPMENT_SECRET
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("GRIDMAP_HOST", "HOST"))
    port: int = Field(default=8000, validation_alias=AliasChoices("GRIDMAP_PORT", "PORT"))
    timezone: str = "Asia/Shanghai"
    pool_size: int = 10
    # The public sees no count of fewer households than this (aggregates, hotspot cells …).
    k_anonymity: int = 10
    # Requests per caller (worker, or the public's address): a steady rate, and bursts.
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # Answer the common reads with one SQL statement each (api.compiled); off: resolvers only.
    compiled_queries: bool = True
    # A base map under the coverage maps: a tile URL template ({z}/{x}/{y}) on a server the
    # grid center reaches (often an intranet one), and its attribution. None: no base map.
    map_tiles: str | None = None
    map_tiles_attribution: str = ""
    # Walking routes: minutes per visit (a first visit takes longer), a block head's pace, and
    # how long the route solver may search.
    route_visit_minutes: int = Field(default=15, ge=1, le=240)
    route_first_visit_minutes: int = Field(default=30, ge=1, le=240)
    route_walk_metres_per_minute: float = Field(default=70.0, gt=0)
    route_time_limit_seconds: float = Field(default=1.0, gt=0, le=60)
    # The caseReported subscription looks for new cases this often (seconds).
    case_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    def route_settings(self) -> RouteSettings:
        return RouteSettings(
            visit_minutes=self.route_visit_minutes,
            first_visit_minutes=self.route_first_visit_minutes,
            walk_metres_per_minute=self.route_walk_metres_per_minute,
            time_limit_seconds=self.route_time_limit_seconds,
        )

    @model_validator(mode="after")
    def _owner_defaults_to_app_url(self) -> Settings:
        if self.owner_database_url is None:
            self.owner_database_url = self.database_url
        return self

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Settings:
        if self.env != "development" and (
            self.secret_key == DEVELOPMENT_SECRET or len(self.secret_key) < 32
        ):
            raise ValueError(
                f"GRIDMAP_SECRET_KEY: with GRIDMAP_ENV={self.env} the secret key must be set to a "
                "random value of at least 32 characters (it signs tokens and seals ID numbers); "
                "`gridmap db up` writes one to var/gridmap.env"
            )
        return self

    def require_database(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "no database configured: run `gridmap db up` (or `make run`) to start the local "
                "PostGIS cluster, or set DATABASE_URL to an existing PostGIS server"
            )
        return self.database_url
