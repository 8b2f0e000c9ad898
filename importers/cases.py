"""Cases from registers and hotline exports (a 12345 export, Open311-style and US city 311
files) into the model, in bulk: parsed and checked here, staged by COPY, then placed, numbered
and merged by set-based SQL (a hotline export can hold hundreds of thousands of rows).

Rows are ``(where, values)`` with the canonical fields of ``FIELDS``; a reader
(importers.tables) maps a file's headers onto them, and a row whose ``values.problems`` names
one (a formula without a value, an Excel error) is rejected with it. The rules:

- Place: a row needs usable coordinates (missing, unparsable, (0, 0), not finite, out of range
  or swapped: rejected, naming the row and the field). A case outside every grid is not
  imported and counted ``outside``: an export covers more than one subdistrict. Inside, it
  takes the grid and micro-grid containing it, as ``geo.cases.report_case`` does. An upload
  with a scope (``Options.scope``, an area code) places cases in the grids within it only;
  the rest are ``outside``, and a row naming an existing case outside it is rejected.
- Category: through the category map first (foreign name → our code or name), then a name
  equal to one of our codes, Chinese or English names (case and spacing ignored); anything else
  is OTHER with the file's own name kept in ``source_category``. Never rejected.
- Times: ISO 8601 with or without an offset, and the common export forms (see ``parse_time``).
  A time without an offset is local to the subdistrict the case falls in (its ``timezone``),
  converted in SQL after placement. A missing or unreadable report time is rejected; a closing
  time before the report time, and a time more than a day in the future, too.
- State: a rejected status (``REJECTED_STATUSES``) makes a new case REJECTED (no closing time);
  a closed status (``CLOSED_STATUSES``) or a closing time makes it CLOSED (closed without a
  closing time: at its ``updated_at`` (Open311's last change), else at its report time, with a
  warning); otherwise REPORTED, with no unit and no dispatch. Our own state names (Chinese and
  English, as importers.export writes them) are among these: the states between REPORTED and
  CLOSED read as open, as an import never writes them (they need a unit, a dispatch…). A
  status of none of these sets is taken as open, with a warning listing the values.
- The reporter's name and phone, when the export has them, go to the case's reporter columns
  (personal data, as for a hotline case reported in the app).
- Key: our case number (``number``, as an export writes it) first, whatever the source: a
  re-imported export finds the app's own cases. A number we do not know falls back to the
  source id when the row has one, else the row is rejected. Otherwise ``(source,
  external_id)`` with ``external_id`` the row's ``source_id``; a row without one gets
  ``sha1:<digest>`` of the values that identify it (report time, place, category,
  description, address; not the status, which changes). A number or key twice in a file: the
  later row is rejected.
- Re-import: ``import_row`` keeps a digest of what the import wrote (category, source category,
  description, reporter, open/closed/rejected, closing time). A case the file changed is
  updated, unless the app changed it too since the last import: that conflict is listed in the
  warnings and left as it is (``--prefer-file`` takes the file's); so is a case not imported
  (made in the app, found by its number or by the same source and id) that differs. States
  are compared as open, closed or rejected. An update closes a case, rejects one still
  REPORTED, and moves a closed or rejected case back to REPORTED only with ``--prefer-file``
  (never a merged one); any other state the file asks for is a conflict. The place and the
  report time of a case, and so its grid and number, stay as first imported.
- Numbers: ``YYYY-NNNNNN`` of the case's local report year, taken from ``case_counter`` in one
  block per year (what ``next_case_number(year)`` does one at a time), in report-time order.
- Events: a REPORT at the report time, and a CLOSE at the closing time for a closed case (a
  REJECT at the report time for a rejected one); an update adds a CLOSE, REJECT, REOPEN or
  AMEND. Their note says ``imported``; their role is the grid
  center's (the command line is run for it), with no worker code.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo.errors import BadInput
from importers.geometry import points, prepare
from importers.run import Options
from importers.staging import stage
from importers.summary import Summary

KIND = "cases"
FIELDS = ("number", "source_id", "category", "description", "lat", "lon", "requested_at",
          "closed_at", "updated_at", "status", "address", "reporter_name",
          "reporter_phone")  # fmt: skip
SOURCES = ("GRID_WHISTLE", "HOTLINE_12345", "VISIT", "RESIDENT_ONLINE", "OPEN311")
CATCH_ALL = "OTHER"
ROLE = "grid_center"
# Warnings listing rows (conflicts) or values (statuses, categories) stop after this many.
LISTED = 20

# Our own states as an export writes them (importers.export): the codes with --english, else
# the Chinese names the maps use. They read back as open, closed or rejected below.
STATE_NAMES = {"REPORTED": "已上报", "ACCEPTED": "已受理", "REJECTED": "已驳回",
               "DISPATCHED": "已派遣", "HANDLED": "已处置", "RETURNED": "已退回",
               "VERIFIED": "已核查", "CLOSED": "已结案"}  # fmt: skip

# Statuses compared casefolded with spacing, "-" and "_" as one space. Open ones: everything
# before closure in 311 and 12345 systems (and our states between REPORTED and CLOSED: an import
# writes none of them, it only compares); anything else unknown is open too, with a warning.
CLOSED_STATUSES = frozenset({
    "closed", "close", "resolved", "completed", "complete", "done", "finished", "archived",
    "已办结", "办结", "已关闭", "关闭", "已结案", "结案", "已完成", "完成", "已解决", "已处理",
    "已归档", "已回访", "已评价",
})  # fmt: skip
OPEN_STATUSES = frozenset({
    "open", "opened", "new", "assigned", "in progress", "pending", "started", "received",
    "acknowledged", "accepted", "dispatched", "unassigned", "reopened", "submitted",
    "reported", "handled", "returned", "verified",
    "待受理", "已受理", "受理", "处理中", "办理中", "在办", "待办", "待处理", "已派单", "派单",
    "已转办", "转办", "待派单", "新建", "未办结", "待回访", "退回", "已退回",
    "已上报", "已派遣", "已处置", "已核查",
})  # fmt: skip
# Not taken up: a rejected case compares as rejected, not as open (a case REJECTED in the app).
REJECTED_STATUSES = frozenset({"rejected", "已驳回", "驳回", "不予受理"})


# --------------------------------------------------------------------------------------------
# The category map
# --------------------------------------------------------------------------------------------


def load_category_map(path: Path) -> dict[str, str]:
    """Foreign category name → our category (its code, Chinese or English name), from a JSON
    object (``{"Noise - Residential": "NOISE"}``) or, any other extension, a CSV file with the
    header ``source,category`` (UTF-8 with or without BOM, or GB18030). Kept small and by hand:
    a name given twice with different categories is an error."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(str(path), f"not readable ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    where = str(path)
    out: dict[str, str] = {}

    def add(source: Any, category: Any, at: str) -> None:
        if not isinstance(source, str) or not isinstance(category, str):
            raise BadInput(where, f"{at}: names are text")
        source, category = source.strip(), category.strip()
        if not source or not category:
            raise BadInput(where, f"{at}: both the source name and our category are needed")
        if out.get(source, category) != category:
            raise BadInput(where, f"{at}: {source!r} is mapped to {out[source]!r} already")
        out[source] = category

    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except ValueError as e:
            raise BadInput(where, f"not JSON: {e}") from None
        if not isinstance(mapping, dict):
            raise BadInput(where, 'a JSON object is expected: {"their name": "OUR_CODE", …}')
        for source, category in mapping.items():
            add(source, category, repr(source))
        return out
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or ()]
    if "source" not in header or "category" not in header:
        raise BadInput(where, "a CSV file with the header source,category is expected")
    reader.fieldnames = header
    for row in reader:
        add(row["source"], row["category"], f"line {reader.line_num}")
    return out


def _norm(name: str) -> str:
    """Names compared without case and spacing differences (``Illegal  parking``, ``NOISE``)."""
    return " ".join(name.casefold().replace("_", " ").split())


class _Categories:
    """The catalogue (active categories) and the map: a file's name → (our code, the name kept
    as ``source_category``)."""

    def __init__(self, cur: Any, category_map: dict[str, str] | None) -> None:
        cur.execute("SELECT code, name, name_en FROM case_category WHERE active ORDER BY code")
        self.names: dict[str, str] = {}
        self.codes: dict[str, str] = {}
        for code, name, name_en in cur.fetchall():
            self.codes[code] = name
            for n in (code, name, name_en):
                self.names.setdefault(_norm(n), code)
        if CATCH_ALL not in self.codes:
            raise BadInput("case_category", f"the catch-all category {CATCH_ALL} is missing or"
                           " inactive: imports keep unmapped categories under it")  # fmt: skip
        self.mapped: dict[str, str] = {}
        for source, target in (category_map or {}).items():
            code = self.names.get(_norm(target))
            if code is None:
                raise BadInput("category map", f"{target!r} (for {source!r}) is not an active"
                               f" category: one of {', '.join(self.codes)}")  # fmt: skip
            if self.mapped.setdefault(_norm(source), code) != code:
                raise BadInput("category map", f"{source!r} is mapped to two categories")
        self.kept: Counter[str] = Counter()

    def of(self, name: str) -> tuple[str, str | None]:
        """Our code for a file's category name, and the name kept when the code is OTHER."""
        key = _norm(name)
        code = self.mapped.get(key) or self.names.get(key)
        if code is None and name:
            self.kept[name] += 1
        if code is None or code == CATCH_ALL:
            return CATCH_ALL, name or None
        return code, None


# --------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------

# 2024/4/1 10:00, 2024.04.01, 2024年4月1日 10:00, 2024年4月1日10时30分: year first.
_YMD = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]*(\d{1,2})\s*[:：时点]\s*(\d{1,2})\s*(?:[:：分]\s*(\d{1,2}(?:\.\d+)?)\s*秒?|分)?)?"
)
# 04/01/2024 12:00:00 AM, 4/1/2024 13:05: US month first, as the 311 exports write.
_MDY = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?(?:\s*([AaPp])\.?[Mm]\.?)?)?"
)
TIME_FORMS = ("ISO 8601 (2024-04-01T10:00:00, with or without an offset)",
              "2024/4/1 10:00", "2024年4月1日 10:00", "04/01/2024 10:00:00 AM")  # fmt: skip


def parse_time(text: str) -> dt.datetime:
    """A report or closing time: aware if the text has an offset, else naive (local time of the
    case's subdistrict). ValueError when it is none of ``TIME_FORMS``."""
    text = text.strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    m = _YMD.fullmatch(text)
    if m:
        year, month, day, hour, minute, second = m.groups()
        return _datetime(int(year), int(month), int(day), hour, minute, second)
    m = _MDY.fullmatch(text)
    if m:
        month, day, year, hour, minute, second, half = m.groups()
        h = int(hour or 0)
        if half:
            if not 1 <= h <= 12:
                raise ValueError(f"hour {h} with AM/PM")
            h = h % 12 + (12 if half in "Pp" else 0)
        return _datetime(int(year), int(month), int(day), str(h), minute, second)
    raise ValueError("not a date and time")


def _datetime(
    year: int, month: int, day: int, hour: str | None, minute: str | None, second: str | None
) -> dt.datetime:
    seconds = float(second or 0)
    whole = int(seconds)
    return dt.datetime(year, month, day, int(hour or 0), int(minute or 0), whole,
                       round((seconds - whole) * 1_000_000))  # fmt: skip


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    where: str
    number: str | None  # our case number, when the file has one (an export of ours)
    has_source: bool  # the file gave a source id (else the key is a digest)
    key: str
    category_code: str
    source_category: str | None
    description: str
    lon: float
    lat: float
    reporter_name: str | None
    reporter_phone: str | None
    requested: dt.datetime
    closed: bool
    rejected: bool
    closed_at: dt.datetime | None


def status_outcome(status: str) -> str | None:
    """``CLOSED``, ``REJECTED`` or ``OPEN`` for a status the loader knows (ours included, in
    Chinese or English), None for one it does not (taken as open, with a warning)."""
    key = _norm(status.replace("-", " "))
    if key in REJECTED_STATUSES:
        return "REJECTED"
    if key in CLOSED_STATUSES:
        return "CLOSED"
    return "OPEN" if key in OPEN_STATUSES else None


class _Problem(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def _clean(values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in FIELDS:
        v = values.get(name)
        out[name] = "" if v is None else str(v).replace("\x00", "").strip()
    return out


def _time(v: dict[str, str], name: str) -> dt.datetime | None:
    if not v[name]:
        return None
    try:
        t = parse_time(v[name])
    except ValueError:
        raise _Problem(name, f"{v[name]!r} is not a date and time: one of "
                       + ", ".join(TIME_FORMS)) from None  # fmt: skip
    if not 1900 <= t.year <= 9999:
        raise _Problem(name, f"{v[name]!r}: the year is out of range")
    return t


def _coordinate(v: dict[str, str], name: str) -> float:
    if not v[name]:
        raise _Problem(name, "missing: a case needs the coordinates of its place")
    try:
        return float(v[name].replace(",", "."))
    except ValueError:
        raise _Problem(name, f"{v[name]!r} is not a number") from None


def _key(v: dict[str, str]) -> str:
    """The row's source id, or a digest of what identifies the case (not its status)."""
    if v["source_id"]:
        return v["source_id"]
    values = [v[n] for n in ("requested_at", "lat", "lon", "category", "description", "address")]
    return "sha1:" + hashlib.sha1("\x1f".join(values).encode()).hexdigest()[:20]


def _description(v: dict[str, str], category: str) -> str:
    """The file's description, else its category name, else ours; the address (the model has
    no column for it) on a line of its own unless the description holds it already."""
    text = v["description"] or v["category"] or category
    address = v["address"]
    if address and address.casefold() not in text.casefold():
        text = f"{text}\n{address}"
    return text


def _parse(
    where: str, values: dict[str, Any], categories: _Categories, statuses: Counter[str],
    untimed: list[int],
) -> _Row:  # fmt: skip
    """One row checked and read, or a _Problem naming the first field at fault."""
    for field, message in getattr(values, "problems", None) or ():
        raise _Problem(field, message)
    v = _clean(values)
    requested = _time(v, "requested_at")
    if requested is None:
        raise _Problem("requested_at", "missing: when the case was reported")
    closed_at = _time(v, "closed_at")
    lat, lon = _coordinate(v, "lat"), _coordinate(v, "lon")
    if lat == 0 and lon == 0:
        raise _Problem("lat", "(0, 0) is no place: the export has no coordinates for this case")
    outcome = status_outcome(v["status"])
    rejected = outcome == "REJECTED"
    if rejected:
        closed, closed_at = False, None  # a rejected case has no closing time
    elif outcome == "CLOSED":
        closed = True
    else:
        closed = closed_at is not None
        if v["status"] and outcome is None:
            statuses[v["status"]] += 1
    if closed and closed_at is None:
        closed_at = _time(v, "updated_at")
        if closed_at is None:
            untimed[0] += 1
    code, source_category = categories.of(v["category"])
    return _Row(where, v["number"] or None, bool(v["source_id"]), _key(v), code,
                source_category, _description(v, categories.codes[code]), lon, lat,
                v["reporter_name"] or None, v["reporter_phone"] or None, requested, closed,
                rejected, closed_at)  # fmt: skip


def _naive(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is not None and t.tzinfo is None else None


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return t if t is not None and t.tzinfo is not None else None


# --------------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------------

STAGE_COLUMNS = (
    "n integer, where_ text, number text, has_source boolean, key text, category_code text,"
    " source_category text, description text, reporter_name text, reporter_phone text,"
    " geom geometry(Point, 4326), requested_local timestamp, requested_at timestamptz,"
    " closed boolean, rejected boolean, closed_local timestamp, closed_at timestamptz"
)

# In the grid containing the point (and its micro-grid), as geo.cases.CONTAINING, within the
# scope of an upload ('' for none); times without an offset in that subdistrict's zone; closed
# without a time: at the report time. case_id and memo are filled in by RESOLVE.
PLACE = """
CREATE TEMP TABLE case_placed ON COMMIT DROP AS
SELECT t.*, CASE WHEN t.closed THEN coalesce(t.closed_given, t.reported_at) END AS closed_at,
       NULL::uuid AS case_id, NULL::text AS memo
FROM (
    SELECT s.n, s.where_, s.number AS file_number, s.has_source, s.key, s.category_code,
           s.source_category, s.description, s.reporter_name, s.reporter_phone, s.geom,
           s.closed, s.rejected, g.code AS grid_code, m.code AS micro_grid_code, g.timezone,
           coalesce(s.requested_at, s.requested_local AT TIME ZONE g.timezone) AS reported_at,
           coalesce(s.closed_at, s.closed_local AT TIME ZONE g.timezone) AS closed_given
    FROM stage_case s
    JOIN LATERAL (
        SELECT g.id, g.code, sd.timezone FROM grid g
        JOIN subdistrict sd ON sd.code = left(g.code, 9)
        WHERE ST_Covers(g.geom, s.geom) AND starts_with(g.code, left(%(scope)s, 15))
        ORDER BY g.code LIMIT 1
    ) g ON true
    LEFT JOIN LATERAL (
        SELECT m.code FROM micro_grid m WHERE m.grid_id = g.id AND ST_Covers(m.geom, s.geom)
        ORDER BY m.code LIMIT 1
    ) m ON true
    WHERE starts_with(coalesce(m.code, g.code), %(scope)s)
) t
"""

TIME_PROBLEMS = """
SELECT where_, field, message FROM (
    SELECT n, where_, 'requested_at' AS field,
           'in the future (' || to_char(reported_at AT TIME ZONE timezone,
           'YYYY-MM-DD HH24:MI') || ' ' || timezone || ')' AS message
    FROM case_placed WHERE reported_at > now() + interval '1 day'
    UNION ALL
    SELECT n, where_, 'closed_at',
           'before the case was reported (' || to_char(reported_at AT TIME ZONE timezone,
           'YYYY-MM-DD HH24:MI:SS') || ' ' || timezone || ')'
    FROM case_placed WHERE closed_at < reported_at AND reported_at <= now() + interval '1 day'
    UNION ALL
    SELECT n, where_, 'closed_at', 'in the future (' || to_char(closed_at AT TIME ZONE timezone,
           'YYYY-MM-DD HH24:MI') || ' ' || timezone || ')'
    FROM case_placed WHERE closed_at > now() + interval '1 day' AND closed_at >= reported_at
      AND reported_at <= now() + interval '1 day'
) p ORDER BY n
"""
DROP_TIME_PROBLEMS = """
DELETE FROM case_placed
WHERE reported_at > now() + interval '1 day' OR closed_at < reported_at
   OR closed_at > now() + interval '1 day'
"""

SAME_CASE = ("c.source = %(source)s AND coalesce(c.client, '') = ''"
             " AND c.external_id = p.key")  # fmt: skip

# Which case each row is: by our number first, whatever the source (a re-imported export);
# else, when the file has no number or one we do not know but a source id, by (source, source
# id or digest). ``memo``: the case's key in import_row, the same whichever way it was found.
RESOLVE = f"""
UPDATE case_placed p SET case_id = c.id FROM grid_case c WHERE c.number = p.file_number;
UPDATE case_placed p SET case_id = c.id FROM grid_case c
WHERE p.case_id IS NULL AND (p.file_number IS NULL OR p.has_source) AND {SAME_CASE};
UPDATE case_placed p
SET memo = CASE WHEN c.external_id IS NOT NULL AND coalesce(c.client, '') = ''
                THEN c.source || ':' || c.external_id ELSE 'number:' || c.number END
FROM grid_case c WHERE c.id = p.case_id;
UPDATE case_placed SET memo = %(source)s || ':' || key WHERE case_id IS NULL
"""

# Rows that name no case they may change: a number we do not know (and no source id to fall
# back on), a case outside the upload's scope, a case (or a new key) twice in the file.
RESOLVE_PROBLEMS = """
SELECT n, where_, field, message FROM (
    SELECT n, where_, 'number' AS field, 'no case numbered ' || file_number
           || ': leave the number blank for a new case, or give its source id' AS message
    FROM case_placed WHERE case_id IS NULL AND file_number IS NOT NULL AND NOT has_source
    UNION ALL
    SELECT p.n, p.where_, CASE WHEN p.file_number = c.number THEN 'number' ELSE 'source_id' END,
           'case ' || c.number || ' is in ' || coalesce(c.micro_grid_code, c.grid_code)
           || ', outside your area'
    FROM case_placed p JOIN grid_case c ON c.id = p.case_id
    WHERE NOT starts_with(coalesce(c.micro_grid_code, c.grid_code), %(scope)s)
    UNION ALL
    SELECT n, where_, CASE WHEN file_number IS NULL THEN 'source_id' ELSE 'number' END,
           'the same case as ' || first
    FROM (SELECT p.*, first_value(where_) OVER w AS first, row_number() OVER w AS nth
          FROM case_placed p WHERE case_id IS NOT NULL OR file_number IS NULL OR has_source
          WINDOW w AS (PARTITION BY coalesce(case_id::text, memo) ORDER BY n)) t
    WHERE nth > 1
) p ORDER BY n
"""


def _written(case: str, state: str) -> str:
    """The digest of what an import writes of a case: ``import_row`` tells from it whether the
    file or the app changed a case since the last import."""
    return (
        f"md5(json_build_array({case}.category_code, {case}.source_category,"
        f" {case}.description, {case}.reporter_name, {case}.reporter_phone, {state},"
        f" extract(epoch FROM {case}.closed_at))::text)"
    )


# Open, closed or rejected, compared: an import writes no state between REPORTED and CLOSED,
# so a file's DISPATCHED (or a foreign "in progress") equals any open state of the case.
FILE_DIGEST = _written(
    "p", "CASE WHEN p.closed THEN 'CLOSED' WHEN p.rejected THEN 'REJECTED' ELSE 'OPEN' END"
)
ROW_DIGEST = _written(
    "c", "CASE WHEN c.state IN ('CLOSED', 'REJECTED') THEN c.state ELSE 'OPEN' END"
)

# Cases of the file already in the model, and what to do with each: nothing (the same, or the
# file says what it said last time), update (only the file changed, or --prefer-file), or a
# conflict left as it is (the app changed it too, or it was not imported). The state an update
# may write (new_state): CLOSED; REJECTED for a case still REPORTED (as the app rejects);
# REPORTED for a closed or rejected case the file says is open, only with --prefer-file and
# never for a merged one (an import never moves a case back otherwise); else it keeps its own.
MATCH = f"""
CREATE TEMP TABLE case_seen ON COMMIT DROP AS
SELECT t.*,
       CASE WHEN t.file_digest = t.row_digest OR t.file_digest = t.last_file THEN 'same'
            WHEN t.row_digest IS DISTINCT FROM t.last_row AND NOT %(prefer_file)s
                THEN 'conflict'
            WHEN t.new_state IS NULL THEN 'conflict'
            ELSE 'update' END AS action,
       CASE WHEN t.new_state IS NOT NULL THEN NULL
            WHEN t.rejected THEN 'an import rejects only a case still REPORTED'
            WHEN t.merged_into IS NOT NULL THEN 'merged into another case: never reopened'
            ELSE 'reopened by an import only with --prefer-file' END AS why
FROM (
    SELECT p.*, c.number, c.state AS old_state, c.merged_into,
           {FILE_DIGEST} AS file_digest, {ROW_DIGEST} AS row_digest,
           r.file_digest AS last_file, r.row_digest AS last_row,
           CASE WHEN p.closed THEN 'CLOSED'
                WHEN p.rejected THEN CASE WHEN c.state IN ('REPORTED', 'REJECTED')
                                          THEN 'REJECTED' END
                WHEN c.state NOT IN ('CLOSED', 'REJECTED') THEN c.state
                WHEN %(prefer_file)s AND c.merged_into IS NULL THEN 'REPORTED'
           END AS new_state
    FROM case_placed p
    JOIN grid_case c ON c.id = p.case_id
    LEFT JOIN import_row r ON r.kind = 'cases' AND r.key = p.memo
) t
"""

UPDATE = """
UPDATE grid_case c
SET category_code = s.category_code, source_category = s.source_category,
    description = s.description, reporter_name = s.reporter_name,
    reporter_phone = s.reporter_phone, state = s.new_state, closed_at = s.closed_at,
    version = c.version + 1
FROM case_seen s
WHERE c.id = s.case_id AND s.action = 'update'
"""

UPDATE_EVENTS = """
INSERT INTO case_event (case_id, at, action, from_state, to_state, role, note)
SELECT case_id,
       CASE WHEN new_state = 'CLOSED' AND old_state <> 'CLOSED' THEN closed_at
            ELSE clock_timestamp() END,
       CASE WHEN new_state = old_state THEN 'AMEND' WHEN new_state = 'CLOSED' THEN 'CLOSE'
            WHEN new_state = 'REJECTED' THEN 'REJECT' ELSE 'REOPEN' END,
       old_state, new_state, %(role)s, 'imported again: ' || where_
FROM case_seen WHERE action = 'update'
"""

# New cases, in the year of their local report time and in report-time order within it.
NEW = """
CREATE TEMP TABLE case_new ON COMMIT DROP AS
SELECT t.*, row_number() OVER (PARTITION BY t.year ORDER BY t.reported_at, t.n) AS nth
FROM (
    SELECT p.*, gen_random_uuid() AS id, left(gen_random_uuid()::text, 34) AS event_prefix,
           extract(year FROM p.reported_at AT TIME ZONE p.timezone)::integer AS year
    FROM case_placed p
    WHERE p.case_id IS NULL
) t
"""

# One block of numbers per year from the counter next_case_number(year) counts with.
INSERT = """
WITH counts AS (
    SELECT year, count(*) AS n FROM case_new GROUP BY year
), taken AS (
    INSERT INTO case_counter AS c (year, last)
    SELECT year, n FROM counts
    ON CONFLICT (year) DO UPDATE SET last = c.last + EXCLUDED.last
    RETURNING year, last
)
INSERT INTO grid_case (id, number, source, category_code, source_category, description,
                       reporter_name, reporter_phone, location, grid_code, micro_grid_code,
                       state, reported_at, closed_at, external_id)
SELECT s.id, s.year || '-' || lpad(x.number, greatest(6, length(x.number)), '0'),
       %(source)s, s.category_code, s.source_category, s.description, s.reporter_name,
       s.reporter_phone, s.geom, s.grid_code, s.micro_grid_code,
       CASE WHEN s.closed THEN 'CLOSED' WHEN s.rejected THEN 'REJECTED' ELSE 'REPORTED' END,
       s.reported_at, s.closed_at, s.key
FROM case_new s
JOIN counts k USING (year)
JOIN taken t USING (year)
CROSS JOIN LATERAL (SELECT (t.last - k.n + s.nth)::text AS number) x
"""

# Event ids: the case's random prefix and the step's number, so a REPORT and a CLOSE at the
# same instant list in that order (ordered by time, then id), as the demo's events are. A
# rejection's time is not in the files: at the report time.
NEW_EVENTS = """
INSERT INTO case_event (id, case_id, at, action, from_state, to_state, role, note)
SELECT (event_prefix || '00')::uuid, id, reported_at, 'REPORT', NULL, 'REPORTED', %(role)s,
       'imported: ' || where_
FROM case_new
UNION ALL
SELECT (event_prefix || '01')::uuid, id, closed_at, 'CLOSE', 'REPORTED', 'CLOSED', %(role)s,
       'imported: closed in the source system'
FROM case_new WHERE closed
UNION ALL
SELECT (event_prefix || '01')::uuid, id, reported_at, 'REJECT', 'REPORTED', 'REJECTED',
       %(role)s, 'imported: rejected in the source system'
FROM case_new WHERE rejected
"""

# What each written case now holds, for the next import to compare with; only where it is
# not what import_row says already (a second import changes nothing, not even here).
REMEMBER = f"""
INSERT INTO import_row AS r (kind, key, file_digest, row_digest)
SELECT 'cases', p.memo, p.digest, p.digest
FROM (
    SELECT p.memo, {FILE_DIGEST} AS digest FROM case_new p
    UNION ALL
    SELECT memo, file_digest FROM case_seen
    WHERE (action = 'update' OR (action = 'same' AND file_digest = row_digest))
      AND (last_file, last_row) IS DISTINCT FROM (file_digest, file_digest)
) p
ON CONFLICT (kind, key) DO UPDATE
SET file_digest = EXCLUDED.file_digest, row_digest = EXCLUDED.row_digest, imported_at = now()
"""


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------


def load_cases(
    cur: Any,
    rows: Iterable[tuple[str, dict[str, str]]],
    summary: Summary,
    options: Options,
    *,
    source: str = "HOTLINE_12345",
    category_map: dict[str, str] | None = None,
) -> None:
    """Import case rows (see the module's rules) in the caller's transaction, as the tables'
    owner; problems go to ``summary`` and ``importers.run`` decides whether to commit."""
    if source not in SOURCES:
        raise BadInput("--source", f"{source!r} is not one of {', '.join(SOURCES)}")
    summary.touch(KIND)
    categories = _Categories(cur, category_map)
    statuses: Counter[str] = Counter()
    untimed = [0]
    parsed: list[_Row] = []
    read = 0
    for where, values in rows:
        read += 1
        try:
            parsed.append(_parse(where, values, categories, statuses, untimed))
        except _Problem as p:
            summary.reject(KIND, where, p.field, str(p))
    summary.count(KIND, "read", read)
    geoms = prepare(
        KIND, points([r.lon for r in parsed], [r.lat for r in parsed]),
        [r.where for r in parsed], summary, shape="point", crs=options.crs,
    )  # fmt: skip
    staged = []
    first: dict[str, str] = {}
    for r, g in zip(parsed, geoms, strict=True):
        if g is None:
            continue
        # A row with our number is that case whatever its key (two of the app's cases may
        # share the digest of their values); the key identifies the others.
        seen = f"number {r.number}" if r.number else r.key
        if seen in first:
            again = (f"the same report time, place, category and description as {first[seen]},"
                     " and no source id to tell them apart" if seen.startswith("sha1:")
                     else f"{seen} appears again (first at {first[seen]})")  # fmt: skip
            summary.reject(KIND, r.where, "number" if r.number else "source_id", again)
            continue
        first[seen] = r.where
        staged.append((len(staged), r.where, r.number, r.has_source, r.key, r.category_code,
                       r.source_category, r.description, r.reporter_name, r.reporter_phone, g,
                       _naive(r.requested), _aware(r.requested), r.closed, r.rejected,
                       _naive(r.closed_at), _aware(r.closed_at)))  # fmt: skip
    _warn(summary, statuses, untimed[0], categories.kept)

    params = {"source": source, "prefer_file": options.prefer_file, "role": ROLE,
              "scope": options.scope or ""}  # fmt: skip
    stage(cur, "stage_case", STAGE_COLUMNS, staged)
    cur.execute(PLACE, params)
    summary.count(KIND, "outside", len(staged) - cur.rowcount)
    cur.execute(TIME_PROBLEMS)
    for where, field, message in cur.fetchall():
        summary.reject(KIND, where, field, message)
    cur.execute("CREATE INDEX ON case_placed (key)")
    cur.execute("CREATE INDEX ON case_placed (file_number)")
    cur.execute("ANALYZE case_placed")
    cur.execute(RESOLVE, params)
    cur.execute(RESOLVE_PROBLEMS, params)
    refused: list[int] = []
    for n, where, field, message in cur.fetchall():
        if n not in refused:  # one problem a row
            refused.append(n)
            summary.reject(KIND, where, field, message)
    if summary.problems and not options.skip_invalid:
        return  # all or nothing: importers.run rolls back and lists the problems
    cur.execute(DROP_TIME_PROBLEMS)
    cur.execute("DELETE FROM case_placed WHERE n = ANY(%s)", (refused,))

    cur.execute(MATCH, params)
    cur.execute("SELECT action, count(*) FROM case_seen GROUP BY action")
    seen_actions = dict(cur.fetchall())
    cur.execute(UPDATE, params)
    cur.execute(UPDATE_EVENTS, params)
    _conflicts(cur, summary, seen_actions.get("conflict", 0))

    cur.execute(NEW, params)
    cur.execute(INSERT, params)
    inserted = cur.rowcount
    cur.execute(NEW_EVENTS, params)
    cur.execute(REMEMBER, params)
    summary.count(KIND, "inserted", inserted)
    summary.count(KIND, "updated", seen_actions.get("update", 0))
    summary.count(KIND, "unchanged",
                  seen_actions.get("same", 0) + seen_actions.get("conflict", 0))  # fmt: skip


def _conflicts(cur: Any, summary: Summary, n: int) -> None:
    """Cases both the file and the app changed since the last import, or whose state the file
    would move where an import may not, left as the app has them: listed (the first
    ``LISTED``) for a person to settle."""
    if not n:
        return
    cur.execute(
        "SELECT where_, number, CASE WHEN has_source THEN key END, old_state,"
        " CASE WHEN closed THEN 'closed' WHEN rejected THEN 'rejected' ELSE 'open' END, why"
        " FROM case_seen WHERE action = 'conflict' ORDER BY n LIMIT %s", (LISTED,)
    )  # fmt: skip
    summary.warnings.append(
        f"{n:,} cases changed in the app since they were imported and in the file too (or were"
        " not imported): left as they are; --prefer-file takes the file's, except where a"
        " reason is given"
    )
    for where, number, key, state, says, why in cur.fetchall():
        source_id = f" (source id {key})" if key else ""
        reason = f": {why}" if why else ""
        summary.warnings.append(f"  {where}: case {number}{source_id} is {state} in the app,"
                                f" {says} in the file{reason}")  # fmt: skip
    if n > LISTED:
        summary.warnings.append(f"  … and {n - LISTED:,} more")


def _warn(summary: Summary, statuses: Counter[str], untimed: int, kept: Counter[str]) -> None:
    if statuses:
        summary.warnings.append(
            "statuses neither open nor closed, taken as open unless a closing time is given: "
            + _listed(statuses)
        )
    if untimed:
        summary.warnings.append(
            f"closed without a closing (or update) time: {untimed:,} cases, closed at their"
            " report time"
        )
    if kept:
        summary.warnings.append(
            f"categories not in the catalogue, kept as the source category under {CATCH_ALL}"
            " (a category map maps them): " + _listed(kept)
        )


def _listed(counts: Counter[str]) -> str:
    top = counts.most_common(LISTED)
    text = ", ".join(f"{name!r} ({n:,})" for name, n in top)
    return text + (f", … and {len(counts) - LISTED:,} more" if len(counts) > LISTED else "")
