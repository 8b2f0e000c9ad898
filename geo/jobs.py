"""Job matching between residents seeking work and merchants hiring nearby.

A scope's seekers and the openings near them are read from PostGIS (the merchants through their
geometry index, inside the seekers' box widened by the distance); the pairs that fit are found
with numpy: distance on the spheroid (each pair on the plane of its own mid-latitude, which
agrees with PostGIS's geography distance to well under a millimetre within 20 km), skills,
hours and wage as integer and bit-mask comparisons. PostgreSQL enumerating millions of
seeker-merchant pairs within walking distance, most of which do not fit, took 75 s for 10,000
seekers and 5,000 openings; this takes about 2, the candidates kept as arrays until read
(BENCHMARKS.md). Each candidate gets a score and an explanation. The proposals that serve a
scope best are the optimal assignment over exactly those candidates under the capacities (a
seeker one live proposal, an opening its open slots): a min-cost flow (OR-Tools), not greedy.

Seekers are personal data: row-level security shows a caller only the seekers, matches and
events of its areas; the places an opening has left count every area (a SECURITY DEFINER count).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from ortools.graph.python import min_cost_flow
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo import queries as q
from geo.access import Caller
from geo.errors import BadInput, Conflict, NotFound

# Weekly shifts and the hours each offers: a weekday block is five days of it.
SHIFT_HOURS = {
    "WEEKDAY_MORNING": 20,
    "WEEKDAY_AFTERNOON": 20,
    "WEEKDAY_EVENING": 15,
    "WEEKEND_DAYTIME": 16,
    "WEEKEND_EVENING": 6,
}
SHIFTS = tuple(SHIFT_HOURS)
STATES = ("PROPOSED", "CONTACTED", "INTERVIEWED", "HIRED", "DECLINED")
# Where a match may go from each state; DECLINED and HIRED are final.
NEXT = {
    "PROPOSED": ("CONTACTED", "DECLINED"),
    "CONTACTED": ("INTERVIEWED", "HIRED", "DECLINED"),
    "INTERVIEWED": ("HIRED", "DECLINED"),
}
MAX_DISTANCE = 20_000
# How a candidate's score (0 to 100) weighs its parts; each part is 0 to 1.
WEIGHTS = {"distance": 0.35, "skills": 0.35, "hours": 0.15, "wage": 0.15}
WAGE_FULL_MARKS = 0.2  # 20 % above the seeker's minimum wage earns the wage part in full


def check_distance(meters: float, argument: str = "maxDistanceMeters") -> None:
    if not 0 < meters <= MAX_DISTANCE:
        raise BadInput(argument, f"{meters} is out of range: (0, {MAX_DISTANCE}] metres")


# The scope's seekers with no live proposal and not hired: once each, not once per pair.
CANDIDATE_SEEKERS = """
SELECT js.id, p.code AS person_code, js.skills, js.shifts, js.weekly_hours, js.min_wage,
       js.max_walk_meters, ST_X(h.location) AS lon, ST_Y(h.location) AS lat
FROM job_seeker js
JOIN household h ON h.id = js.household_id
JOIN person p ON p.id = js.person_id
WHERE js.household_code >= :scope AND js.household_code < :scope || chr(1114111)
  AND h.moved_out IS NULL AND h.location IS NOT NULL
  AND (CAST(:seeker AS uuid) IS NULL OR js.id = :seeker)
  -- One live proposal at a time, and the hired are hired.
  AND NOT EXISTS (SELECT 1 FROM job_match m WHERE m.seeker_id = js.id
                  AND m.state IN ('PROPOSED', 'CONTACTED', 'INTERVIEWED', 'HIRED'))
"""
# Openings valid today with places left, at merchants inside the seekers' box widened by the
# distance (the merchant's geometry index).
CANDIDATE_OPENINGS = """
SELECT * FROM (
    SELECT o.id, o.code, o.skills, o.shifts, o.weekly_hours, o.wage,
           o.headcount - job_opening_taken(o.id) AS open_slots,
           ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat
    FROM job_opening o JOIN merchant m ON m.id = o.merchant_id
    WHERE o.valid_from <= :today AND (o.valid_until IS NULL OR o.valid_until >= :today)
      AND (CAST(:opening AS uuid) IS NULL OR o.id = :opening)
      AND m.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
) o WHERE open_slots > 0
"""
# WGS-84, for distances on each pair's mid-latitude plane (PostGIS: the geodesic).
_A, _F = 6378137.0, 1 / 298.257223563
_E2 = _F * (2 - _F)
_SHIFT_BIT = {s: 1 << i for i, s in enumerate(SHIFTS)}
_HOURS_OF_MASK = np.array(
    [sum(h for s, h in SHIFT_HOURS.items() if m & _SHIFT_BIT[s]) for m in range(1 << len(SHIFTS))]
)
_PAIRS_PER_CHUNK = 4_000_000  # seekers x openings compared at once (~200 MB of arrays)


@dataclass(slots=True)
class Candidate:
    seeker_id: uuid.UUID
    opening_id: uuid.UUID
    distance_meters: float
    skills_matched: tuple[str, ...]
    hours_overlap: int
    wage_ok: bool
    score: float
    person_code: str
    opening_code: str
    opening_hours: int
    wage: int
    min_wage: int

    @property
    def text(self) -> str:
        """Made when read: a page of candidates, not 600,000 strings."""
        matched = self.skills_matched
        skills = "、".join(matched) if matched else "no special skills needed"
        return (
            f"{self.distance_meters:.0f} m on foot; skills: {skills}; {self.hours_overlap} h/week"
            f" of shared shifts for a {self.opening_hours} h job; {self.wage} yuan/h against a"
            f" minimum of {self.min_wage}"
        )

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (-self.score, self.person_code, self.opening_code)


def _shift_masks(rows: Sequence[Any]) -> np.ndarray:
    return np.array([sum(_SHIFT_BIT[s] for s in set(r.shifts)) for r in rows], np.int64)


def candidates(
    *,
    session: Session,
    scope: str,
    max_distance: float,
    today: dt.date,
    seeker_id: uuid.UUID | None = None,
    opening_id: uuid.UUID | None = None,
) -> tuple[Sequence[Candidate], dict[uuid.UUID, int]]:
    """Every feasible (seeker, opening) pair of ``scope`` (best first), and the open slots of
    the openings they name. The pairs are found in numpy: PostgreSQL enumerating millions of
    seeker-merchant pairs within walking distance, most of which do not fit, is the slow part."""
    check_distance(max_distance)
    q.area_by_code(session=session, code=scope, argument="scope")
    seekers = session.execute(text(CANDIDATE_SEEKERS), {"scope": scope, "seeker": seeker_id}).all()
    if not seekers:
        return [], {}
    s_lon = np.array([s.lon for s in seekers])
    s_lat = np.array([s.lat for s in seekers])
    # Degrees of the distance at the latitude farthest from the equator: the box is wide enough.
    far = math.radians(float(np.abs(s_lat).max()))
    pad_y = math.degrees(max_distance / (_A * (1 - _E2))) * 1.01
    pad_x = math.degrees(max_distance / (_A * math.cos(far))) * 1.01
    box = {
        "x0": float(s_lon.min()) - pad_x, "y0": float(s_lat.min()) - pad_y,
        "x1": float(s_lon.max()) + pad_x, "y1": float(s_lat.max()) + pad_y,
    }  # fmt: skip
    openings = session.execute(
        text(CANDIDATE_OPENINGS), {"today": today, "opening": opening_id, **box}
    ).all()
    if not openings:
        return [], {}
    o_lon = np.array([o.lon for o in openings])
    o_lat = np.array([o.lat for o in openings])
    every = sorted({t for r in (*seekers, *openings) for t in r.skills})
    tags = {t: i for i, t in enumerate(every)}
    s_bits = [sum(1 << tags[t] for t in r.skills) for r in seekers]
    o_bits = [sum(1 << tags[t] for t in r.skills) for r in openings]
    words = max(1, -(-len(tags) // 64))

    def skill_words(bits: list[int]) -> np.ndarray:
        return np.array(
            [[(b >> (64 * w)) & (2**64 - 1) for w in range(words)] for b in bits], np.uint64
        ).reshape(len(bits), words)

    s_skill, o_skill = skill_words(s_bits), skill_words(o_bits)
    s_shift, o_shift = _shift_masks(seekers), _shift_masks(openings)
    s_reach = np.minimum(np.array([s.max_walk_meters for s in seekers], float), max_distance)
    s_min = np.array([s.min_wage for s in seekers])
    s_hours = np.array([s.weekly_hours for s in seekers])
    o_wage = np.array([o.wage for o in openings])
    o_hours = np.array([o.weekly_hours for o in openings])
    o_open = ~o_skill.any(axis=1)  # asks for no skill
    # A plane for the whole area first (within 0.2 %), each pair's own plane for the survivors.
    mid = math.radians(float(s_lat.mean()))
    ky = math.radians(1) * _A * (1 - _E2) / (1 - _E2 * math.sin(mid) ** 2) ** 1.5
    kx = math.radians(1) * _A * math.cos(mid) / math.sqrt(1 - _E2 * math.sin(mid) ** 2)
    s_x, s_y, o_x, o_y = s_lon * kx, s_lat * ky, o_lon * kx, o_lat * ky
    found_s: list[np.ndarray] = []
    found_o: list[np.ndarray] = []
    found_d: list[np.ndarray] = []
    step = max(1, _PAIRS_PER_CHUNK // len(openings))
    for a in range(0, len(seekers), step):
        b = min(len(seekers), a + step)
        dx = s_x[a:b, None] - o_x[None, :]
        dy = s_y[a:b, None] - o_y[None, :]
        ok = dx * dx + dy * dy <= (s_reach[a:b, None] * 1.002 + 1) ** 2
        ok &= o_wage[None, :] >= s_min[a:b, None]
        ok &= o_hours[None, :] <= s_hours[a:b, None]
        ok &= _HOURS_OF_MASK[s_shift[a:b, None] & o_shift[None, :]] >= o_hours[None, :]
        share = np.broadcast_to(o_open[None, :], ok.shape).copy()
        for w in range(words):
            share |= (s_skill[a:b, w, None] & o_skill[None, :, w]) != 0
        ok &= share
        i, j = np.nonzero(ok)
        i += a
        p1, p2 = np.radians(s_lat[i]), np.radians(o_lat[j])
        pm = (p1 + p2) / 2
        w2 = 1 - _E2 * np.sin(pm) ** 2
        gy = (p2 - p1) * (_A * (1 - _E2) / w2**1.5)
        gx = np.radians(o_lon[j] - s_lon[i]) * (_A * np.cos(pm) / np.sqrt(w2))
        d = np.hypot(gx, gy)
        keep = d <= s_reach[i]
        found_s.append(i[keep])
        found_o.append(j[keep])
        found_d.append(d[keep])
    si, oj, dist = np.concatenate(found_s), np.concatenate(found_o), np.concatenate(found_d)
    # The score (WEIGHTS), for every pair at once.
    matched = sum(np.bitwise_count(s_skill[si, w] & o_skill[oj, w]) for w in range(words))
    wanted = sum(np.bitwise_count(o_skill[oj, w]) for w in range(words))
    parts = {
        "distance": np.maximum(0.0, 1 - dist / s_reach[si]),
        "skills": np.where(wanted > 0, matched / np.maximum(wanted, 1), 1.0),
        "hours": np.minimum(o_hours[oj], s_hours[si]) / s_hours[si],
        "wage": np.minimum(
            1.0, (o_wage[oj] - s_min[si]) / np.maximum(WAGE_FULL_MARKS * s_min[si], 1)
        ),
    }
    score = np.round(100 * sum(WEIGHTS[k] * v for k, v in parts.items()), 2)
    overlap = _HOURS_OF_MASK[s_shift[si] & o_shift[oj]]
    # Best first, then by person and opening code (the cursor of jobCandidates).
    s_rank = np.argsort(np.argsort(np.array([s.person_code for s in seekers])))
    o_rank = np.argsort(np.argsort(np.array([o.code for o in openings])))
    order = np.lexsort((o_rank[oj], s_rank[si], -score))
    names = sorted(tags, key=tags.__getitem__)
    found = Candidates(
        seekers, openings, si[order], oj[order], dist[order], score[order], overlap[order],
        s_bits, o_bits, names,
    )  # fmt: skip
    slots = {openings[j].id: openings[j].open_slots for j in set(oj.tolist())}
    return found, slots


class Candidates(Sequence[Candidate]):
    """The pairs of a scope, best first, kept as arrays: a ``Candidate`` is made when one is
    read (a page of them, or the few chosen), not 600,000 at once."""

    def __init__(
        self,
        seekers: Sequence[Any],
        openings: Sequence[Any],
        si: np.ndarray,
        oj: np.ndarray,
        dist: np.ndarray,
        score: np.ndarray,
        overlap: np.ndarray,
        s_bits: list[int],
        o_bits: list[int],
        names: list[str],
    ) -> None:
        self.seekers, self.openings = seekers, openings
        self.si, self.oj, self.dist, self.score, self.overlap = si, oj, dist, score, overlap
        self._s_bits, self._o_bits, self._names = s_bits, o_bits, names
        self._named: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.si)

    @overload
    def __getitem__(self, k: int) -> Candidate: ...
    @overload
    def __getitem__(self, k: slice) -> list[Candidate]: ...

    def __getitem__(self, k: int | slice) -> Candidate | list[Candidate]:
        if isinstance(k, slice):
            return [self._make(i) for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        return self._make(k % len(self))

    def _make(self, k: int) -> Candidate:
        i, j = int(self.si[k]), int(self.oj[k])
        s, o = self.seekers[i], self.openings[j]
        bits = self._s_bits[i] & self._o_bits[j]
        skills = self._named.get(bits)
        if skills is None:
            skills = self._named[bits] = tuple(
                sorted(n for b, n in enumerate(self._names) if bits >> b & 1)
            )
        return Candidate(
            s.id, o.id, float(self.dist[k]), skills, int(self.overlap[k]), True,
            float(self.score[k]), s.person_code, o.code, o.weekly_hours, o.wage, s.min_wage,
        )  # fmt: skip


def assign(pairs: Sequence[Candidate], slots: dict[uuid.UUID, int]) -> list[Candidate]:
    """The proposals with the largest total score: each seeker at most once, each opening at
    most its slots, only among ``pairs``. A min-cost flow from the seekers through the pairs
    to the openings, with a free way round so that no pair is forced; the arcs go to OR-Tools
    as arrays (one call, not 600,000)."""
    if not pairs:
        return []
    if isinstance(pairs, Candidates):
        s_idx, o_idx = pairs.si, pairs.oj
        cost = -np.rint(pairs.score * 100).astype(np.int64)
        seekers = [s.id for s in pairs.seekers]
        opening_ids = [o.id for o in pairs.openings]
    else:
        seeker_of: dict[uuid.UUID, int] = {}
        opening_of: dict[uuid.UUID, int] = {}
        s_idx = np.fromiter(
            (seeker_of.setdefault(c.seeker_id, len(seeker_of)) for c in pairs), np.int64
        )
        o_idx = np.fromiter(
            (opening_of.setdefault(c.opening_id, len(opening_of)) for c in pairs), np.int64
        )
        cost = -np.fromiter((round(c.score * 100) for c in pairs), np.int64)
        seekers, opening_ids = list(seeker_of), list(opening_of)
    n = len(pairs)
    ns, no = len(seekers), len(opening_ids)
    source, sink = 0, 1
    tails = np.concatenate([np.full(ns, source), 2 + s_idx, 2 + ns + np.arange(no), [source]])
    heads = np.concatenate([2 + np.arange(ns), 2 + ns + o_idx, np.full(no, sink), [sink]])
    capacities = np.concatenate(
        [np.ones(ns + n, np.int64), [max(0, slots.get(o, 0)) for o in opening_ids], [ns]]
    ).astype(np.int64)
    costs = np.concatenate([np.zeros(ns, np.int64), cost, np.zeros(no + 1, np.int64)])
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    flow.set_node_supply(source, ns)
    flow.set_node_supply(sink, -ns)
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("the assignment's flow has no optimum: report this")
    chosen = np.nonzero(flow.flows(arcs[ns : ns + n]) > 0)[0]
    return sorted((pairs[k] for k in chosen.tolist()), key=lambda c: c.sort_key)


# --------------------------------------------------------------------------------------------
# Openings, seekers, offers
# --------------------------------------------------------------------------------------------

OPENING_COLUMNS = (
    "o.id, o.code, o.merchant_id, o.title, o.skills, o.shifts, o.weekly_hours, o.wage,"
    " o.headcount, o.valid_from, o.valid_until, o.created_at, o.created_by,"
    " o.headcount - job_opening_taken(o.id) AS open_slots"
)
SEEKER_COLUMNS = (
    "js.id, js.person_id, js.household_id, js.household_code, js.skills, js.shifts,"
    " js.weekly_hours, js.min_wage, js.max_walk_meters, js.consent, js.consent_at, js.updated_at"
)
MATCH_COLUMNS = (
    "m.id, m.seeker_id, m.opening_id, m.household_code, m.state, m.score, m.distance_meters,"
    " m.created_at, m.created_by, m.updated_at"
)


def _tags(values: Sequence[str], argument: str) -> list[str]:
    tags = sorted({v.strip() for v in values if v.strip()})
    if len(tags) > 30:
        raise BadInput(argument, "at most 30 tags")
    return tags


def _shifts(values: Sequence[str], argument: str) -> list[str]:
    wrong = [s for s in values if s not in SHIFT_HOURS]
    if wrong or not values:
        raise BadInput(argument, f"one or more of {', '.join(SHIFTS)}")
    return sorted(set(values), key=SHIFTS.index)


def check_opening(values: dict[str, Any]) -> None:
    """Values of an opening (only those given), each error naming its ``input.`` field."""
    for name, low in (("headcount", 1), ("wage", 1), ("weekly_hours", 1)):
        if name in values and (values[name] is None or values[name] < low):
            field = {"weekly_hours": "weeklyHours"}.get(name, name)
            raise BadInput(f"input.{field}", f"{values[name]} is out of range: at least {low}")
    if values.get("weekly_hours", 0) > 84:
        raise BadInput("input.weeklyHours", "at most 84 hours a week")
    if "skills" in values:
        values["skills"] = _tags(values["skills"] or (), "input.skills")
    if "shifts" in values:
        values["shifts"] = _shifts(values["shifts"] or (), "input.shifts")
    start, end = values.get("valid_from"), values.get("valid_until")
    if start is not None and end is not None and end < start:
        raise BadInput("input.validUntil", f"{end} is before validFrom {start}")


def opening_by_id(*, session: Session, opening_id: uuid.UUID) -> dict[str, Any] | None:
    return q.first_row(
        session, f"SELECT {OPENING_COLUMNS} FROM job_opening o WHERE o.id = :id", id=opening_id
    )


def openings_of(
    *, session: Session, merchant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = session.execute(
        text(
            f"SELECT {OPENING_COLUMNS} FROM job_opening o WHERE o.merchant_id = ANY(:ids)"
            " ORDER BY o.code"
        ),
        {"ids": list(merchant_ids)},
    ).mappings()
    return q.group_rows(rows, "merchant_id", merchant_ids)


def create_opening(
    *, session: Session, caller: Caller, merchant_id: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any]:
    check_opening(values)
    merchant = session.execute(
        text("SELECT code FROM merchant WHERE id = :id"), {"id": merchant_id}
    ).scalar()
    if merchant is None:
        raise NotFound("input.merchantId", f"no merchant {merchant_id}")
    number = session.execute(
        text("SELECT count(*) FROM job_opening WHERE merchant_id = :id"), {"id": merchant_id}
    ).scalar_one()
    columns = {
        "code": f"{merchant}-J{number + 1:02d}",
        "merchant_id": merchant_id,
        "created_by": caller.worker_code,
        **values,
    }
    opening_id = session.execute(
        text(
            f"INSERT INTO job_opening ({', '.join(columns)})"
            f" VALUES ({', '.join(':' + c for c in columns)}) RETURNING id"
        ),
        columns,
    ).scalar_one()
    found = opening_by_id(session=session, opening_id=opening_id)
    assert found is not None
    return found


def update_opening(
    *, session: Session, opening_id: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any]:
    check_opening(values)
    current = opening_by_id(session=session, opening_id=opening_id)
    if current is None:
        raise NotFound("input.openingId", f"no job opening {opening_id}")
    start = values.get("valid_from", current["valid_from"])
    end = values.get("valid_until", current["valid_until"])
    if end is not None and end < start:
        raise BadInput("input.validUntil", f"{end} is before validFrom {start}")
    taken = current["headcount"] - current["open_slots"]
    if values.get("headcount", taken) < taken:
        raise BadInput(
            "input.headcount", f"{taken} places are proposed or filled already: not below that"
        )
    if values:
        sets = ", ".join(f"{c} = :{c}" for c in values)
        session.execute(
            text(f"UPDATE job_opening SET {sets} WHERE id = :key"), {**values, "key": opening_id}
        )
    found = opening_by_id(session=session, opening_id=opening_id)
    assert found is not None
    return found


def openings_by_ids(
    *, session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(
        text(f"SELECT {OPENING_COLUMNS} FROM job_opening o WHERE o.id = ANY(:ids)"),
        {"ids": list(ids)},
    ).mappings()
    return {r["id"]: dict(r) for r in rows}


def seekers_by_ids(
    *, session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(
        text(f"SELECT {SEEKER_COLUMNS} FROM job_seeker js WHERE js.id = ANY(:ids)"),
        {"ids": list(ids)},
    ).mappings()
    return {r["id"]: dict(r) for r in rows}


def in_scope_count(*, session: Session, table: str, scope: str, states: Sequence[str] = ()) -> int:
    """How many seekers (``job_seeker``) or matches (``job_match``) of ``scope`` the caller
    sees, matches in ``states`` only when given."""
    assert table in ("job_seeker", "job_match")
    sql = (
        f"SELECT count(*) FROM {table} t"
        " WHERE t.household_code >= :scope AND t.household_code < :scope || chr(1114111)"
    )
    if states:
        sql += " AND t.state = ANY(:states)"
    return session.execute(text(sql), {"scope": scope, "states": list(states)}).scalar_one()


def seeker_by_id(*, session: Session, seeker_id: uuid.UUID) -> dict[str, Any] | None:
    return q.first_row(
        session, f"SELECT {SEEKER_COLUMNS} FROM job_seeker js WHERE js.id = :id", id=seeker_id
    )


def seekers_page(
    *, session: Session, scope: str, first: int, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    q.area_by_code(session=session, code=scope, argument="scope")
    rows = session.execute(
        text(
            f"SELECT {SEEKER_COLUMNS}, p.code AS person_code FROM job_seeker js"
            " JOIN person p ON p.id = js.person_id"
            " WHERE js.household_code >= :scope AND js.household_code < :scope || chr(1114111)"
            " AND (CAST(:after AS text) IS NULL OR p.code > :after)"
            " ORDER BY p.code LIMIT :limit"
        ),
        {"scope": scope, "after": after, "limit": first + 1},
    ).mappings()
    found = [dict(r) for r in rows]
    return found[:first], len(found) > first


def register_seeker(
    *, session: Session, caller: Caller, person_id: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any]:
    """A resident who seeks work, with their consent (without it, nothing is written)."""
    if values.get("consent") is not True:
        raise BadInput(
            "input.consent", "matching needs the resident's consent: ask first, then register"
        )
    values["skills"] = _tags(values.get("skills") or (), "input.skills")
    values["shifts"] = _shifts(values.get("shifts") or (), "input.shifts")
    for name, field, low, high in (
        ("weekly_hours", "weeklyHours", 1, 84),
        ("min_wage", "minWage", 0, 10_000),
        ("max_walk_meters", "maxWalkMeters", 1, MAX_DISTANCE),
    ):
        if not low <= values[name] <= high:
            raise BadInput(f"input.{field}", f"{values[name]} is out of range: {low} to {high}")
    member = session.execute(
        text(
            "SELECT p.household_id, h.code FROM person p JOIN household h ON h.id = p.household_id"
            " WHERE p.id = :id"
        ),
        {"id": person_id},
    ).first()
    if member is None:
        raise NotFound("input.memberId", f"no member {person_id} in your areas")
    row = session.execute(
        text(
            "INSERT INTO job_seeker (person_id, household_id, household_code, skills, shifts,"
            " weekly_hours, min_wage, max_walk_meters, consent, updated_by)"
            " VALUES (:pid, :hid, :code, :skills, :shifts, :weekly_hours, :min_wage,"
            " :max_walk_meters, true, :by)"
            " ON CONFLICT (person_id) DO UPDATE SET skills = EXCLUDED.skills,"
            " shifts = EXCLUDED.shifts, weekly_hours = EXCLUDED.weekly_hours,"
            " min_wage = EXCLUDED.min_wage, max_walk_meters = EXCLUDED.max_walk_meters,"
            " updated_at = now(), updated_by = EXCLUDED.updated_by RETURNING id"
        ),
        {
            "pid": person_id,
            "hid": member[0],
            "code": member[1],
            "by": caller.worker_code,
            **{
                k: values[k]
                for k in ("skills", "shifts", "weekly_hours", "min_wage", "max_walk_meters")
            },
        },
    ).scalar_one()
    _audit(session, caller, "update", member[0], member[1], ["job_seeker"], {"seeker": str(row)})
    found = seeker_by_id(session=session, seeker_id=row)
    assert found is not None
    return found


def remove_seeker(*, session: Session, caller: Caller, seeker_id: uuid.UUID) -> None:
    """Consent withdrawn or work found elsewhere: the seeker and their matches are deleted."""
    found = seeker_by_id(session=session, seeker_id=seeker_id)
    if found is None:
        raise NotFound("input.seekerId", f"no job seeker {seeker_id} in your areas")
    session.execute(text("DELETE FROM job_seeker WHERE id = :id"), {"id": seeker_id})
    _audit(
        session,
        caller,
        "delete",
        found["household_id"],
        found["household_code"],
        ["job_seeker"],
        {"seeker": str(seeker_id)},
    )


def _audit(
    session: Session,
    caller: Caller,
    action: str,
    household_id: uuid.UUID,
    code: str,
    fields: list[str],
    detail: dict[str, Any],
) -> None:
    audit.record(
        session=session,
        caller=caller,
        request_id=uuid.uuid4(),
        action=action,
        entries=[
            {
                "household_id": household_id,
                "household_code": code,
                "fields": fields,
                "detail": detail,
            }
        ],
    )


def create_offer(
    *, session: Session, caller: Caller, merchant_id: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any]:
    if not (values.get("title") or "").strip():
        raise BadInput("input.title", "an offer needs a title")
    if not 1 <= values["radius_meters"] <= MAX_DISTANCE:
        raise BadInput("input.radiusMeters", f"{values['radius_meters']} is out of range")
    if values.get("valid_until") and values["valid_until"] < values["valid_from"]:
        raise BadInput("input.validUntil", "before validFrom")
    if (
        session.execute(text("SELECT 1 FROM merchant WHERE id = :id"), {"id": merchant_id}).first()
        is None
    ):
        raise NotFound("input.merchantId", f"no merchant {merchant_id}")
    columns = {"merchant_id": merchant_id, "created_by": caller.worker_code, **values}
    row = (
        session.execute(
            text(
                f"INSERT INTO offer ({', '.join(columns)}) VALUES"
                f" ({', '.join(':' + c for c in columns)}) RETURNING *"
            ),
            columns,
        )
        .mappings()
        .one()
    )
    return dict(row)


def offers(*, session: Session, scope: str, today: dt.date) -> list[dict[str, Any]]:
    """Offers valid today whose radius reaches the area ``scope`` or the household with that
    code (its home)."""
    if "-" in scope:
        where = "SELECT location AS g FROM household WHERE code = :scope"
        found = session.execute(text(where), {"scope": scope}).first()
        if found is None:
            raise NotFound("scope", f"no household {scope!r} in your areas")
    else:
        q.area_by_code(session=session, code=scope, argument="scope")
        table = q.AREAS_BY_WIDTH[len(scope)].table
        where = f"SELECT geom AS g FROM {table} WHERE code = :scope"
    rows = session.execute(
        text(
            f"WITH place AS ({where})"
            " SELECT f.*, m.code AS merchant_code"
            " FROM offer f JOIN merchant m ON m.id = f.merchant_id, place"
            " WHERE f.valid_from <= :today"
            " AND (f.valid_until IS NULL OR f.valid_until >= :today)"
            " AND ST_DWithin(m.geom::geography, place.g::geography, f.radius_meters)"
            " ORDER BY m.code, f.created_at"
        ),
        {"scope": scope, "today": today},
    ).mappings()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------------------------
# Matches
# --------------------------------------------------------------------------------------------


def match_by_id(*, session: Session, match_id: uuid.UUID) -> dict[str, Any] | None:
    return q.first_row(
        session, f"SELECT {MATCH_COLUMNS} FROM job_match m WHERE m.id = :id", id=match_id
    )


def propose(
    *, session: Session, caller: Caller, chosen: Sequence[Candidate]
) -> list[dict[str, Any]]:
    """PROPOSED matches for the chosen candidates (their seekers' households must be visible
    to the caller, which the candidates are)."""
    made = []
    for c in chosen:
        code = session.execute(
            text("SELECT household_code FROM job_seeker WHERE id = :id"), {"id": c.seeker_id}
        ).scalar_one()
        row = (
            session.execute(
                text(
                    "INSERT INTO job_match (seeker_id, opening_id, household_code, state, score,"
                    " distance_meters, created_by) VALUES (:s, :o, :code, 'PROPOSED', :score,"
                    f" :d, :by) RETURNING {MATCH_COLUMNS.replace('m.', '')}"
                ),
                {
                    "s": c.seeker_id,
                    "o": c.opening_id,
                    "code": code,
                    "score": c.score,
                    "d": c.distance_meters,
                    "by": caller.worker_code,
                },
            )
            .mappings()
            .one()
        )
        _event(session, row["id"], code, None, "PROPOSED", caller, c.text)
        made.append(dict(row))
    return made


def _event(
    session: Session,
    match_id: uuid.UUID,
    code: str,
    old: str | None,
    new: str,
    caller: Caller,
    note: str | None,
) -> None:
    session.execute(
        text(
            "INSERT INTO job_match_event (match_id, household_code, from_state, to_state,"
            " worker_code, note) VALUES (:m, :code, :old, :new, :by, :note)"
        ),
        {
            "m": match_id,
            "code": code,
            "old": old,
            "new": new,
            "by": caller.worker_code,
            "note": note,
        },
    )


def set_match_state(
    *, session: Session, caller: Caller, match_id: uuid.UUID, to: str, note: str | None
) -> dict[str, Any]:
    row = (
        session.execute(
            text(f"SELECT {MATCH_COLUMNS} FROM job_match m WHERE m.id = :id FOR UPDATE"),
            {"id": match_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("input.matchId", f"no job match {match_id} in your areas")
    allowed = NEXT.get(row["state"], ())
    if to not in allowed:
        raise Conflict(
            "input.to",
            f"a {row['state']} match cannot become {to}"
            + (f": next is {' or '.join(allowed)}" if allowed else ": it is final"),
        )
    session.execute(
        text("UPDATE job_match SET state = :to, updated_at = now() WHERE id = :id"),
        {"to": to, "id": match_id},
    )
    _event(session, match_id, row["household_code"], row["state"], to, caller, note)
    found = match_by_id(session=session, match_id=match_id)
    assert found is not None
    return found


def matches_page(
    *, session: Session, scope: str, states: Sequence[str] | None, first: int, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    q.area_by_code(session=session, code=scope, argument="scope")
    rows = session.execute(
        text(
            f"SELECT {MATCH_COLUMNS} FROM job_match m"
            " WHERE m.household_code >= :scope AND m.household_code < :scope || chr(1114111)"
            " AND (CAST(:states AS text[]) IS NULL OR m.state = ANY(:states))"
            " AND (CAST(:after AS text) IS NULL OR m.id::text > :after)"
            " ORDER BY m.id LIMIT :limit"
        ),
        {
            "scope": scope,
            "states": list(states) if states else None,
            "after": after,
            "limit": first + 1,
        },
    ).mappings()
    found = [dict(r) for r in rows]
    return found[:first], len(found) > first


def events_of(*, session: Session, match_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[dict]]:
    rows = session.execute(
        text(
            "SELECT match_id, from_state, to_state, at, worker_code, note FROM job_match_event"
            " WHERE match_id = ANY(:ids) ORDER BY at, id"
        ),
        {"ids": list(match_ids)},
    ).mappings()
    return q.group_rows(rows, "match_id", match_ids)


def placements(
    *, session: Session, scope: str, since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    """Residents hired nearby in [since, until), per grid of their homes (the caller's areas)."""
    q.area_by_code(session=session, code=scope, argument="scope")
    rows = session.execute(
        text(
            "SELECT left(e.household_code, 15) AS grid, count(DISTINCT e.match_id) AS hired"
            " FROM job_match_event e"
            " WHERE e.to_state = 'HIRED' AND e.at >= :since AND e.at < :until"
            " AND e.household_code >= :scope AND e.household_code < :scope || chr(1114111)"
            " GROUP BY 1 ORDER BY 1"
        ),
        {"scope": scope, "since": since, "until": until},
    ).mappings()
    return [dict(r) for r in rows]
