"""The Starlette application factory. Importing this module does no I/O; the engine lives in the
lifespan and is disposed of at shutdown."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from api.auth import Authenticator
from api.case_photos import case_photo
from api.errors import unavailable_response
from api.graphql import JSONResponse, graphql_endpoint
from api.hotspot_maps import hotspots_page
from api.job_maps import jobs_page
from api.limits import RateLimiter
from api.maps import DEMO_SCOPE, coverage_page
from api.open311 import open311_request, open311_requests, open311_services
from api.route_maps import DEMO_WORKER, route_gpx_file, route_page
from api.schema import sdl
from api.settings import ROOT, Settings
from api.subscriptions import graphql_socket
from api.web import (
    Refused,
    login,
    login_status,
    login_throttles,
    logout,
    refused_response,
    session_middleware,
)
from geo.db import make_engine
from geo.pii import Vault
from maps.assets import NODE_MODULES

LANDING = Path(__file__).with_name("landing.html")
# Map pages add themselves here as (path, title) so the landing page links them.
MAP_PAGES: list[tuple[str, str]] = [
    (f"/maps/coverage?scope={DEMO_SCOPE}&level=GRID", "走访覆盖图 Visit coverage map"),
    (f"/maps/jobs?scope={DEMO_SCOPE}&maxDistanceMeters=1500", "就业匹配图 Jobs nearby map"),
    (f"/maps/route?worker={DEMO_WORKER}", "步行路线图 A block head's walking route today"),
    (f"/maps/hotspots?scope={DEMO_SCOPE}", "案件热点图 Case hotspots map (the last 30 days)"),
]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = make_engine(settings.require_database(), pool_size=settings.pool_size)
        # Compiled queries (api.compiled) manage their transactions in their statements.
        app.state.reader = make_engine(
            settings.require_database(), pool_size=settings.pool_size, autocommit=True
        )
        app.state.auth = Authenticator(settings, app.state.engine)
        app.state.vault = Vault(settings.secret_key)
        app.state.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        app.state.login_throttles = login_throttles()
        try:
            yield
        finally:
            app.state.engine.dispose()
            app.state.reader.dispose()

    routes = [
        Route("/", landing),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        # Subscriptions: a WebSocket at the same path (graphql-transport-ws, api/subscriptions.py).
        WebSocketRoute("/graphql", graphql_socket),
        Route("/schema.graphql", schema_sdl),
        Route("/docs", docs),
        Route("/healthz", healthz),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/maps/coverage", coverage_page),
        Route("/maps/jobs", jobs_page),
        Route("/maps/route", route_page),
        Route("/maps/hotspots", hotspots_page),
        Route("/routes/{workerCode}/{date}.gpx", route_gpx_file),
        Route("/cases/{number}/photos/{photoId}", case_photo),
        # Open311 GeoReport v2, in JSON or XML (api/open311.py).
        Route("/open311/v2/services.{format}", open311_services),
        Route("/open311/v2/requests.{format}", open311_requests, methods=["GET", "POST"]),
        Route("/open311/v2/requests/{number}.{format}", open311_request),
        # Leaflet and the rest, from the npm packages `make assets` installs (maps/assets.py).
        Mount("/maps/assets", StaticFiles(directory=NODE_MODULES, check_dir=False)),
    ]
    return Starlette(
        routes=routes,
        middleware=[session_middleware(settings)],
        # The database away (a restart): 503 with a plain message, not a 500 (api.errors).
        exception_handlers={
            Refused: refused_response,
            DBAPIError: unavailable_response,
            PoolTimeout: unavailable_response,
        },
        lifespan=lifespan,
    )


async def landing(request: Request) -> Response:
    maps = "".join(
        f'<li><a href="{html.escape(path)}">{html.escape(title)}</a></li>'
        for path, title in MAP_PAGES
    )
    page = LANDING.read_text(encoding="utf-8")
    page = page.replace("{maps}", maps or "<li>No map pages yet.</li>")
    return HTMLResponse(page.replace("{login}", await login_status(request)))


async def schema_sdl(request: Request) -> Response:
    return PlainTextResponse(sdl())


async def docs(request: Request) -> Response:
    readme = ROOT / "README.md"
    body = readme.read_text(encoding="utf-8") if readme.exists() else "README.md is missing."
    return PlainTextResponse(body, media_type="text/markdown; charset=utf-8")


async def healthz(request: Request) -> Response:
    def ping() -> None:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": False}, 503)
    return JSONResponse({"status": "ok", "database": True})
