"""Who may see what: a grid worker sees its own grids and nothing else, through every path;
PostgreSQL enforces it even where a resolver would not; the public sees aggregates only."""

from __future__ import annotations

import re
from typing import Any

import psycopg2
import pytest
from conftest import ScratchDB, as_role
from gq import error, gql, ok
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from api.schema import sdl
from api.settings import Settings
from geo.pii import Vault, mask_phone


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def rows(url: str, sql: str, *params: Any, settings: dict[str, str] | None = None) -> list[Any]:
    conn = psycopg2.connect(dsn(url))
    try:
        with conn, conn.cursor() as cur:
            for key, value in (settings or {}).items():
                cur.execute("SELECT set_config(%s, %s, true)", (f"gridmap.{key}", value))
            cur.execute(sql, params or None)
            return cur.fetchall() if cur.description else [cur.rowcount]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def grids(client: TestClient, tokens: dict[str, Any]) -> dict[str, Any]:
    """The demo grid worker's own grid (X), another grid (Y) and a household of each."""
    worker = tokens["grid_worker"]["worker"]
    own = ok(client, "query($c: String!) { worker(code: $c) { grids { code } } }", c=worker)
    own_codes = {g["code"] for g in own["worker"]["grids"]}
    data = ok(
        client,
        """{ grids(first: 50) { edges { node { code geometry
             microGrids(first: 1) { edges { node { buildings(first: 1) { edges { node {
               households(first: 1) { edges { node { id code geometry
                 members { id code } } } } } } } } } } } } } }""",
    )
    by_code = {e["node"]["code"]: e["node"] for e in data["grids"]["edges"]}
    x = by_code[sorted(own_codes)[0]]
    y = next(g for code, g in by_code.items() if code not in own_codes)

    def household(grid: dict[str, Any]) -> dict[str, Any]:
        mg = grid["microGrids"]["edges"][0]["node"]
        return mg["buildings"]["edges"][0]["node"]["households"]["edges"][0]["node"]

    return {"own": own_codes, "x": x, "y": y, "hx": household(x), "hy": household(y)}


@pytest.fixture(scope="module")
def worker_client(app_client: TestClient, tokens: dict[str, Any]) -> TestClient:
    return as_role(app_client, tokens, "grid_worker")


def test_a_grid_worker_sees_its_own_households(
    worker_client: TestClient, grids: dict[str, Any]
) -> None:
    data = ok(worker_client, "{ households(first: 500) { totalCount edges { node { code } } } }")
    codes = [e["node"]["code"] for e in data["households"]["edges"]]
    assert codes and data["households"]["totalCount"] == len(codes)
    assert all(any(c.startswith(g) for g in grids["own"]) for c in codes)
    got = ok(worker_client, "query($c: String!) { household(code: $c) { code } }",
             c=grids["hx"]["code"])  # fmt: skip
    assert got["household"]["code"] == grids["hx"]["code"]


def test_another_grid_leaks_through_no_path(
    worker_client: TestClient, grids: dict[str, Any]
) -> None:
    y, hy = grids["y"], grids["hy"]
    err = error(worker_client, "query($c: String!) { household(code: $c) { code } }", c=hy["code"])
    assert err["extensions"]["code"] == "NOT_FOUND"  # the same answer as for a code never used
    for node_id in [hy["id"], hy["members"][0]["id"]]:
        got = ok(worker_client, "query($id: ID!) { node(id: $id) { id } }", id=node_id)
        assert got["node"] is None
    nested = ok(
        worker_client,
        """query($c: String!) { grid(code: $c) { code householdCount
             microGrids(first: 100) { edges { node { buildings(first: 3) { edges { node {
               code households(first: 100) { totalCount edges { node { code } } }
             } } } } } } } }""",
        c=y["code"],
    )["grid"]
    assert nested["householdCount"] > 0  # the aggregate is not personal …
    for mg in nested["microGrids"]["edges"]:
        for b in mg["node"]["buildings"]["edges"]:
            assert b["node"]["households"] == {"totalCount": 0, "edges": []}  # … the files are
    lon, lat = hy["geometry"]["coordinates"]
    searches = ok(
        worker_client,
        """query($g: GeoJSON!, $near: NearInput!, $s: String!) {
             within: households(within: $g, first: 500) { totalCount }
             intersects: households(intersects: $g, first: 500) { totalCount }
             near: households(near: $near, first: 500) { edges { node { code } } }
             scoped: households(scope: $s) { totalCount } }""",
        g=y["geometry"],
        near={"lon": lon, "lat": lat, "meters": 30},
        s=y["code"],
    )
    assert searches["within"]["totalCount"] == searches["intersects"]["totalCount"] == 0
    assert searches["scoped"]["totalCount"] == 0
    assert all(not e["node"]["code"].startswith(y["code"]) for e in searches["near"]["edges"])


def test_postgres_itself_keeps_the_grids_apart(demo_db: ScratchDB, grids: dict[str, Any]) -> None:
    """The app role, as a grid worker of X: a query with no filter at all still sees only X."""
    x, y = grids["x"]["code"], grids["y"]["code"]
    scope = {"role": "grid_worker", "areas": x}
    seen = rows(demo_db.app_url, "SELECT DISTINCT left(code, 15) FROM household", settings=scope)
    assert seen == [(x,)]
    assert rows(demo_db.app_url, "SELECT count(*) FROM person WHERE code LIKE %s", y + "%",
                settings=scope) == [(0,)]  # fmt: skip
    changed = rows(demo_db.app_url, "UPDATE household SET room = room WHERE code LIKE %s",
                   y + "%", settings=scope)  # fmt: skip
    assert changed == [0]
    assert rows(demo_db.app_url, "SELECT count(*) FROM household") == [(0,)]  # no scope set
    for sql in (
        "ALTER TABLE household DISABLE ROW LEVEL SECURITY",
        "SET row_security = off; SELECT count(*) FROM household",
        "INSERT INTO household (code, building_id, room)"
        f" SELECT code || '-9-9999', id, '9999' FROM building WHERE code LIKE '{y}%' LIMIT 1",
    ):
        with pytest.raises(psycopg2.Error):
            rows(demo_db.app_url, sql, settings=scope)


def test_the_public_sees_aggregates_only(app_client: TestClient, grids: dict[str, Any]) -> None:
    data = ok(
        app_client,
        """query($c: String!, $id: ID!) {
             households(first: 500) { totalCount edges { node { code } } }
             household(code: $c) { code }
             node(id: $id) { id }
             grids(first: 50) { edges { node { code householdCount suppressed } } }
             microGrids(first: 500) { edges { node { householdCount residentCount suppressed } } }
             workers(first: 5) { edges { node { code name phone } } } }""",
        c=grids["hx"]["code"],
        id=grids["hx"]["id"],
    )
    assert data["households"] == {"totalCount": 0, "edges": []}
    assert data["household"] is None and data["node"] is None
    assert all(g["node"]["householdCount"] >= 100 for g in data["grids"]["edges"])
    assert not any(g["node"]["suppressed"] for g in data["grids"]["edges"])
    small = [m["node"] for m in data["microGrids"]["edges"] if m["node"]["suppressed"]]
    assert small, "micro-grids of a few households are suppressed for the public"
    assert all(m["householdCount"] is None and m["residentCount"] is None for m in small)
    assert all(w["node"]["phone"] is None for w in data["workers"]["edges"])


def test_k_anonymity_applies_to_the_public_only(client: TestClient) -> None:
    data = ok(client, "{ microGrids(first: 500) { edges { node { householdCount suppressed } } } }")
    assert all(
        not m["node"]["suppressed"] and m["node"]["householdCount"] is not None
        for m in data["microGrids"]["edges"]
    )


def test_a_department_reads_no_family_files(
    app_client: TestClient, tokens: dict[str, Any], grids: dict[str, Any]
) -> None:
    department = as_role(app_client, tokens, "department")
    data = ok(
        department,
        "query($c: String!) { households { totalCount } household(code: $c) { code }"
        " grids(first: 1) { edges { node { householdCount } } } }",
        c=grids["hx"]["code"],
    )
    assert data["households"]["totalCount"] == 0 and data["household"] is None
    assert data["grids"]["edges"][0]["node"]["householdCount"] > 0


# Fields whose names suggest personal data but are not: each with the reason.
NOT_PERSONAL = {
    "District.name": "an area's name",
    "Subdistrict.name": "an area's name",
    "Community.name": "an area's name",
    "Grid.name": "an area's name",
    "MicroGrid.name": "an area's name",
    "Area.name": "an area's name",
    "Building.name": "a building's name is on its door",
    "Building.address": "a building's address, not a person's",
    "Merchant.name": "a business is public",
    "Merchant.address": "a business is public",
    "Worker.name": "grid workers' names are posted on the grid's notice board",
    "Person.household": "a link, its fields are marked",
    "FamilyFile.members": "a link, its fields are marked",
    "FamilyFilePayload.member": "a link, its fields are marked",
    "Mutation.addMember": "a mutation: what it answers is marked",
    "Mutation.updateMember": "a mutation: what it answers is marked",
    "Mutation.removeMember": "a mutation: what it answers is marked",
    "CoverageCell.name": "an area's name",
    "CadencePolicy.classADays": "a policy's days for a class, not a household's class",
    "CadencePolicy.classBDays": "a policy's days for a class, not a household's class",
    "CadencePolicy.classCDays": "a policy's days for a class, not a household's class",
    "Household.members": "a link, its fields are marked",
    "Case.location": "where the problem is; only those who may see the case see it at all",
    "CaseCategory.name": "a category's name",
    "CaseCategory.nameEn": "a category's name",
    "CaseCategory.publicName": "a category's public wording",
    "CaseStatsGroup.name": "a grid's, unit's, category's or worker's name (staff names are public)",
    "Holiday.name": "a holiday's name",
    "HotspotCell.name": "an area's name (a grid's or micro-grid's)",
    "Unit.name": "a unit's name",
    "Unit.nameEn": "a unit's name",
}
PERSONAL_NAME = re.compile(
    r"name|phone|idnumber|birth|gender|address|relation|location|geometry|disab|income|"
    r"bereaved|elderly|entitled|seeking|member|class",
    re.I,
)
# Types that describe people or their homes: their geometry is a home, not an area.
PEOPLE = {"Household", "Person", "Worker"}


def marked_fields() -> dict[tuple[str, str], bool]:
    """(type, field) → marked, from the schema as clients see it (schema.graphql)."""
    from graphql import parse
    from graphql.language import InterfaceTypeDefinitionNode, ObjectTypeDefinitionNode

    fields = {}
    for definition in parse(sdl()).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode | InterfaceTypeDefinitionNode):
            for f in definition.fields:
                marked = any(d.name.value == "personal" for d in f.directives or ())
                fields[(definition.name.value, f.name.value)] = marked
    return fields


def introspected_fields(client: TestClient) -> set[tuple[str, str]]:
    """(type, field) of every object and interface type the live API describes."""
    data = ok(client, "{ __schema { types { name kind fields { name } } } }")
    return {
        (t["name"], f["name"])
        for t in data["__schema"]["types"]
        if t["kind"] in ("OBJECT", "INTERFACE") and not t["name"].startswith("__")
        for f in t["fields"] or ()
    }


def test_every_field_that_looks_personal_is_marked(client: TestClient) -> None:
    marked = marked_fields()
    live = introspected_fields(client)
    assert live == set(marked), "the served schema and schema.graphql differ"
    unmarked = [
        f"{t}.{f}"
        for (t, f) in sorted(live)
        if not marked[(t, f)]
        and PERSONAL_NAME.search(f)
        and (t in PEOPLE or f != "geometry")
        and f"{t}.{f}" not in NOT_PERSONAL
        and not t.endswith(("Connection", "Edge"))
    ]
    assert unmarked == [], "mark these with personal() or explain them in NOT_PERSONAL"


# How each role may read each marked field of a household inside its areas (the policy).
MASKED_FOR_GRID_CENTER = {"phone", "idNumber"}
PATHS = {
    "Household": "{{ households(first: 40, scope: $s) {{ edges {{ node {{ code {field} }} }} }} }}",
    "Person": "{{ households(first: 40, scope: $s) {{ edges {{ node {{ code members {{ code {field} }} }} }} }} }}",  # noqa: E501
    "Worker": "{{ workers(first: 40) {{ edges {{ node {{ code {field} }} }} }} }}",
    "FamilyFile": "{{ households(first: 40, scope: $s) {{ edges {{ node {{ code familyFile {{ {field} }} }} }} }} }}",  # noqa: E501
    "Visit": "{{ households(first: 40, scope: $s) {{ edges {{ node {{ code visits {{ {field} }} }} }} }} }}",  # noqa: E501
    "Demand": "{{ households(first: 200, scope: $s) {{ edges {{ node {{ code visits(last: 20) {{ demands {{ {field} }} }} }} }} }} }}",  # noqa: E501
    "OverdueHousehold": "{{ overdueHouseholds(first: 40, scope: $s) {{ edges {{ node {{ household {{ code }} {field} }} }} }} }}",  # noqa: E501
    "Talent": "{{ talents(first: 40, scope: $s) {{ edges {{ node {{ household {{ code }} {field} }} }} }} }}",  # noqa: E501
    "JobSeeker": "{{ jobSeekers(first: 40, scope: $s) {{ edges {{ node {{ household {{ code }} {field} }} }} }} }}",  # noqa: E501
    "Case": "{{ cases(first: 100, filter: {{ scope: $s }}) {{ edges {{ node {{ code: number {field} }} }} }} }}",  # noqa: E501
}


def truth(db: ScratchDB) -> dict[str, dict[str, Any]]:
    """Every person's and household's stored values by code, read as the owner."""
    vault = Vault(Settings().secret_key)
    out: dict[str, dict[str, Any]] = {}
    for code, name, phone, sealed, birth, alone in rows(
        db.owner_url,
        "SELECT code, name, phone, id_number_sealed, birth_year, elderly_living_alone FROM person",
    ):
        number = vault.open(bytes(sealed))
        out[code] = {"name": name, "phone": phone, "birthYear": birth, "idNumber": number,
                     "elderlyLivingAlone": alone}  # fmt: skip
    for code, cls in rows(db.owner_url, "SELECT code, household_class FROM household"):
        out[code] = {"householdClass": cls}
    for code, phone in rows(db.owner_url, "SELECT code, phone FROM worker"):
        out[code] = {"phone": phone}
    for number, name, phone in rows(
        db.owner_url, "SELECT number, reporter_name, reporter_phone FROM grid_case"
    ):
        out[number] = {"reporterName": name, "reporterPhone": phone}
    return out


@pytest.mark.parametrize("role", ["public", "department", "grid_worker", "community",
                                  "grid_center"])  # fmt: skip
def test_every_marked_field_against_every_role(
    app_client: TestClient, tokens: dict[str, Any], demo_db: ScratchDB, grids: dict[str, Any],
    role: str,
) -> None:  # fmt: skip
    client = app_client if role == "public" else as_role(app_client, tokens, role)
    known = truth(demo_db)
    markers = marked_fields()
    marked = [(t, f) for (t, f) in sorted(introspected_fields(as_role(app_client, tokens,
              "grid_center"))) if markers[(t, f)]]  # fmt: skip
    assert {t for t, _ in marked} <= set(PATHS), "a new type has personal fields: add its path"
    scope = sorted(grids["own"])[0]  # inside every staff role's areas
    for type_name, field in marked:
        query = "query($s: String!) " + PATHS[type_name].format(field=field)
        if type_name == "Worker":
            query = PATHS[type_name].format(field=field)
        body = gql(client, query, **({} if type_name == "Worker" else {"s": scope}))
        if role in ("public", "department") and body.get("errors"):
            # Lists of family-file things refuse these roles outright.
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
            continue
        assert "errors" not in body, body["errors"]
        values = _collect(body["data"], type_name, field)
        if type_name == "Worker":
            assert values, field
            for code, value in values:
                assert value == (None if role == "public" else known[code][field]), (role, code)
            continue
        if type_name == "Case":  # a resident who called: whoever sees the case reads it whole
            assert values or role == "department", (role, field)
            assert all(value == known[code][field] for code, value in values), (role, field)
            continue
        if role in ("public", "department"):
            assert values == [], (role, type_name, field)  # no family files at all
            continue
        assert values, (role, type_name, field)
        for code, value in values:
            stored = known[code].get(field, ...)
            if stored is ...:  # a field the truth table does not hold: present is enough
                continue
            if stored is not None and role == "grid_center" and field in MASKED_FOR_GRID_CENTER:
                masked = (
                    mask_phone(stored) if field == "phone" else stored[:6] + "*" * 8 + stored[-4:]
                )
                assert value == masked, (role, field, value)
            else:
                assert value == stored, (role, field, code)


def _collect(data: dict[str, Any], type_name: str, field: str) -> list[tuple[str, Any]]:
    if type_name == "Worker":
        return [(e["node"]["code"], e["node"][field]) for e in data["workers"]["edges"]]
    if type_name == "Case":
        return [(e["node"]["code"], e["node"][field]) for e in data["cases"]["edges"]]
    if type_name in ("OverdueHousehold", "Talent", "JobSeeker"):
        (found,) = data.values()
        return [(e["node"]["household"]["code"], e["node"][field]) for e in found["edges"]]
    households = [e["node"] for e in data["households"]["edges"]]
    if type_name == "Household":
        return [(h["code"], h[field]) for h in households]
    if type_name == "FamilyFile":
        return [(h["code"], h["familyFile"][field]) for h in households]
    if type_name == "Visit":
        return [(h["code"], v[field]) for h in households for v in h["visits"]]
    if type_name == "Demand":
        return [(h["code"], d[field]) for h in households for v in h["visits"]
                for d in v["demands"]]  # fmt: skip
    return [(m["code"], m[field]) for h in households for m in h["members"]]


def test_other_grids_stay_hidden_for_every_marked_field(
    worker_client: TestClient, grids: dict[str, Any]
) -> None:
    for (type_name, field), marked in marked_fields().items():
        if not marked or type_name not in ("Household", "Person"):
            continue
        data = ok(worker_client, "query($s: String!) " + PATHS[type_name].format(field=field),
                  s=grids["y"]["code"])  # fmt: skip
        assert data["households"]["edges"] == [], field


def test_who_may_act_for_a_grid_worker(demo_db: ScratchDB, tokens: dict[str, Any]) -> None:
    """A write naming another worker goes through only for that worker, or for a community or
    grid center whose areas cover that worker's grids."""
    from sqlalchemy import create_engine

    from api.auth import caller_of
    from geo.workers import worker_by_code

    engine = create_engine(demo_db.owner_url)
    try:
        with engine.connect() as connection:
            people = {r: worker_by_code(connection=connection, code=t["worker"])
                      for r, t in tokens.items()}  # fmt: skip
            stranger = connection.exec_driver_sql(
                "SELECT w.code FROM worker w JOIN worker_grid wg ON wg.worker_id = w.id"
                " JOIN grid g ON g.id = wg.grid_id WHERE w.role = 'GRID_WORKER'"
                " AND g.code NOT LIKE %s LIMIT 1", (people["community"]["areas"][0] + "%",),
            ).scalar_one()  # fmt: skip
            other = worker_by_code(connection=connection, code=stranger)
    finally:
        engine.dispose()
    block_head = people["grid_worker"]
    target = (block_head["id"], block_head["areas"])
    assert caller_of(block_head).may_act_for(*target)
    assert caller_of(people["grid_center"]).may_act_for(*target)
    assert caller_of(people["community"]).may_act_for(*target)
    assert not caller_of(people["department"]).may_act_for(*target)
    assert not caller_of(other).may_act_for(*target)
    assert not caller_of(people["community"]).may_act_for(other["id"], other["areas"])
