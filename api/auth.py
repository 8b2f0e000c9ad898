"""Who is calling: Bearer tokens (signed JWT) for clients, a cookie session for browsers.

A token names the worker, its role and scope, and the worker's token epoch: revoking a worker's
tokens bumps the epoch, so every token issued before stops working at once. Each request checks
the worker against the database (cached for a few seconds), so the scope applied is the current
one. No token and no session: the public role.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from api.settings import Settings
from geo import workers as worker_queries
from geo.access import PUBLIC, Caller
from geo.errors import GridmapError

ALGORITHM = "HS256"
ISSUER = "gridmap"
DEFAULT_TTL = dt.timedelta(hours=12)
CALLER_CACHE_SECONDS = 5.0
VERIFIED_TOKENS = 10_000  # forgotten all at once when full: a bound, not an eviction policy
SESSION_KEY = "gridmap"

_hasher = PasswordHasher()


class Unauthenticated(GridmapError):
    """The credentials are missing a part, forged, expired or revoked: HTTP 401."""

    code = "UNAUTHENTICATED"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        _hasher.hash(password)  # the same time whether the worker exists or not
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(
    settings: Settings, worker: dict[str, Any], *, ttl: dt.timedelta = DEFAULT_TTL
) -> str:
    """A signed token for a worker row of ``geo.workers.worker_for_auth``."""
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": ISSUER,
        "sub": worker["code"],
        "wid": str(worker["id"]),
        "role": worker["role"],
        "scope": list(worker["areas"]),
        "unit": worker["unit_code"],
        "ep": worker["token_epoch"],
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "wid", "ep"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired: ask for a new one") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"the token is not valid ({exc})") from None


@dataclass
class _Cached:
    at: float
    worker: dict[str, Any] | None


class Authenticator:
    """Turns a request's credentials into a ``Caller``; one per app."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._cache: dict[uuid.UUID, _Cached] = {}
        # Tokens whose signature was checked: a client sends the same one with every request,
        # and checking it costs more than the rest of a small query. Expiry is checked anew.
        self._verified: dict[str, dict[str, Any]] = {}

    async def caller(self, conn: HTTPConnection) -> Caller:
        remote = conn.client.host if conn.client else None
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            return await self.from_token(token.strip(), remote=remote)
        session = conn.session.get(SESSION_KEY) if "session" in conn.scope else None
        if session:
            return await self._current(uuid.UUID(session["wid"]), session["ep"], remote=remote)
        return PUBLIC

    async def from_token(self, token: str, *, remote: str | None = None) -> Caller:
        claims = self._verified.get(token)
        if claims is None or claims["exp"] <= time.time():
            claims = decode_token(self.settings, token)
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = claims
        try:
            worker_id = uuid.UUID(claims["wid"])
        except ValueError:
            raise Unauthenticated("the token names no worker") from None
        return await self._current(worker_id, claims["ep"], remote=remote)

    async def _current(self, worker_id: uuid.UUID, epoch: int, *, remote: str | None) -> Caller:
        worker = await self.worker(worker_id)
        if worker is None:
            raise Unauthenticated("the worker of these credentials no longer exists")
        if worker["token_epoch"] != epoch:
            raise Unauthenticated("these credentials were revoked: log in again")
        return caller_of(worker, remote=remote)

    async def worker(self, worker_id: uuid.UUID) -> dict[str, Any] | None:
        cached = self._cache.get(worker_id)
        now = time.monotonic()
        if cached is None or now - cached.at > CALLER_CACHE_SECONDS:
            found = await run_in_threadpool(self._load, worker_id)
            cached = self._cache[worker_id] = _Cached(now, found)
        return cached.worker

    def forget(self, worker_id: uuid.UUID) -> None:
        self._cache.pop(worker_id, None)

    def _load(self, worker_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            return worker_queries.worker_for_auth(connection=connection, worker_id=worker_id)


def caller_of(worker: dict[str, Any], *, remote: str | None = None) -> Caller:
    return Caller(
        role=worker_queries.caller_role(worker["role"]),
        worker_id=worker["id"],
        worker_code=worker["code"],
        areas=tuple(worker["areas"]),
        unit_code=worker["unit_code"],
        remote=remote,
    )
