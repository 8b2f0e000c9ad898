"""The raw floor of the side-by-side benchmark: each answer built by one SQL statement.

A bare Starlette app with one route per query (``POST /q1`` … ``/q4``): it reads ``variables``
from the JSON body (the same body gridmap gets), runs ``bench/queries/floor/qN.sql`` through
psycopg2 (a small pool, in a thread pool) and returns the JSON text PostgreSQL built, as is. It
connects as the tables' owner: no authentication, no row-level security, no audit, no GraphQL —
the least any server can do to give the same answer over HTTP.

    PGHOST=127.0.0.1 PGPORT=… PGUSER=gridmap PGPASSWORD=… PGDATABASE=gridmap_bench \\
        .venv/bin/python bench/floor.py --port 8100

``bench/side_by_side.py`` starts it by itself.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson
import psycopg2.pool
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

QUERIES = Path(__file__).resolve().parent / "queries" / "floor"
POOL_SIZE = 10  # as gridmap's default pool_size and PostGraphile's default pool


def create_app(url: str, pool_size: int = POOL_SIZE) -> Starlette:
    statements = {p.stem: p.read_text(encoding="utf-8") for p in sorted(QUERIES.glob("q*.sql"))}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # minconn = maxconn: psycopg2's pool closes connections returned beyond minconn.
        app.state.pool = psycopg2.pool.ThreadedConnectionPool(pool_size, pool_size, url)
        # At most pool_size statements at once: no thread ever finds the pool empty.
        app.state.limiter = anyio.CapacityLimiter(pool_size)
        try:
            yield
        finally:
            app.state.pool.closeall()

    def run(pool: psycopg2.pool.ThreadedConnectionPool, sql: str, params: dict[str, Any]) -> str:
        conn = pool.getconn()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                row = cur.fetchone()
            return row[0] if row else "null"
        finally:
            pool.putconn(conn)

    async def answer(request: Request) -> Response:
        name = request.path_params["name"]
        sql = statements.get(name)
        if sql is None:
            return JSONResponse({"error": f"no query {name!r}"}, 404)
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return JSONResponse({"error": "body is not JSON"}, 400)
        variables = body.get("variables") or {}
        text = await anyio.to_thread.run_sync(
            partial(run, request.app.state.pool, sql, variables),
            limiter=request.app.state.limiter,
        )
        return Response(text, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response("ok")

    routes = [Route("/healthz", healthz), Route("/{name}", answer, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default="", help="libpq URL of the tables' owner (default: libpq's PG* variables)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.url, args.pool_size), host=args.host, port=args.port,
        log_level="warning", access_log=False,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
