"""caseReported: new cases pushed to a grid center's screen over a WebSocket at /graphql with the
graphql-transport-ws protocol, each once, only to those who may see them; credentials checked at
connection_init and again as the subscription goes on."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from conftest import ScratchDB, as_role, demo_tokens
from gq import gql, ok
from sqlalchemy import create_engine
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from test_cases import REPORT, a_point_in, grid_of
from test_family_files import owner
from test_login import browser, log_in

from api.app import create_app
from api.schema.subscription import LOOK_BACK, Accounted
from geo import cases as geo_cases
from geo.workers import revoke_tokens

PROTOCOL = "graphql-transport-ws"
SUBDISTRICT = "310106015"
WAIT = 5.0  # seconds before a test gives up waiting for a message
SUBSCRIBE = """subscription($scope: String!) { caseReported(scope: $scope) {
  id number state category reporterCode grid { code } microGrid { code }
  events { action toState workerCode } } }"""


def receive(ws: WebSocketTestSession, seconds: float = WAIT) -> dict[str, Any]:
    """The next message, or an error after ``seconds`` (the test client's own waits for ever)."""

    async def next_message() -> Any:
        with anyio.fail_after(seconds):
            return await ws._send_rx.receive()

    message = ws.portal.call(next_message)
    ws._raise_on_close(message)
    return json.loads(message["text"])


@contextmanager
def socket(
    client: TestClient, payload: dict[str, Any] | None = None, **headers: str
) -> Iterator[WebSocketTestSession]:
    """A socket past connection_init (with ``payload``) and its acknowledgement."""
    with client.websocket_connect("/graphql", subprotocols=[PROTOCOL], headers=headers) as ws:
        assert ws.accepted_subprotocol == PROTOCOL
        ws.send_json({"type": "connection_init", "payload": payload or {}})
        assert receive(ws) == {"type": "connection_ack"}
        yield ws


def bearer(tokens: dict[str, Any], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[role]['token']}"}


def subscribe(ws: WebSocketTestSession, id: str, scope: str, query: str = SUBSCRIBE) -> None:
    ws.send_json({"id": id, "type": "subscribe",
                  "payload": {"query": query, "variables": {"scope": scope}}})  # fmt: skip


def closed(ws: WebSocketTestSession) -> WebSocketDisconnect:
    """How the server closed the socket."""
    with pytest.raises(WebSocketDisconnect) as raised:
        receive(ws)
    return raised.value


def nothing_more(ws: WebSocketTestSession) -> None:
    """Nothing was sent before the answer to a ping."""
    ws.send_json({"type": "ping"})
    assert receive(ws) == {"type": "pong"}


class Polls:
    """Counts the finished polls of each scope, so a test knows when a subscription has taken
    stock of the cases already there, and when it has surely looked again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done: Counter[str] = Counter()
        self._changed = threading.Condition()
        real = geo_cases.reported_since

        def counted(**kwargs: Any) -> Any:
            try:
                return real(**kwargs)
            finally:
                with self._changed:
                    self.done[kwargs["scope"]] += 1
                    self._changed.notify_all()

        monkeypatch.setattr(geo_cases, "reported_since", counted)

    def wait(self, scope: str, count: int = 1) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.done[scope] >= count, WAIT), scope

    def looked_again(self, *scopes: str) -> None:
        """Wait until whatever each subscription found since this call was sent: a poll may be
        under way (and miss a case just reported), the next one finds it, and the one after
        begins when what that one found has been sent."""
        for scope in scopes:
            with self._changed:
                count = self.done[scope] + 3
            self.wait(scope, count)


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings(case_poll_seconds=0.02))) as public:
        yield public, demo_tokens(fresh_db)


def test_new_cases_are_pushed_to_those_who_may_see_them(
    app: tuple[TestClient, Any], fresh_db: ScratchDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    public, tokens = app
    polls = Polls(monkeypatch)
    worker = as_role(public, tokens, "grid_worker")
    grid = grid_of(fresh_db, tokens["grid_worker"]["worker"])
    other_grid = owner(fresh_db, "SELECT min(code) FROM grid WHERE code > %s", grid)[0][0]
    with (
        socket(public, bearer(tokens, "grid_center")) as center,
        socket(public, bearer(tokens, "department")) as department,
    ):
        subscribe(center, "district", SUBDISTRICT)
        subscribe(center, "other", other_grid)
        # A department sees a case from its dispatch to its unit on: not a new report.
        subscribe(department, "unit", grid)
        for scope in (SUBDISTRICT, other_grid, grid):
            polls.wait(scope)  # the demo's cases are there already: not new

        first, second = (
            ok(worker, REPORT, input={"category": category, "description": what,
                                      **a_point_in(fresh_db, grid)})["reportCase"]["case"]
            for category, what in (("EXPOSED_GARBAGE", "垃圾堆了三天"), ("NOISE", "夜间施工噪音"))
        )  # fmt: skip
        for case in (first, second):  # each once, in the order reported
            message = receive(center)
            assert message["type"] == "next" and message["id"] == "district", message
            pushed = message["payload"]["data"]["caseReported"]
            assert "errors" not in message["payload"]
            assert pushed["id"] == case["id"] and pushed["number"] == case["number"]
            assert pushed["state"] == "REPORTED" and pushed["grid"] == {"code": grid}
            assert pushed["microGrid"]["code"].startswith(grid)
            assert pushed["reporterCode"] == tokens["grid_worker"]["worker"]
            assert pushed["events"] == [
                {"action": "REPORT", "toState": "REPORTED",
                 "workerCode": tokens["grid_worker"]["worker"]}
            ]  # fmt: skip
        assert first["category"] == "EXPOSED_GARBAGE" and second["category"] == "NOISE"
        polls.looked_again(SUBDISTRICT, other_grid, grid)
        nothing_more(center)  # not again, and nothing in the other grid
        nothing_more(department)

        # Revoked credentials end the socket at the next poll, as they end the next request.
        center_code = tokens["grid_center"]["worker"]
        engine = create_engine(fresh_db.owner_url)
        try:
            with engine.begin() as connection:
                revoke_tokens(connection=connection, code=center_code)
        finally:
            engine.dispose()
        worker_id = owner(fresh_db, "SELECT id FROM worker WHERE code = %s", center_code)[0][0]
        public.app.state.auth.forget(uuid.UUID(str(worker_id)))  # not the 5 s cache's word
        ended = closed(center)
        assert ended.code == 4401 and "revoked" in ended.reason


def test_credentials_come_with_connection_init_or_the_handshake(
    app_client: TestClient, tokens: dict[str, Any]
) -> None:
    token = tokens["grid_center"]["token"]
    for payload in ({"Authorization": f"Bearer {token}"}, {"authorization": f"Bearer {token}"},
                    {"token": token}):  # fmt: skip
        with socket(app_client, payload) as ws:
            nothing_more(ws)
    with socket(app_client, {}, authorization=f"Bearer {token}") as ws:  # the handshake's
        nothing_more(ws)
    session = browser(app_client)
    log_in(session, tokens["grid_center"]["worker"])
    with socket(session) as ws:  # the browser's session cookie
        nothing_more(ws)

    def refused(payload: dict[str, Any], **headers: str) -> WebSocketDisconnect:
        with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL],
                                          headers=headers) as ws:  # fmt: skip
            ws.send_json({"type": "connection_init", "payload": payload})
            return closed(ws)

    nobody = refused({})  # the public has no subscriptions
    assert nobody.code == 4401 and "Authorization" in nobody.reason
    forged = refused({"Authorization": "Bearer not-a-token"})
    assert forged.code == 4401 and "not valid" in forged.reason
    assert refused({"Authorization": token}).code == 4401  # not "Bearer …"
    assert refused({}, authorization="Bearer not-a-token").code == 4401
    # Subscribing before connection_init: closed, as the protocol says.
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        subscribe(ws, "1", SUBDISTRICT)
        assert closed(ws).code == 4401
    # A page on another site cannot borrow a browser's session cookie.
    with (
        pytest.raises(WebSocketDisconnect),
        session.websocket_connect(
            "/graphql", subprotocols=[PROTOCOL], headers={"origin": "https://evil.example"}
        ),
    ):
        pass


def test_a_scope_is_checked_before_anything_is_pushed(
    app_client: TestClient, tokens: dict[str, Any], demo_db: ScratchDB
) -> None:
    grid = grid_of(demo_db, tokens["grid_worker"]["worker"])
    other_grid = owner(demo_db, "SELECT min(code) FROM grid WHERE code > %s", grid)[0][0]

    def refusal(ws: WebSocketTestSession, scope: str, query: str = SUBSCRIBE) -> dict[str, Any]:
        subscribe(ws, scope, scope, query)
        message = receive(ws)
        assert message["type"] == "error" and message["id"] == scope, message
        [error] = message["payload"]
        return error

    with socket(app_client, bearer(tokens, "grid_worker")) as ws:
        error = refusal(ws, other_grid)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert f"scope: {other_grid} is outside your areas ({grid})" in error["message"]
        error = refusal(ws, "310106999")
        assert error["extensions"]["code"] == "NOT_FOUND", error
        assert "no subdistrict has code '310106999'" in error["message"]
        error = refusal(ws, "nowhere")
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "not an area code" in error["message"]
        # Only subscriptions run here: queries and mutations go to POST /graphql.
        error = refusal(ws, "query", "{ caseCategories { code } }")
        assert error["extensions"]["code"] == "BAD_REQUEST" and "POST /graphql" in error["message"]
        error = refusal(ws, "bad", "subscription { caseReported { number } }")
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
        nothing_more(ws)  # the socket goes on
        for i in range(10):
            subscribe(ws, f"screen {i}", grid)
        error = refusal(ws, "one too many")
        assert error["extensions"]["code"] == "BAD_REQUEST" and "at most 10" in error["message"]

    # A subscription sent over HTTP is refused there.
    body = gql(as_role(app_client, tokens, "grid_center"), SUBSCRIBE, scope=SUBDISTRICT)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "WebSocket" in body["errors"][0]["message"]


def test_each_case_is_accounted_for_once_within_the_look_back() -> None:
    now = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    accounted = Accounted()
    old, late, new = (
        {"id": uuid.uuid4(), "reported_at": now - ago}
        for ago in (LOOK_BACK * 2, LOOK_BACK / 2, dt.timedelta(0))
    )
    assert accounted.since(now) == now - LOOK_BACK
    assert accounted.new([old, new]) == [old, new]
    # A case committed late, older than one already pushed, is pushed all the same; once.
    assert accounted.new([late, new]) == [late]
    assert accounted.new([late, new]) == []
    accounted.since(now + dt.timedelta(seconds=1))
    assert set(accounted.cases) == {late["id"], new["id"]}  # the old one: forgotten
