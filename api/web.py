"""Browsers: the login page, the cookie session it starts and CSRF protection for that session;
and the guard every route runs to learn who is calling (credentials, CSRF, rate limit).

A cookie is sent by the browser on its own, even for a request another site makes, so a
state-changing request of a cookie session must prove it comes from our pages: it carries the
session's CSRF token, which only our pages can read (header ``X-CSRFToken``, as GraphiQL sends
the ``csrftoken`` cookie, or form field ``csrf_token``). A Bearer token is never added by a
browser on its own, and an anonymous request has nothing to abuse: neither needs one.
"""

from __future__ import annotations

import html
import math
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import SESSION_KEY, Unauthenticated, verify_password
from api.limits import BodyTooLarge, RateLimiter, read_body, retry_after
from api.settings import Settings
from geo.access import Caller
from geo.errors import NotFound
from geo.workers import worker_by_code

SESSION_COOKIE = "gridmap_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_COOKIE = "csrftoken"  # readable by our pages: GraphiQL sends it back as X-CSRFToken
CSRF_HEADER = "x-csrftoken"
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "gridmap_login"  # before a session exists: against login CSRF
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_BYTES = 16_384
LOGIN_PAGE = Path(__file__).with_name("login.html")


class Refused(Exception):
    """A request refused before it does anything: an HTTP status, a stable code and a message a
    person can act on. Routes raise it; the app's handler answers it as GraphQL-style JSON."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        return JSONResponse(body, self.status, headers=self.headers)


async def refused_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return exc.response()


def session_middleware(settings: Settings) -> Middleware:
    """Signed cookie sessions: HttpOnly, SameSite=Lax, Secure in production, 12 hours."""
    return Middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.env == "production",
    )


def login_of(request: Request) -> dict[str, Any] | None:
    """The session's login (``wid``, ``ep``, ``csrf``), if a worker logged in."""
    if "session" not in request.scope:
        return None
    return request.session.get(SESSION_KEY)


def check_csrf(request: Request, submitted: str | None = None) -> None:
    """Refuse a state-changing request made with the cookie session alone unless it carries
    the session's CSRF token, in the header or as ``submitted`` (the form field)."""
    if request.method not in UNSAFE_METHODS or "authorization" in request.headers:
        return
    login = login_of(request)
    if not login:
        return
    sent = request.headers.get(CSRF_HEADER) or submitted or ""
    expected = login.get("csrf") or ""
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise Refused(
            403,
            "FORBIDDEN",
            "this request needs the CSRF token of your session (header X-CSRFToken, the value "
            "of the csrftoken cookie): reload the page, or log in again",
        )


async def authenticate(request: Request) -> Caller:
    """Who is calling: 401 for bad credentials (a revoked session is ended on the way), 403
    for a cookie session's state-changing request without its CSRF token."""
    check_csrf(request)
    try:
        return await request.app.state.auth.caller(request)
    except Unauthenticated as exc:
        if "authorization" not in request.headers:
            end_session(request)
        raise Refused(401, exc.code, exc.message) from None


def rate_limit(request: Request, caller: Caller, cost: int = 1) -> None:
    """Count ``cost`` requests against the caller: a worker by staff number (token or session),
    the public by client address. 429 with Retry-After when over."""
    if caller.worker_code:
        key = f"worker:{caller.worker_code}"
    else:
        key = f"ip:{request.client.host if request.client else '-'}"
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.take(key, cost)
    if wait:
        raise Refused(
            429,
            "RATE_LIMITED",
            f"too many requests: at most {limiter.rate:g} per second, {limiter.burst:g} at "
            f"once; retry in {retry_after(wait)} s",
            {"Retry-After": retry_after(wait)},
        )


async def request_caller(request: Request) -> Caller:
    """The guard of a route that answers as the caller (maps, exports, GPX): credentials,
    CSRF and the rate limit. Raises ``Refused``, which the app answers."""
    caller = await authenticate(request)
    rate_limit(request, caller)
    return caller


def end_session(request: Request) -> None:
    if "session" in request.scope:
        request.session.clear()


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site, else the landing page (an open
    redirect would let a link send a freshly logged-in user anywhere)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the first value of each field)."""
    try:
        body = await read_body(request, FORM_BYTES)
    except BodyTooLarge as exc:
        raise Refused(413, "PAYLOAD_TOO_LARGE", str(exc)) from None
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


# Failed logins: per staff number 10, then one a minute; per address 30, then one per 6 s (an
# office behind one address). Successful logins cost nothing.
def login_throttles() -> tuple[RateLimiter, RateLimiter]:
    return RateLimiter(1 / 60, 10), RateLimiter(1 / 6, 30)


def _secure(request: Request) -> bool:
    return request.app.state.settings.env == "production"


def _login_form(
    request: Request, *, status: int = 200, message: str = "", code: str = "", next_path: str = "/"
) -> Response:
    token = secrets.token_urlsafe(32)
    page = Template(LOGIN_PAGE.read_text(encoding="utf-8")).substitute(
        message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
        csrf=token,
        next=html.escape(next_path),
        code=html.escape(code),
    )
    response = HTMLResponse(page, status, headers=_PAGE_HEADERS)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="lax",
        secure=_secure(request),
    )  # fmt: skip
    return response


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def _worker_if_password(engine: Engine, code: str, password: str) -> dict[str, Any] | None:
    try:
        with engine.connect() as connection:
            worker: dict[str, Any] | None = worker_by_code(connection=connection, code=code)
    except NotFound:
        worker = None
    # verify_password takes as long without a worker: the answer tells nothing of the code.
    if not verify_password(worker["password_hash"] if worker else None, password):
        return None
    return worker


async def login(request: Request) -> Response:
    """GET: the form. POST: check the staff number and password, start the session."""
    if request.method == "GET":
        return _login_form(request, next_path=safe_next(request.query_params.get("next")))
    form = await read_form(request)
    code = form.get("code", "").strip()[:64]
    next_path = safe_next(form.get("next"))
    sent = form.get(CSRF_FIELD, "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        message = "此表单已过期，请重试。The form expired or cookies are off: please try again."
        return _login_form(request, status=403, message=message, code=code, next_path=next_path)

    by_code, by_address = request.app.state.login_throttles
    address = request.client.host if request.client else "-"
    wait = max(by_code.wait(code), by_address.wait(address))
    if wait:
        minutes = math.ceil(wait / 60)
        message = (
            f"登录失败次数过多，请 {minutes} 分钟后再试。Too many failed logins for this staff "
            f"number or from this address: try again in {minutes} minute(s)."
        )
        response = _login_form(request, status=429, message=message, code=code, next_path=next_path)
        response.headers["Retry-After"] = retry_after(wait)
        return response

    worker = await run_in_threadpool(
        _worker_if_password, request.app.state.engine, code, form.get("password", "")[:1024]
    )
    if worker is None:
        by_code.take(code)
        by_address.take(address)
        message = "工号或密码错误。Wrong staff number or password."
        return _login_form(request, status=401, message=message, code=code, next_path=next_path)

    csrf = secrets.token_urlsafe(32)
    request.session.clear()
    request.session[SESSION_KEY] = {
        "wid": str(worker["id"]),
        "ep": worker["token_epoch"],
        "csrf": csrf,
    }
    response = RedirectResponse(next_path, 303)
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=SESSION_MAX_AGE, path="/", samesite="lax",
        secure=_secure(request),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    """End the session (a form posted from our pages: CSRF-checked)."""
    form = await read_form(request)
    try:
        check_csrf(request, form.get(CSRF_FIELD))
    except Refused as exc:
        page = f'<!doctype html><meta charset="utf-8"><p>{html.escape(exc.message)}</p>'
        return HTMLResponse(page + '<p><a href="/">gridmap</a></p>', 403, headers=_PAGE_HEADERS)
    end_session(request)
    response = RedirectResponse("/", 303)
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


async def login_status(request: Request) -> str:
    """HTML for the landing page: who is logged in with a logout button, or a login link."""
    login = login_of(request)
    if login:
        auth = request.app.state.auth
        worker = await auth.worker(uuid.UUID(login["wid"]))
        if worker is not None and worker["token_epoch"] == login["ep"]:
            return (
                f"登录身份 Logged in as <strong>{html.escape(worker['name'])}</strong> "
                f"({html.escape(worker['code'])}, {html.escape(worker['role'].lower())})"
                '<form method="post" action="/logout" style="display:inline">'
                f'<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(login["csrf"])}">'
                ' <button type="submit">退出 Log out</button></form>'
            )
        end_session(request)
    return (
        '<a href="/login">登录 Log in</a> to see what your role may see; without logging in '
        "you see what the public sees."
    )
