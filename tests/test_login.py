"""Browsers log in with a staff number and password and get a cookie session: HttpOnly, SameSite,
CSRF-protected for anything that changes state, ended by logout and by revoking the worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import as_role
from pydantic import ValidationError
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from geo.demo import DEMO_PASSWORD
from geo.workers import revoke_tokens, worker_by_code

COUNT = "{ households(first: 500) { totalCount } }"


def browser(app_client: TestClient) -> TestClient:
    """A browser of its own (its own cookie jar) on the shared demo app."""
    return TestClient(app_client.app, follow_redirects=False)


def log_in(
    client: TestClient, code: str, password: str = DEMO_PASSWORD, next_path: str | None = None
) -> Any:
    """Fill in and submit the login form as a browser does."""
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    fields = {"code": code, "password": password, "csrf_token": token[1]}
    if next_path is not None:
        fields["next"] = next_path
    return client.post("/login", data=fields)


def set_cookies(response: Any) -> dict[str, str]:
    """name: the whole Set-Cookie header, lower-cased."""
    return {h.split("=", 1)[0]: h.lower() for h in response.headers.get_list("set-cookie")}


def graphql(client: TestClient, query: str, **headers: str) -> Any:
    return client.post("/graphql", json={"query": query}, headers=headers)


@pytest.fixture
def worker_code(tokens: dict[str, Any]) -> str:
    return tokens["grid_worker"]["worker"]


def test_the_login_page_is_a_plain_form(app_client: TestClient) -> None:
    page = browser(app_client).get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for part in ('method="post"', 'name="code"', 'type="password"', 'name="csrf_token"', "登录"):
        assert part in page.text
    assert "gridmap_login" in set_cookies(page)  # the login form's own CSRF token


def test_a_wrong_password_gets_the_form_again_and_no_session(
    app_client: TestClient, worker_code: str
) -> None:
    b = browser(app_client)
    for code in (worker_code, "NO-SUCH-WORKER"):
        answer = log_in(b, code, "not-the-password")
        assert answer.status_code == 401
        assert "Wrong staff number or password" in answer.text  # the same for both
        assert "gridmap_session" not in set_cookies(answer)
    assert 'href="/login"' in b.get("/").text


def test_a_login_without_the_forms_token_is_refused(
    app_client: TestClient, worker_code: str
) -> None:
    b = browser(app_client)
    answer = b.post(
        "/login", data={"code": worker_code, "password": DEMO_PASSWORD, "csrf_token": "forged"}
    )
    assert answer.status_code == 403 and "gridmap_session" not in set_cookies(answer)


def test_a_session_sees_what_its_worker_may_see(
    app_client: TestClient, tokens: dict[str, Any], worker_code: str
) -> None:
    b = browser(app_client)
    answer = log_in(b, worker_code, next_path="/graphql")
    assert answer.status_code == 303 and answer.headers["location"] == "/graphql"
    cookies = set_cookies(answer)
    assert "httponly" in cookies["gridmap_session"]
    assert "samesite=lax" in cookies["gridmap_session"]
    assert "secure" not in cookies["gridmap_session"]  # development: plain http works
    assert "httponly" not in cookies["csrftoken"]  # GraphiQL reads it
    landing = b.get("/")
    assert worker_code in landing.text and 'action="/logout"' in landing.text

    refused = graphql(b, COUNT)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "X-CSRFToken" in refused.json()["errors"][0]["message"]
    wrong = graphql(b, COUNT, **{"X-CSRFToken": "guess"})
    assert wrong.status_code == 403

    csrf = b.cookies["csrftoken"]
    mine = graphql(b, COUNT, **{"X-CSRFToken": csrf})
    assert mine.status_code == 200, mine.text
    with_token = as_role(app_client, tokens, "grid_worker").post("/graphql", json={"query": COUNT})
    public = graphql(browser(app_client), COUNT)
    assert mine.json() == with_token.json()
    assert mine.json() != public.json()
    # Reading needs no token: a GET cannot change anything.
    got = b.get("/graphql", params={"query": COUNT})
    assert got.json() == mine.json()

    ide = b.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()


def test_a_bearer_token_needs_no_csrf_token(client: TestClient) -> None:
    answer = graphql(client, "{ __typename }")
    assert answer.status_code == 200 and answer.json() == {"data": {"__typename": "Query"}}


def test_only_paths_of_this_site_are_followed_after_login(
    app_client: TestClient, worker_code: str
) -> None:
    for target, expected in [
        ("/maps/grid?code=1#x", "/maps/grid?code=1#x"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ]:
        answer = log_in(browser(app_client), worker_code, next_path=target)
        assert answer.status_code == 303 and answer.headers["location"] == expected, target


def test_logout_ends_the_session(app_client: TestClient, worker_code: str) -> None:
    b = browser(app_client)
    log_in(b, worker_code)
    csrf = b.cookies["csrftoken"]
    assert b.post("/logout").status_code == 403  # without the form's token
    assert graphql(b, COUNT, **{"X-CSRFToken": csrf}).status_code == 200
    out = b.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert "gridmap_session" in set_cookies(out)  # expired
    assert 'href="/login"' in b.get("/").text
    public = graphql(browser(app_client), COUNT).json()
    assert graphql(b, COUNT).json() == public  # no session, no CSRF token needed: the public


def test_failed_logins_are_throttled(demo_db: Any, worker_code: str) -> None:
    with TestClient(create_app(demo_db.settings()), follow_redirects=False) as b:
        for _ in range(10):
            assert log_in(b, worker_code, "wrong").status_code == 401
        throttled = log_in(b, worker_code)  # even the right password, for now
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert "gridmap_session" not in set_cookies(throttled)


@pytest.fixture
def fresh_app(fresh_db: Any) -> Iterator[TestClient]:
    with TestClient(create_app(fresh_db.settings()), follow_redirects=False) as c:
        yield c


def test_revoking_a_worker_ends_its_sessions(
    fresh_app: TestClient, fresh_db: Any, tokens: dict[str, Any], worker_code: str
) -> None:
    assert log_in(fresh_app, worker_code).status_code == 303
    csrf = {"X-CSRFToken": fresh_app.cookies["csrftoken"]}
    assert graphql(fresh_app, COUNT, **csrf).status_code == 200
    engine = create_engine(fresh_db.owner_url)
    try:
        with engine.begin() as connection:
            revoke_tokens(connection=connection, code=worker_code)
            worker_id = worker_by_code(connection=connection, code=worker_code)["id"]
    finally:
        engine.dispose()
    # The app checks a worker again after a few seconds (CALLER_CACHE_SECONDS): skip the wait.
    fresh_app.app.state.auth.forget(worker_id)  # type: ignore[attr-defined]
    ended = graphql(fresh_app, COUNT, **csrf)
    assert ended.status_code == 401
    assert ended.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert 'href="/login"' in fresh_app.get("/").text  # the cookie was cleared with the 401


def test_production_needs_a_real_secret_key() -> None:
    with pytest.raises(ValidationError, match="GRIDMAP_SECRET_KEY"):
        Settings(env="production", secret_key="short")
    key = "3f9a" * 16
    assert Settings(env="production", secret_key=key).secret_key == key
