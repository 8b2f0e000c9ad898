"""`importRegister`: a grid center uploads a register as a GraphQL multipart request; it imports
inside the caller's subdistrict only, answers with the summary, and is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ScratchDB, demo_tokens
from starlette.testclient import TestClient
from test_family_files import owner

from api.app import create_app

UPLOAD = """mutation($input: ImportRegisterInput!) { importRegister(input: $input) {
  written counts { kind read inserted unchanged rejected outside }
  problems { where field message } warnings } }"""


@pytest.fixture
def app(fresh_db: ScratchDB) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with TestClient(create_app(fresh_db.settings())) as client:
        yield client, demo_tokens(fresh_db)


def upload(client: TestClient, token: str, name: str, data: bytes,
           **input: Any) -> Any:  # fmt: skip
    operations = {"query": UPLOAD, "variables": {"input": {"kind": "MERCHANTS", "file": None,
                                                           **input}}}  # fmt: skip
    return client.post(
        "/graphql",
        headers={"Authorization": f"Bearer {token}"},
        data={"operations": json.dumps(operations),
              "map": json.dumps({"0": ["variables.input.file"]})},
        files={"0": (name, data, "text/csv")},
    )  # fmt: skip


def _point(db: ScratchDB) -> tuple[float, float]:
    return owner(db, "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p"
                 " FROM grid ORDER BY code LIMIT 1) x")[0]  # fmt: skip


def test_a_grid_center_uploads_merchants(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    client, tokens = app
    lon, lat = _point(fresh_db)
    csv = (f"统一社会信用代码,名称,类别,经度,纬度\n"
           f"91310106UP0000001X,社区面馆,餐饮,{lon},{lat}\n"
           f"91310106UP0000002X,街角花店,零售,{lon + 0.0001},{lat}\n"
           f"91110105UP0000003X,北京的店,零售,116.48,39.99\n").encode()  # fmt: skip
    center = tokens["grid_center"]["token"]
    dry = upload(client, center, "商户.csv", csv, dryRun=True).json()["data"]["importRegister"]
    assert dry["written"] is False and dry["counts"][0]["inserted"] == 2
    count = "SELECT count(*) FROM merchant WHERE code LIKE '%%UP00000%%'"
    assert owner(fresh_db, count)[0][0] == 0

    done = upload(client, center, "商户.csv", csv).json()["data"]["importRegister"]
    assert done["written"] is True
    assert done["counts"] == [{"kind": "merchants", "read": 3, "inserted": 2, "unchanged": 0,
                               "rejected": 0, "outside": 1}]  # fmt: skip
    assert owner(fresh_db, count)[0][0] == 2
    audited = owner(fresh_db, "SELECT detail->>'file', worker_code FROM audit_entry"
                    " WHERE detail->>'import' = 'merchants'")  # fmt: skip
    assert audited == [("商户.csv", tokens["grid_center"]["worker"])]


def test_refusals(app: tuple[TestClient, Any], fresh_db: ScratchDB) -> None:
    client, tokens = app
    lon, lat = _point(fresh_db)
    bad = f"code,name,category,lon,lat\nX1,店,零售,{lon},{lat}\nX2,店,零售,abc,{lat}\n".encode()
    center = tokens["grid_center"]["token"]
    answer = upload(client, center, "m.csv", bad).json()["data"]["importRegister"]
    assert answer["written"] is False
    assert answer["problems"] == [{"where": "m.csv line 3", "field": "lon",
                                   "message": "'abc' is not a number"}]  # fmt: skip
    assert owner(fresh_db, "SELECT count(*) FROM merchant WHERE code LIKE 'X_'")[0][0] == 0

    worker = upload(client, tokens["grid_worker"]["token"], "m.csv", bad).json()
    assert worker["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    wrong = upload(client, center, "m.exe", bad).json()
    assert wrong["errors"][0]["extensions"]["argument"] == "input.file"
    huge = upload(client, center, "m.csv", b"x" * (11 * 1024 * 1024))
    assert huge.status_code == 413
    as_json = client.post("/graphql", headers={"Authorization": f"Bearer {center}"}, json={
        "query": UPLOAD, "variables": {"input": {"kind": "MERCHANTS", "file": "m.csv"}}}).json()
    assert as_json["errors"][0]["extensions"]["argument"] == "input.file"
