"""Registers into the model: households with their members, workers with their grids and
merchants' job openings, read as ``(where, values)`` rows of canonical fields
(importers.tables), validated here and written by set-based SQL in the import's transaction.

Decisions the three loaders share:

- A blank cell keeps what the database holds (a new row takes the default): a register with an
  empty phone column does not erase the phones workers collected in the app. Nothing is
  deleted: a member or a worker missing from the file is left (and, for members, named in a
  warning), as removing a member needs a reason (moved out, died) the register does not give.
- Conflicts (``import_row``, migration 0012): a row whose file values did not change since the
  last import is unchanged, whatever the app did to it since; a row the file changed is updated
  when the database still holds what the last import wrote, and listed in
  ``summary.conflicts`` (left as it is) when the app changed it too, or when it was made in the
  app (never imported) and differs from the file, unless ``prefer_file``. "What the last import
  wrote" is the household's ``version`` (every app edit of a family file bumps it), and an md5
  of the imported columns for workers and openings (which have no version).
- A conflict counts as unchanged (it is left as it is), as in importers.cases.
- Each wrong field is a Problem naming the row; a household is refused whole (all its rows)
  and counted once, as households are what the counts count (a row that names no usable
  address counts as one).
- Members are matched by their code (``member_code``, ``<household>-NN``, as an export writes
  it) first, else by ID number, else by name and birth year: twins of one name and year need
  the code or ID numbers. A code of another household, or of no member of an existing one, is
  refused; a new household keeps the file's codes.
- ``Options.scope`` (an upload by a grid center or a community: its area code) limits what a
  file may touch: households outside it are ``outside``; workers must belong to it, and so
  must existing workers the file names; openings must be of merchants in it (in a building of
  a micro-grid within it, or standing in its area). The others are refused with their rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from geo.family_files import CHANNELS, SNAPSHOT, VISIT_TIMES
from geo.jobs import SHIFTS
from geo.models import PERSON_FLAGS
from geo.pii import Vault, mask_id
from importers.codes import level_of
from importers.geometry import points, prepare
from importers.run import Options
from importers.staging import stage
from importers.summary import Problem, Summary
from importers.tables import split_list

Rows = Iterable[tuple[str, Mapping[str, str]]]
Issue = tuple[str, str | None, str]  # where, field, message

# --------------------------------------------------------------------------------------------
# Values: text of a cell to what the model stores, or ValueError with the reason
# --------------------------------------------------------------------------------------------


def _raw(values: Mapping[str, str], name: str) -> str | None:
    """Free text as written (names, titles, notes): stripped, None when blank."""
    value = values.get(name)
    return (str(value).strip() or None) if value is not None else None


def _unmasked(values: Mapping[str, str], name: str) -> str | None:
    """A phone or ID number, None when blank or masked (``138****5678``, as an export for a
    role that may not read them writes them): kept as the database has it, never stored."""
    text = _raw(values, name)
    return None if text is not None and "*" in text else text


_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s\-]+")


def _norm(text: str) -> str:
    """Codes and keywords compared: full-width forms made half-width, spaces dropped."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text))


def _token(values: Mapping[str, str], name: str) -> str | None:
    text = _raw(values, name)
    return _norm(text) or None if text is not None else None


def _keyword(text: str) -> str:
    return _SEPARATORS.sub("_", unicodedata.normalize("NFKC", text).strip()).upper()


def _choice(text: str, table: Mapping[str, str], what: str) -> str:
    found = table.get(_keyword(text))
    if found is None:
        allowed = ", ".join(dict.fromkeys(table.values()))
        raise ValueError(f"{text!r} is not a {what}: one of {allowed}")
    return found


def _named(codes: Sequence[str], chinese: Mapping[str, str]) -> dict[str, str]:
    """A keyword table: the codes themselves, and their Chinese names."""
    return {**{c: c for c in codes}, **{_keyword(k): v for k, v in chinese.items()}}


_DATE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YEAR = re.compile(r"^(\d{4})\s*年?$")
_YEAR_MONTH = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$")


def parse_date(text: str) -> dt.date:
    """ISO (``2023-05-01``, with a time of day from Excel), ``2023/5/1``, ``2023.5.1``,
    ``2023年5月1日`` or ``20230501``."""
    t = unicodedata.normalize("NFKC", text).strip()
    m = _DATE.match(t) or _COMPACT_DATE.match(t)
    if m is None:
        raise ValueError(f"{text!r} is not a date (2023-05-01, 2023/5/1 or 2023年5月1日)")
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar") from None


def parse_birth_year(text: str) -> int:
    """A year (``1980``, ``1980年``), a month (``1980-05``, ``1980年5月``) or a date."""
    t = unicodedata.normalize("NFKC", text).strip()
    m = _YEAR.match(t) or _YEAR_MONTH.match(t)
    if m is not None:
        if m.re is _YEAR_MONTH and not 1 <= int(m[2]) <= 12:
            raise ValueError(f"{text!r} is not a year and month")
        year = int(m[1])
    else:
        try:
            year = parse_date(t).year
        except ValueError:
            raise ValueError(f"{text!r} is not a year or date of birth") from None
    if not 1880 <= year <= dt.date.today().year:
        raise ValueError(f"{year} is not a plausible year of birth")
    return year


_NUMBER_UNITS = re.compile(r"(元/小时|元/时|元/月|元|人|名|个|小时/周|小时|h)$", re.I)


def parse_int(text: str, low: int, high: int | None = None) -> int:
    """A whole number (``1,200``, ``12.0``, ``25元``), low…high."""
    t = _NUMBER_UNITS.sub("", _norm(text)).replace(",", "")
    try:
        number = float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not number.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    value = int(number)
    if value < low or (high is not None and value > high):
        upper = f"…{high}" if high is not None else " or more"
        raise ValueError(f"{value} is out of range ({low}{upper})")
    return value


_TRUE = frozenset(("是", "Y", "YES", "TRUE", "T", "1", "√", "✓", "✔", "有", "X"))
_FALSE = frozenset(("否", "N", "NO", "FALSE", "F", "0", "×", "✗", "无", "-"))


def parse_flag(text: str) -> bool:
    t = _keyword(text)
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"{text!r} is not yes or no (是/否, Y/N, 1/0)")


GENDERS = _named(("F", "M"), {"女": "F", "男": "M", "女性": "F", "男性": "M",
                              "FEMALE": "F", "MALE": "M"})  # fmt: skip
CLASSES = _named(("A", "B", "C"), {"甲": "A", "乙": "B", "丙": "C"})
CONTACTS = _named(CHANNELS, {
    "上门": "DOOR", "入户": "DOOR", "走访": "DOOR", "电话": "PHONE", "微信": "WECHAT",
    "邮件": "EMAIL", "电子邮件": "EMAIL", "邮箱": "EMAIL", "E_MAIL": "EMAIL",
    "线上群": "ONLINE_GROUP", "微信群": "ONLINE_GROUP", "社区群": "ONLINE_GROUP",
})  # fmt: skip
TIMES = _named(VISIT_TIMES, {
    "工作日白天": "WEEKDAY_DAYTIME", "平日白天": "WEEKDAY_DAYTIME",
    "工作日晚上": "WEEKDAY_EVENING", "工作日晚间": "WEEKDAY_EVENING",
    "平日晚上": "WEEKDAY_EVENING", "周末": "WEEKEND",
})  # fmt: skip
ROLES = _named(("GRID_CENTER", "COMMUNITY", "GRID_WORKER", "MICRO_GRID_LEADER", "DEPARTMENT"), {
    "网格中心": "GRID_CENTER", "网格化中心": "GRID_CENTER", "社区": "COMMUNITY",
    "社区工作者": "COMMUNITY", "网格员": "GRID_WORKER", "专职网格员": "GRID_WORKER",
    "块长": "GRID_WORKER", "微网格长": "MICRO_GRID_LEADER", "部门": "DEPARTMENT",
    "职能部门": "DEPARTMENT",
})  # fmt: skip
SHIFT_NAMES = _named(SHIFTS, {
    "工作日上午": "WEEKDAY_MORNING", "工作日下午": "WEEKDAY_AFTERNOON",
    "工作日晚上": "WEEKDAY_EVENING", "工作日晚间": "WEEKDAY_EVENING",
    "周末白天": "WEEKEND_DAYTIME", "周末晚上": "WEEKEND_EVENING", "周末晚间": "WEEKEND_EVENING",
})  # fmt: skip


def parse_class(text: str) -> str:
    return _choice(re.sub(r"(类户|类|户)$", "", _norm(text)), CLASSES, "household class")


_ID18 = re.compile(r"^\d{17}[\dX]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_OTHER_ID = re.compile(r"^(?=.*[A-Z])[0-9A-Z()\-]{5,30}$")


def parse_id_number(text: str) -> tuple[str, int | None, str | None]:
    """(number, birth year, gender) of a resident ID card (18 characters, check digit and
    birth date checked); a passport or permit number (letters and digits) is kept as written,
    telling nothing. Messages never repeat the number (they go to logs and rejects files)."""
    t = _norm(text).upper()
    if _ID18.match(t):
        total = sum(int(d) * w for d, w in zip(t[:17], _ID_WEIGHTS, strict=True))
        if _ID_CHECK[total % 11] != t[17]:
            raise ValueError(f"{mask_id(t)} is not a valid ID number: its check digit is wrong")
        try:
            born = dt.date(int(t[6:10]), int(t[10:12]), int(t[12:14]))
        except ValueError:
            raise ValueError(f"{mask_id(t)}: the birth date in this ID number is no date") from None
        return t, born.year, "M" if int(t[16]) % 2 else "F"
    if _OTHER_ID.match(t):
        return t, None, None
    raise ValueError(f"{mask_id(t)} is not an ID number (18 characters on a resident ID card, "
                     "or a passport or permit number)")  # fmt: skip


def parse_phone(text: str) -> str:
    t = _norm(text)
    if re.match(r"^\d(\.\d+)?E\+?\d+$", t, re.I):
        raise ValueError(f"{text!r} was saved as a number in scientific notation: format the "
                         "column as text in Excel and enter it again")  # fmt: skip
    if not re.match(r"^\+?[0-9][0-9\-()]{4,24}$", t):
        raise ValueError(f"{text!r} is not a phone number")
    return t


def _unit(text: str | None) -> str | None:
    """``2``, ``2单元``, ``02`` alike: the unit as the demo writes it (``2``)."""
    if text is None:
        return None
    t = re.sub(r"单元$", "", text)
    return str(int(t)) if t.isdigit() else t or None


def _room(text: str | None) -> str | None:
    """``302``, ``302室``, ``0302`` alike: a floor and a two-digit room, four digits."""
    if text is None:
        return None
    t = re.sub(r"(室|号|房)$", "", text)
    return t.zfill(4) if t.isdigit() and len(t) == 3 else t or None


def _digest(payload: Any) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


def _refuse(summary: Summary, kind: str, issues: Sequence[Issue]) -> None:
    """Every problem of one household or row listed; the thing counted once as rejected."""
    for where, name, message in issues:
        summary.problems.append(Problem(kind, where, name, message))
    summary.count(kind, "rejected")


def _decide(
    stored: tuple[str, str] | None,
    file_digest: str,
    row_digest: str | None,
    differs: bool,
    prefer_file: bool,
) -> str:
    """What to do with a row of a register that is in the database already: ``unchanged``
    (nothing to write), ``record`` (nothing to write but the digests), ``update`` or
    ``conflict``. ``stored``: the digests the last import recorded, None if never imported."""
    if stored is not None and stored[0] == file_digest:
        return "unchanged"
    if not differs:
        return "record"
    if prefer_file or (stored is not None and stored[1] == row_digest):
        return "update"
    return "conflict"


def _conflict(
    summary: Summary,
    kind: str,
    key: str,
    where: str,
    stored: tuple[str, str] | None,
    why: str | None = None,
) -> None:
    """Listed, and counted as unchanged (as the cases importer does): it is left as it is."""
    if why is None and stored is None:
        why = "was made in the app (never imported) and differs from the file"
    elif why is None:
        why = "changed in the app since the last import, and in the file too"
    summary.conflicts.append(f"{kind} {key} ({where}): {why}; left as it is")
    summary.count(kind, "unchanged")


def _record(cur: Any, kind: str, table: str, join: str, digest_sql: str) -> None:
    """Remember the file's digest and the row as written, for the next import."""
    cur.execute(f"""
        INSERT INTO import_row (kind, key, file_digest, row_digest)
        SELECT '{kind}', s.key, s.file_digest, {digest_sql} FROM {table} s {join}
        ON CONFLICT (kind, key) DO UPDATE SET file_digest = EXCLUDED.file_digest,
            row_digest = EXCLUDED.row_digest, imported_at = now()
    """)


# --------------------------------------------------------------------------------------------
# Households and their members
# --------------------------------------------------------------------------------------------

HOUSEHOLD_FIELDS = ("household_class", "moved_in", "contact_preference", "visit_times", "notes")
MEMBER_COLUMNS = ("name", "gender", "relation", "birth_year", "phone", *PERSON_FLAGS)
# A row is a member's when any of these is filled in.
MEMBER_INPUTS = ("member_code", "name", "gender", "relation", "birth_year", "birth_date", "phone",
                 "id_number", *PERSON_FLAGS)  # fmt: skip
HOUSEHOLD_CODE = re.compile(r"^([0-9]{21})-(?:([^-]+)-)?([^-]+)$")


@dataclass
class _Row:
    where: str
    values: Mapping[str, str]
    issues: list[Issue] = field(default_factory=list)
    building: str | None = None  # a building's code (or source key) as written
    xy: tuple[float, float] | None = None  # lon, lat as written (the file's CRS)
    point: Any = None  # the WGS-84 point
    unit: str | None = None
    room: str | None = None
    code: str | None = None  # a household code written in the file
    renamed: tuple[str, str] | None = None  # (old, new) building code: a redraw changed it

    def problem(self, name: str | None, message: str) -> None:
        self.issues.append((self.where, name, message))

    def follow(self, code: str | None) -> str | None:
        """`code` (a household's or a member's, written under the building's old code) as now."""
        if code is None or self.renamed is None or not code.startswith(self.renamed[0]):
            return code
        return self.renamed[1] + code[len(self.renamed[0]) :]


@dataclass
class _Household:
    code: str
    building_id: str
    building: str
    unit: str | None
    room: str
    rows: list[_Row]
    values: dict[str, Any] = field(default_factory=dict)  # HOUSEHOLD_FIELDS, None: blank
    members: list[dict[str, Any]] = field(default_factory=list)
    file_digest: str = ""

    @property
    def where(self) -> str:
        return self.rows[0].where


def _address(row: _Row) -> None:
    """Building (code, or from a household code) or coordinates, unit and room of one row."""
    v = row.values
    for name, message in getattr(v, "problems", ()):
        row.problem(name, message)
    row.code = _token(v, "code")
    row.building = _token(v, "building")
    row.unit = _unit(_token(v, "unit"))
    row.room = _room(_token(v, "room"))
    lon, lat = _raw(v, "lon"), _raw(v, "lat")
    if (lon is None) != (lat is None):
        row.problem("lon" if lon is None else "lat", "missing: give longitude and latitude")
    elif lon is not None and lat is not None:
        xy = []
        for name, text in (("lon", lon), ("lat", lat)):
            try:
                xy.append(float(_norm(text)))
            except ValueError:
                row.problem(name, f"{text!r} is not a number")
        if len(xy) == 2:
            row.xy = (xy[0], xy[1])
    if row.code is not None and row.building is None and row.xy is None:
        m = HOUSEHOLD_CODE.match(row.code)
        if m is None:
            row.problem("code", f"{row.code!r} is not a household code (<building>-<unit>-<room>)")
        else:
            row.building = m[1]
            row.unit = row.unit or _unit(m[2])
            row.room = row.room or _room(m[3])
    if row.room is None:
        row.problem("room", "missing")
    if row.building is None and lon is None and lat is None:
        row.problem("building", "missing: give the building's code, or its coordinates (lon, lat)")


def _household_values(h: _Household) -> list[Issue]:
    """The household's own fields, from whichever rows fill them in (they must agree)."""
    issues: list[Issue] = []
    first: dict[str, tuple[Any, str]] = {}
    for row in h.rows:
        v = row.values
        parsed: dict[str, Any] = {}
        try:
            text = _raw(v, "class")
            parsed["household_class"] = parse_class(text) if text else None
        except ValueError as exc:
            issues.append((row.where, "class", str(exc)))
        try:
            text = _raw(v, "moved_in")
            day = parse_date(text) if text else None
            if day is not None and day > dt.date.today():
                raise ValueError(f"{day} is in the future")
            parsed["moved_in"] = day
        except ValueError as exc:
            issues.append((row.where, "moved_in", str(exc)))
        try:
            text = _raw(v, "contact_preference")
            parsed["contact_preference"] = (
                _choice(text, CONTACTS, "contact preference") if text else None
            )
        except ValueError as exc:
            issues.append((row.where, "contact_preference", str(exc)))
        try:
            text = _raw(v, "visit_times")
            parsed["visit_times"] = (
                sorted({_choice(t, TIMES, "visit time") for t in split_list(text)},
                       key=VISIT_TIMES.index) if text else None
            )  # fmt: skip
        except ValueError as exc:
            issues.append((row.where, "visit_times", str(exc)))
        parsed["notes"] = _raw(v, "notes")
        for name, value in parsed.items():
            if value is None:
                continue
            if name not in first:
                first[name] = (value, row.where)
            elif first[name][0] != value:
                was, at = first[name]
                issues.append((row.where, name, f"{_shown(value)} here, {_shown(was)} at {at}: "
                               "one household, one value"))  # fmt: skip
    h.values = {name: first[name][0] if name in first else None for name in HOUSEHOLD_FIELDS}
    return issues


def _shown(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _member(row: _Row, vault: Vault) -> dict[str, Any] | None:
    """One member from a row (None: a row of household fields only); problems on the row."""
    v = row.values
    if not any(v.get(name) for name in MEMBER_INPUTS):
        return None
    m: dict[str, Any] = {
        "where": row.where,
        "code": row.follow(_token(v, "member_code")),
        "name": _raw(v, "name"),
        "relation": _raw(v, "relation"),
    }
    if m["name"] is None:
        row.problem("name", "missing: each member needs a name")
    for name, parse in (("gender", lambda t: _choice(t, GENDERS, "gender")),
                        ("birth_year", parse_birth_year), ("phone", parse_phone)):  # fmt: skip
        text = _unmasked(v, name) if name == "phone" else _raw(v, name)
        m[name] = _parsed(row, name, text, parse)
    born = _raw(v, "birth_date")
    if born is not None:
        try:
            year = parse_birth_year(born)
            if m["birth_year"] is not None and m["birth_year"] != year:
                row.problem(
                    "birth_date", f"born in {year}, but the birth year says {m['birth_year']}"
                )
            m["birth_year"] = year
        except ValueError as exc:
            row.problem("birth_date", str(exc))
    m["id_number"] = m["digest"] = None
    text = _unmasked(v, "id_number")
    if text is not None:
        try:
            number, year, gender = parse_id_number(text)
            m["id_number"], m["digest"] = number, vault.digest(number)
            if year is not None and m["birth_year"] not in (None, year):
                row.problem("birth_year", f"{m['birth_year']}, but the ID number says {year}")
            if gender is not None and m["gender"] not in (None, gender):
                row.problem("gender", f"{m['gender']}, but the ID number says {gender}")
            m["birth_year"] = m["birth_year"] or year
            m["gender"] = m["gender"] or gender
        except ValueError as exc:
            row.problem("id_number", str(exc))
    for flag in PERSON_FLAGS:
        m[flag] = _parsed(row, flag, _raw(v, flag), parse_flag)
    return m


def _parsed(row: Any, name: str, text: str | None, parse: Callable[[str], Any]) -> Any:
    """``parse(text)``, or None with the row's problem named by field."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        row.problem(name, str(exc))
        return None


def _file_digest(h: _Household, vault: Vault) -> str:
    """The household's values in the file, normalised; keyed with the secret (names, phones
    and ID numbers go in: a plain hash of them could be guessed from a dump)."""
    members = sorted(
        [[m[c] for c in MEMBER_COLUMNS] + [m["digest"].hex() if m["digest"] else None]
         + ([m["code"]] if m["code"] else []) for m in h.members], key=json.dumps,
    )  # fmt: skip
    payload = {"code": h.code, **h.values, "members": members}
    return vault.digest(_digest(payload)).hex()


# Building codes a grid redraw changed (migration 0014), what they are now (after every later
# redraw too) and the day of the first change.
RENAMED = """
SELECT c.old_code, gridmap_code_now('building', c.old_code),
       (d.drawn_at AT TIME ZONE s.timezone)::date
FROM code_change c JOIN grid_drawing d ON d.id = c.drawing_id
JOIN community m ON m.id = d.community_id JOIN subdistrict s ON s.id = m.subdistrict_id
WHERE c.kind = 'building' AND c.old_code = ANY(%s)
"""


def _follow_renames(cur: Any, kind: str, rows: list[_Row], summary: Summary) -> None:
    """A file written before a grid redraw still imports: each code it gives of a building the
    redraw moved (and of that building's households and members) is read as the code now."""
    old = sorted({r.building for r in rows if r.building is not None})
    if not old:
        return
    cur.execute(RENAMED, (old,))
    renamed = {o: (n, at) for o, n, at in cur.fetchall()}
    if not renamed:
        return
    for row in rows:
        if row.building in renamed:
            row.renamed = (row.building, renamed[row.building][0])
            row.building, row.code = row.renamed[1], row.follow(row.code)
    first = min(renamed.items(), key=lambda kv: kv[1][1])
    summary.warnings.append(
        f"{kind}: {len(renamed):,} building codes in the file were changed by a grid redraw, "
        f"read as their new codes (e.g. {first[0]} → {first[1][0]}, redrawn "
        f"{first[1][1]}); export the register again for the codes now"
    )


# Inside: in a micro-grid within the scope (an area code prefix; '' when there is none).
BUILDINGS_BY_CODE = """
SELECT b.code, b.source_key, b.id::text, coalesce(starts_with(m.code, %(scope)s), false)
FROM building b LEFT JOIN micro_grid m ON m.id = b.micro_grid_id
WHERE b.code = ANY(%(codes)s) OR b.source_key = ANY(%(codes)s)
"""

BUILDINGS_AT = """
SELECT v.i, b.code, b.id::text, coalesce(starts_with(b.micro_grid, %(scope)s), false),
       EXISTS (SELECT 1 FROM micro_grid m WHERE ST_Contains(m.geom, v.pt)
               AND starts_with(m.code, %(scope)s))
FROM (SELECT i, ST_SetSRID(ST_Point(x, y), 4326) AS pt
      FROM unnest(%(i)s::int[], %(x)s::float8[], %(y)s::float8[]) AS u(i, x, y)) v
LEFT JOIN LATERAL (
    SELECT b.code, b.id, m.code AS micro_grid FROM building b
    LEFT JOIN micro_grid m ON m.id = b.micro_grid_id
    WHERE ST_Contains(b.geom, v.pt) ORDER BY b.code LIMIT 1
) b ON true
"""

# The households of the file as they stand, locked: an app edit waits for the import (and
# the import for it), so neither overwrites the other unseen.
HOUSEHOLDS_NOW = """
SELECT h.id::text, h.code, h.household_class, h.moved_in, h.contact_preference, h.visit_times,
       h.notes, h.version, h.moved_out,
       greatest(
           (SELECT max(right(p.code, 2)::int) FROM person p WHERE p.household_id = h.id),
           (SELECT max(right(m ->> 'code', 2)::int) FROM family_file_history f,
                   jsonb_array_elements(f.file -> 'members') m WHERE f.household_id = h.id)),
       r.file_digest, r.row_digest
FROM household h
LEFT JOIN import_row r ON r.kind = 'households' AND r.key = h.code
WHERE h.code = ANY(%(codes)s)
FOR UPDATE OF h
"""

MEMBERS_NOW = f"""
SELECT p.household_id::text, p.id::text, p.code, {", ".join(f"p.{c}" for c in MEMBER_COLUMNS)},
       p.id_number_digest
FROM person p WHERE p.household_id = ANY(%(ids)s::uuid[]) ORDER BY p.code
"""

STAGE_HOUSEHOLDS = (
    "id uuid, new boolean, code text, building_id uuid, unit text, room text,"
    " household_class text, moved_in date, contact_preference text, visit_times text[],"
    " notes text, location geometry(Point, 4326), where_ text, fields text[]"
)
STAGE_PERSONS = (
    "new boolean, id uuid, household_id uuid, code text, name text, gender text, relation text,"
    " birth_year smallint, phone text, "
    + "".join(f"{flag} boolean, " for flag in PERSON_FLAGS)
    + "id_sealed bytea, id_digest bytea, id_masked text"
)

# Like an app edit (geo.family_files): the file as it stood before its first recorded change,
# the change, the version bumped and the file as it now stands appended to its history.
HISTORY = f"""
INSERT INTO family_file_history (household_id, household_code, version, at, worker_code, role,
                                 action, reason, file)
SELECT h.id, h.code, h.version, %(at)s::timestamptz, NULL, 'import', %(action)s, %(reason)s,
       {SNAPSHOT}
FROM household h JOIN stage_household s ON s.id = h.id AND NOT s.new
"""

WRITE_HOUSEHOLDS = f"""
INSERT INTO household (id, code, building_id, unit, room, household_class, moved_in,
                       contact_preference, visit_times, notes, location)
SELECT s.id, s.code, s.building_id, s.unit, s.room, s.household_class, s.moved_in,
       s.contact_preference, s.visit_times, s.notes,
       coalesce(s.location, (SELECT ST_PointOnSurface(b.geom) FROM building b
                             WHERE b.id = s.building_id))
FROM stage_household s WHERE s.new;

UPDATE household h SET household_class = s.household_class, moved_in = s.moved_in,
       contact_preference = s.contact_preference, visit_times = s.visit_times, notes = s.notes
FROM stage_household s WHERE h.id = s.id AND NOT s.new;

UPDATE person p SET {", ".join(f"{c} = s.{c}" for c in MEMBER_COLUMNS)},
       id_number_sealed = coalesce(s.id_sealed, p.id_number_sealed),
       id_number_digest = coalesce(s.id_digest, p.id_number_digest),
       id_number_masked = coalesce(s.id_masked, p.id_number_masked)
FROM stage_person s WHERE p.id = s.id AND NOT s.new;

INSERT INTO person (id, household_id, code, {", ".join(MEMBER_COLUMNS)}, id_number_sealed,
                    id_number_digest, id_number_masked)
SELECT s.id, s.household_id, s.code, {", ".join(f"s.{c}" for c in MEMBER_COLUMNS)},
       s.id_sealed, s.id_digest, s.id_masked
FROM stage_person s WHERE s.new;

UPDATE household h SET version = h.version + 1
FROM stage_household s WHERE h.id = s.id AND NOT s.new;
"""

AUDIT = """
INSERT INTO audit_entry (worker_code, role, action, household_id, household_code, fields,
                         remote, request_id, detail)
SELECT NULL, 'import', CASE WHEN s.new THEN 'create' ELSE 'update' END, h.id, h.code, s.fields,
       NULL, %(request)s::uuid,
       jsonb_build_object('action', 'IMPORT', 'where', s.where_, 'version', h.version)
FROM stage_household s JOIN household h ON h.id = s.id
"""


def load_households(
    cur: Any, rows: Rows, summary: Summary, options: Options, *, vault: Vault | None = None
) -> None:
    """Households and their members, one row per member (household columns repeated, or on
    one row only). ``vault`` seals ID numbers (default: the settings' secret key, as the app
    reads them)."""
    kind = "households"
    summary.touch(kind)
    vault = vault or _settings_vault()
    start = len(summary.problems)
    parsed = []
    for where, values in rows:
        row = _Row(where, values)
        _address(row)
        parsed.append(row)
    usable: list[_Row] = []
    for row in parsed:
        if any(name in ("room", "building", "lon", "lat", "code") for _, name, _ in row.issues):
            summary.count(kind, "read")
            _refuse(summary, kind, row.issues)
        else:
            usable.append(row)
    usable = _points(kind, usable, summary, options)
    _follow_renames(cur, kind, usable, summary)
    households = _place(cur, kind, usable, summary, options.scope)
    valid: list[_Household] = []
    for h in households:
        summary.count(kind, "read")
        issues = _household_values(h)
        seen: dict[Any, str] = {}
        for row in h.rows:
            member = _member(row, vault)
            if member is None:
                continue
            code = member["code"]
            if code is not None and _member_number(h.code, code) is None:
                row.problem("member_code", f"{code} is not a member of household {h.code} "
                            f"(its members are {h.code}-01, -02, …)")  # fmt: skip
            # A member code tells members apart; without one, an ID number, else name and year.
            keys = [k for k in (code, member["digest"]) if k is not None]
            keys = keys or [(member["name"], member["birth_year"])]
            again = next((k for k in keys if k in seen), None)
            if again is not None:
                row.problem("member_code" if again == code else "name",
                            f"the same member as at {seen[again]}")  # fmt: skip
            for k in keys:
                seen.setdefault(k, row.where)
            h.members.append(member)
        issues += [issue for row in h.rows for issue in row.issues]
        if issues:
            _refuse(summary, kind, list(dict.fromkeys(issues)))
            continue
        h.file_digest = _file_digest(h, vault)
        valid.append(h)
    # Problems in the order of the file's rows (buildings are looked up before fields).
    order = {row.where: n for n, row in enumerate(parsed)}
    summary.problems[start:] = sorted(
        summary.problems[start:], key=lambda p: order.get(p.where, len(order))
    )
    _write_households(cur, valid, summary, options, vault)


def _settings_vault() -> Vault:
    from api.settings import Settings

    return Vault(Settings().secret_key)


def _points(kind: str, rows: list[_Row], summary: Summary, options: Options) -> list[_Row]:
    """Coordinates to WGS-84 points (refused rows named by geometry.prepare and dropped)."""
    with_xy = [row for row in rows if row.xy is not None]
    if not with_xy:
        return rows
    xs = [r.xy[0] for r in with_xy if r.xy is not None]
    ys = [r.xy[1] for r in with_xy if r.xy is not None]
    geoms = prepare(kind, points(xs, ys), [r.where for r in with_xy], summary, shape="point",
                    crs=options.crs)  # fmt: skip
    refused = set()
    for row, geom in zip(with_xy, geoms, strict=True):
        if geom is None:
            summary.count(kind, "read")
            refused.add(id(row))
        row.point = geom
    return [row for row in rows if id(row) not in refused]


def _place(
    cur: Any, kind: str, rows: list[_Row], summary: Summary, scope: str | None
) -> list[_Household]:
    """Rows grouped into households by building (by code, or the one containing the point),
    unit and room. Unknown buildings are refused, a household per group; households whose
    building is outside every grid, or outside the scope of an upload (a grid center's own
    area), are counted as outside, not imported."""
    scope = scope or ""
    codes = sorted({r.building for r in rows if r.building is not None})
    by_code: dict[str, tuple[str, str, bool]] = {}
    if codes:
        cur.execute(BUILDINGS_BY_CODE, {"codes": codes, "scope": scope})
        for code, key, bid, inside in cur.fetchall():
            by_code[code] = (code, bid, inside)
            if key is not None:
                by_code.setdefault(key, (code, bid, inside))
    at: dict[int, tuple[str | None, str | None, bool, bool]] = {}
    located = [r for r in rows if r.building is None]
    if located:
        cur.execute(BUILDINGS_AT, {"i": list(range(len(located))),
                                   "x": [r.point.x for r in located],
                                   "y": [r.point.y for r in located], "scope": scope})  # fmt: skip
        for i, code, bid, inside, in_grid in cur.fetchall():
            at[id(located[i])] = (code, bid, bool(inside), in_grid)
    groups: dict[Any, list[_Row]] = {}
    found: dict[str, tuple[str, str, bool]] = {}
    for row in rows:
        if row.building is not None:
            hit = by_code.get(row.building)
            if hit is None:
                groups.setdefault(("unknown", row.building, row.unit, row.room), []).append(row)
                continue
            building, bid, inside = hit
        else:
            code, bid, inside, in_grid = at[id(row)]
            if code is None:
                key = ("nowhere" if in_grid else "outside", row.xy, row.unit, row.room)
                groups.setdefault(key, []).append(row)
                continue
            building = code
        assert row.room is not None
        hcode = "-".join(p for p in (building, row.unit, row.room) if p)
        if row.code is not None and row.code != hcode:
            row.problem("code", f"{row.code} does not match the building, unit and room ({hcode})")
        found[hcode] = (building, bid, inside)
        groups.setdefault(hcode, []).append(row)
    out = []
    for key, members in groups.items():
        if isinstance(key, tuple):
            summary.count(kind, "read")
            what, *_ = key
            if what == "outside":
                summary.count(kind, "outside")
            elif what == "unknown":
                _refuse(summary, kind, [(members[0].where, "building",
                                         f"unknown building code {key[1]!r}")])  # fmt: skip
            else:
                _refuse(summary, kind, [(members[0].where, "lon",
                                         "no building at these coordinates")])  # fmt: skip
            continue
        building, bid, inside = found[key]
        if not inside:
            summary.count(kind, "read")
            summary.count(kind, "outside")
            continue
        first = members[0]
        out.append(_Household(key, bid, building, first.unit, first.room or "", members))
    return out


def _member_number(household: str, code: str) -> int | None:
    """The NN of a member code ``<household>-NN``, None when the code is not of that household."""
    m = re.fullmatch(re.escape(household) + r"-(\d{2})", code)
    return int(m[1]) if m else None


def _match(file_members: list[dict[str, Any]], db_members: list[dict[str, Any]]) -> list[Any]:
    """Each file member with the database member it is (or None): by member code (all of them
    first, so that no other rule takes a coded member), else by ID number, else by name and
    birth year (a member without a year in the file: the only one of that name)."""
    by_code = {fm["code"]: next((d for d in db_members if d["code"] == fm["code"]), None)
               for fm in file_members if fm["code"] is not None}  # fmt: skip
    free = [d for d in db_members if all(d is not found for found in by_code.values())]
    pairs = []
    for fm in file_members:
        found = None
        if fm["code"] is not None:
            pairs.append((fm, by_code[fm["code"]]))
            continue
        if fm["digest"] is not None:
            found = next((d for d in free if d["digest"] == fm["digest"]), None)
        if found is None:
            same = [d for d in free if d["name"] == fm["name"]
                    and (fm["digest"] is None or d["digest"] is None)]  # fmt: skip
            if fm["birth_year"] is not None:
                same = [d for d in same if d["birth_year"] in (fm["birth_year"], None)]
                found = same[0] if same else None
            elif len(same) == 1:
                found = same[0]
        if found is not None:
            free.remove(found)
        pairs.append((fm, found))
    return pairs


def _write_households(
    cur: Any, households: list[_Household], summary: Summary, options: Options, vault: Vault
) -> None:
    kind = "households"
    now: dict[str, tuple[Any, ...]] = {}
    members_now: dict[str, list[dict[str, Any]]] = {}
    if households:
        cur.execute(HOUSEHOLDS_NOW, {"codes": [h.code for h in households]})
        now = {r[1]: r for r in cur.fetchall()}
    if now:
        cur.execute(MEMBERS_NOW, {"ids": [r[0] for r in now.values()]})
        for r in cur.fetchall():
            member = dict(zip(("id", "code", *MEMBER_COLUMNS), r[1:-1], strict=True))
            member["digest"] = bytes(r[-1]) if r[-1] is not None else None
            members_now.setdefault(r[0], []).append(member)
    staged_h: list[tuple[Any, ...]] = []
    staged_p: list[tuple[Any, ...]] = []
    recorded: list[tuple[str, str]] = []

    def sealed(m: dict[str, Any]) -> tuple[Any, Any, Any]:
        if m["id_number"] is None:
            return None, None, None
        cipher, digest, masked = vault.seal(m["id_number"])
        return "\\x" + cipher.hex(), "\\x" + digest.hex(), masked

    def person(new: bool, pid: str, hid: str, code: str, values: dict[str, Any],
               m: dict[str, Any] | None) -> None:  # fmt: skip
        staged_p.append((new, pid, hid, code, *(values[c] for c in MEMBER_COLUMNS),
                         *(sealed(m) if m else (None, None, None))))  # fmt: skip

    for h in households:
        current = now.get(h.code)
        if current is None:
            hid = str(uuid.uuid4())
            values = {**h.values}
            values["household_class"] = values["household_class"] or "B"
            values["contact_preference"] = values["contact_preference"] or "DOOR"
            values["visit_times"] = values["visit_times"] or []
            location = next((r.point for r in h.rows if r.point is not None), None)
            given = sorted(n for n, v in h.values.items() if v is not None)
            staged_h.append((hid, True, h.code, h.building_id, h.unit, h.room,
                             *(values[n] for n in HOUSEHOLD_FIELDS), location, h.where,
                             [*given, *(["members"] if h.members else [])]))  # fmt: skip
            # The file's member codes kept (an export of another database); others after them.
            number = max((_member_number(h.code, m["code"]) or 0 for m in h.members
                          if m["code"] is not None), default=0)  # fmt: skip
            for m in h.members:
                code = m["code"]
                if code is None:
                    number += 1
                    code = f"{h.code}-{number:02d}"
                person(True, str(uuid.uuid4()), hid, code,
                       {c: m[c] if c not in PERSON_FLAGS else bool(m[c]) for c in MEMBER_COLUMNS},
                       m)  # fmt: skip
            recorded.append((h.code, h.file_digest))
            summary.count(kind, "inserted")
            continue
        hid, _, *fields, version, moved_out, number, file_digest, row_digest = current
        was = dict(zip(HOUSEHOLD_FIELDS, fields, strict=True))
        was["visit_times"] = list(was["visit_times"] or [])
        stored = (file_digest, row_digest) if file_digest is not None else None
        if stored is not None and stored[0] == h.file_digest:
            summary.count(kind, "unchanged")
            continue
        values = {n: v if v is not None else was[n] for n, v in h.values.items()}
        changed = [n for n in HOUSEHOLD_FIELDS if values[n] != was[n]]
        db_members = members_now.get(hid, [])
        known = {d["code"] for d in db_members}
        unknown = [m for m in h.members if m["code"] is not None and m["code"] not in known]
        if unknown:
            _refuse(summary, kind, [(m["where"], "member_code", f"no member {m['code']} in "
                                     f"household {h.code}: leave it blank for a new member")
                                    for m in unknown])  # fmt: skip
            continue
        pairs = _match(h.members, db_members)
        member_rows = []
        for fm, dm in pairs:
            if dm is None:
                number = (number or 0) + 1
                member_rows.append((True, str(uuid.uuid4()), f"{h.code}-{number:02d}",
                                    {c: fm[c] if c not in PERSON_FLAGS else bool(fm[c])
                                     for c in MEMBER_COLUMNS}, fm))  # fmt: skip
                changed.append("members")
                continue
            final = {c: fm[c] if fm[c] is not None else dm[c] for c in MEMBER_COLUMNS}
            new_id = fm["digest"] is not None and fm["digest"] != dm["digest"]
            moved = [c for c in MEMBER_COLUMNS if final[c] != dm[c]]
            if moved or new_id:
                member_rows.append((False, dm["id"], dm["code"], final, fm if new_id else None))
                changed.extend(moved + (["id_number"] if new_id else []))
        left = [d["code"] for d in db_members if all(d is not dm for _, dm in pairs)]
        if moved_out is not None:
            action = "conflict" if changed else "record"
        else:
            action = _decide(stored, h.file_digest, f"v{version}", bool(changed),
                             options.prefer_file)  # fmt: skip
        if action == "conflict":
            why = f"moved out on {moved_out} in the app (an import never reopens a file)"
            _conflict(summary, kind, h.code, h.where, stored, why if moved_out else None)
            continue
        if left and h.members and action == "update":
            summary.warnings.append(
                f"{h.where}: household {h.code}: {', '.join(left)} not in the file, left in "
                "the family file (remove them in the app if they left)"
            )
        if action == "record":
            recorded.append((h.code, h.file_digest))
            summary.count(kind, "unchanged")
            continue
        staged_h.append((hid, False, h.code, h.building_id, h.unit, h.room,
                         *(values[n] for n in HOUSEHOLD_FIELDS), None, h.where,
                         sorted(set(changed))))  # fmt: skip
        for new, pid, code, final, fm in member_rows:
            person(new, pid, hid, code, final, fm)
        recorded.append((h.code, h.file_digest))
        summary.count(kind, "updated")
    stage(cur, "stage_household", STAGE_HOUSEHOLDS, staged_h)
    stage(cur, "stage_person", STAGE_PERSONS, staged_p)
    stage(cur, "stage_record", "key text, file_digest text", recorded)
    if staged_h:
        cur.execute(HISTORY + " WHERE NOT EXISTS (SELECT 1 FROM family_file_history f"
                    " WHERE f.household_id = h.id)",
                    {"at": "-infinity", "action": "BASELINE", "reason": None})  # fmt: skip
        cur.execute(WRITE_HOUSEHOLDS)
        cur.execute(HISTORY, {"at": "now", "action": "IMPORT", "reason": "register import"})
        cur.execute(AUDIT, {"request": str(uuid.uuid4())})
    _record(cur, kind, "stage_record", "JOIN household h ON h.code = s.key", "'v' || h.version")


# --------------------------------------------------------------------------------------------
# Workers and their grids
# --------------------------------------------------------------------------------------------

COMMUNITY_ROLES = ("COMMUNITY", "GRID_WORKER", "MICRO_GRID_LEADER")
WORKER_COLUMNS = ("name", "phone", "role", "subdistrict", "community", "unit_code", "grids")

# What the last import wrote, as the database holds it now: any app change shows.
WORKER_DIGEST = """md5(jsonb_build_array(w.name, w.phone, w.role::text,
    (SELECT code FROM subdistrict WHERE id = w.subdistrict_id),
    (SELECT code FROM community WHERE id = w.community_id), w.unit_code,
    ARRAY(SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id
          WHERE wg.worker_id = w.id ORDER BY g.code))::text)"""

WORKERS_NOW = f"""
SELECT w.code, w.id::text, w.name, w.phone, w.role::text, s.code, c.code, w.unit_code,
       ARRAY(SELECT g.code FROM worker_grid wg JOIN grid g ON g.id = wg.grid_id
             WHERE wg.worker_id = w.id ORDER BY g.code),
       {WORKER_DIGEST}, r.file_digest, r.row_digest
FROM worker w JOIN subdistrict s ON s.id = w.subdistrict_id
LEFT JOIN community c ON c.id = w.community_id
LEFT JOIN import_row r ON r.kind = 'workers' AND r.key = w.code
WHERE w.code = ANY(%(codes)s)
FOR UPDATE OF w
"""

WRITE_WORKERS = """
INSERT INTO worker (id, code, name, phone, role, subdistrict_id, community_id, unit_code)
SELECT s.id, s.code, s.name, s.phone, s.role::worker_role, s.subdistrict_id, s.community_id,
       s.unit_code
FROM stage_worker s WHERE s.new;

UPDATE worker w SET name = s.name, phone = s.phone, role = s.role::worker_role,
       subdistrict_id = s.subdistrict_id, community_id = s.community_id, unit_code = s.unit_code
FROM stage_worker s WHERE w.id = s.id AND NOT s.new;

DELETE FROM worker_grid wg USING stage_worker s
WHERE wg.worker_id = s.id AND s.grid_ids IS NOT NULL AND wg.grid_id <> ALL(s.grid_ids);

INSERT INTO worker_grid (worker_id, grid_id)
SELECT s.id, g FROM stage_worker s, unnest(s.grid_ids) g
WHERE s.grid_ids IS NOT NULL
ON CONFLICT DO NOTHING;
"""


def load_workers(cur: Any, rows: Rows, summary: Summary, options: Options) -> None:
    """Workers by staff number: role, area (community, or subdistrict for the grid center and
    departments), unit (departments) and grids, which replace the worker's grid links."""
    kind = "workers"
    summary.touch(kind)
    read: list[tuple[str, dict[str, Any], list[Issue]]] = []
    seen: dict[str, str] = {}
    for where, v in rows:
        summary.count(kind, "read")
        issues: list[Issue] = [(where, f, m) for f, m in getattr(v, "problems", ())]
        w = _worker_values(where, v, issues)
        if w["code"] is not None:
            if w["code"] in seen:
                issues.append((where, "code", f"{w['code']} appears again (first at "
                               f"{seen[w['code']]})"))  # fmt: skip
            seen.setdefault(w["code"], where)
        read.append((where, w, issues))
    areas = _areas(cur, read)
    valid = []
    for where, w, issues in read:
        if not issues:
            _worker_area(where, w, areas, issues, options.scope)
        if issues:
            _refuse(summary, kind, issues)
        else:
            valid.append((where, w))
    _write_workers(cur, valid, summary, options)


def _worker_values(where: str, v: Mapping[str, str], issues: list[Issue]) -> dict[str, Any]:
    w: dict[str, Any] = {"code": _token(v, "code"), "name": _raw(v, "name")}
    for name in ("code", "name"):
        if w[name] is None:
            issues.append((where, name, "missing"))
    w["role"] = w["phone"] = None
    text = _raw(v, "role")
    if text is None:
        issues.append((where, "role", "missing"))
    else:
        try:
            w["role"] = _choice(text, ROLES, "role")
        except ValueError as exc:
            issues.append((where, "role", str(exc)))
    text = _unmasked(v, "phone")
    if text is not None:
        try:
            w["phone"] = parse_phone(text)
        except ValueError as exc:
            issues.append((where, "phone", str(exc)))
    w["subdistrict"], w["community"] = _token(v, "subdistrict"), _token(v, "community")
    if w["community"] is not None and len(w["community"]) == 9 and w["subdistrict"] is None:
        w["subdistrict"], w["community"] = w["community"], None  # a grid center's subdistrict
    for name, width in (("subdistrict", 9), ("community", 12)):
        code = w[name]
        if code is not None and not (len(code) == width and code.isascii() and code.isdigit()):
            issues.append((where, name, f"{code!r} is not a {width}-digit {name} code"))
    text = _raw(v, "grids")
    w["grids"] = sorted(set(split_list(_norm(text)))) if text is not None else None
    for code in w["grids"] or ():
        if not (len(code) == 15 and code.isascii() and code.isdigit()):
            issues.append((where, "grids", f"{code!r} is not a 15-digit grid code"))
    w["unit"] = _raw(v, "unit")
    return w


def _areas(cur: Any, read: list[tuple[str, dict[str, Any], list[Issue]]]) -> dict[str, Any]:
    """The codes the file names, as the database knows them."""
    subs = sorted({w["subdistrict"] for _, w, _ in read if w["subdistrict"]}
                  | {w["community"][:9] for _, w, _ in read if w["community"]})  # fmt: skip
    comms = sorted({w["community"] for _, w, _ in read if w["community"]})
    grids = sorted({g for _, w, _ in read for g in w["grids"] or ()})
    cur.execute("SELECT code, id::text FROM subdistrict WHERE code = ANY(%s)", (subs,))
    out: dict[str, Any] = {"subdistrict": dict(cur.fetchall())}
    cur.execute("SELECT code, id::text FROM community WHERE code = ANY(%s)", (comms,))
    out["community"] = dict(cur.fetchall())
    cur.execute("SELECT code, id::text FROM grid WHERE code = ANY(%s)", (grids,))
    out["grid"] = dict(cur.fetchall())
    cur.execute("SELECT c, code_whereabouts(c) FROM unnest(%s::text[]) AS c", (grids,))
    out["retired"] = {c: said for c, said in cur.fetchall() if said}
    cur.execute("SELECT code, name FROM unit")
    units = cur.fetchall()
    out["unit"] = {**{name: code for code, name in units}, **{code: code for code, _ in units}}
    return out


def _worker_area(
    where: str, w: dict[str, Any], areas: dict[str, Any], issues: list[Issue], scope: str | None
) -> None:
    """Subdistrict, community, unit and grids checked against the role, the database and the
    scope of an upload (a grid center adds staff to its own area only)."""
    role, sub, comm = w["role"], w["subdistrict"], w["community"]
    if role in COMMUNITY_ROLES and comm is None:
        issues.append((where, "community", f"missing: a {role} belongs to a community "
                       "(its 12-digit code)"))  # fmt: skip
        return
    if comm is not None and sub is not None and comm[:9] != sub:
        issues.append((where, "community", f"{comm} is not in subdistrict {sub}"))
        return
    sub = sub or (comm[:9] if comm else None)
    if role not in COMMUNITY_ROLES:
        comm = None  # the grid center and departments belong to their subdistrict
    if sub is None:
        issues.append((where, "subdistrict", f"missing: a {role} belongs to a subdistrict "
                       "(its 9-digit code, in the subdistrict or community column)"))  # fmt: skip
        return
    if comm is not None and comm not in areas["community"]:
        issues.append((where, "community", f"unknown community code {comm}"))
    elif sub not in areas["subdistrict"]:
        issues.append((where, "subdistrict", f"unknown subdistrict code {sub}"))
    elif scope and not (comm or sub).startswith(scope):
        level = "community" if comm else "subdistrict"
        issues.append((where, level, f"{level} {comm or sub} is outside your area ({scope})"))
    w["subdistrict"], w["community"] = sub, comm
    w["subdistrict_id"] = areas["subdistrict"].get(sub)
    w["community_id"] = areas["community"].get(comm) if comm else None
    unit = w.pop("unit")
    w["unit_code"] = None
    if role == "DEPARTMENT":
        found = unit and (areas["unit"].get(unit) or areas["unit"].get(_norm(unit).upper()))
        if unit is None:
            issues.append((where, "unit", "missing: department staff belong to a unit"))
        elif not found:
            issues.append(
                (
                    where,
                    "unit",
                    f"unknown unit {unit!r}: a code or name of the "
                    f"units ({', '.join(sorted(set(areas['unit'].values())))})",
                )
            )
        w["unit_code"] = found or None
    elif unit is not None:
        issues.append((where, "unit", f"only department staff belong to a unit, not a {role}"))
    area = comm or sub
    for code in w["grids"] or ():
        if code in areas["retired"]:
            issues.append((where, "grids", f"grid {code}: {areas['retired'][code]}"))
        elif code not in areas["grid"]:
            issues.append((where, "grids", f"unknown grid code {code}"))
        elif role == "DEPARTMENT":
            issues.append((where, "grids", "department staff have no grids"))
        elif not code.startswith(area):
            issues.append((where, "grids", f"grid {code} is not in {area}"))
    grids = w["grids"]
    w["grid_ids"] = [areas["grid"].get(g) for g in grids] if grids is not None else None


def _write_workers(
    cur: Any, workers: list[tuple[str, dict[str, Any]]], summary: Summary, options: Options
) -> None:
    kind = "workers"
    now: dict[str, tuple[Any, ...]] = {}
    if workers:
        cur.execute(WORKERS_NOW, {"codes": [w["code"] for _, w in workers]})
        now = {r[0]: r for r in cur.fetchall()}
    staged: list[tuple[Any, ...]] = []
    recorded: list[tuple[str, str]] = []
    for where, w in workers:
        file_digest = _digest({c: w[c] for c in WORKER_COLUMNS})
        current = now.get(w["code"])
        if current is None:
            action, wid, grids = "insert", str(uuid.uuid4()), w["grid_ids"] or []
            phone = w["phone"]
        else:
            _, wid, *was_values, digest, stored_file, stored_row = current
            was = dict(zip(WORKER_COLUMNS, was_values, strict=True))
            area = was["community"] or was["subdistrict"]
            if options.scope and not area.startswith(options.scope):
                level = "community" if was["community"] else "subdistrict"
                _refuse(summary, kind, [(where, "code", f"staff number {w['code']} belongs to "
                                         f"{level} {area}, outside your area")])  # fmt: skip
                continue
            phone = w["phone"] if w["phone"] is not None else was["phone"]
            grids = w["grid_ids"]
            final = {**{c: w[c] for c in WORKER_COLUMNS}, "phone": phone,
                     "grids": w["grids"] if w["grids"] is not None else was["grids"]}  # fmt: skip
            differs = any(final[c] != was[c] for c in WORKER_COLUMNS)
            stored = (stored_file, stored_row) if stored_file is not None else None
            action = _decide(stored, file_digest, digest, differs, options.prefer_file)
            if action == "conflict":
                _conflict(summary, kind, w["code"], where, stored)
                continue
        if action in ("unchanged", "record"):
            if action == "record":
                recorded.append((w["code"], file_digest))
            summary.count(kind, "unchanged")
            continue
        staged.append((wid, action == "insert", w["code"], w["name"], phone, w["role"],
                       w["subdistrict_id"], w["community_id"], w["unit_code"], grids))  # fmt: skip
        recorded.append((w["code"], file_digest))
        summary.count(kind, "inserted" if action == "insert" else "updated")
    stage(cur, "stage_worker", "id uuid, new boolean, code text, name text, phone text,"
          " role text, subdistrict_id uuid, community_id uuid, unit_code text, grid_ids uuid[]",
          staged)  # fmt: skip
    stage(cur, "stage_worker_record", "key text, file_digest text", recorded)
    if staged:
        cur.execute(WRITE_WORKERS)
    _record(cur, kind, "stage_worker_record", "JOIN worker w ON w.code = s.key", WORKER_DIGEST)


# --------------------------------------------------------------------------------------------
# Job openings
# --------------------------------------------------------------------------------------------

OPENING_COLUMNS = ("title", "skills", "shifts", "weekly_hours", "wage", "headcount",
                   "valid_from", "valid_until")  # fmt: skip
OPENING_DIGEST = (
    "md5(jsonb_build_array(o.title, o.skills, o.shifts, o.weekly_hours, o.wage, o.headcount,"
    " o.valid_from, o.valid_until)::text)"
)
OPENINGS_NOW = f"""
SELECT m.code, o.id::text, o.code, {", ".join(f"o.{c}" for c in OPENING_COLUMNS)},
       job_opening_taken(o.id), {OPENING_DIGEST}, r.file_digest, r.row_digest
FROM job_opening o JOIN merchant m ON m.id = o.merchant_id
LEFT JOIN import_row r ON r.kind = 'openings' AND r.key = o.code
WHERE m.code = ANY(%(merchants)s)
ORDER BY o.code
FOR UPDATE OF o
"""
WRITE_OPENINGS = f"""
INSERT INTO job_opening (id, code, merchant_id, {", ".join(OPENING_COLUMNS)})
SELECT s.id, s.code, s.merchant_id, {", ".join(f"s.{c}" for c in OPENING_COLUMNS)}
FROM stage_opening s WHERE s.new;

UPDATE job_opening o SET {", ".join(f"{c} = s.{c}" for c in OPENING_COLUMNS)}
FROM stage_opening s WHERE o.id = s.id AND NOT s.new;
"""
# Merchants of an upload's scope stand in a building of a micro-grid within it, or (merchants
# outside every grid exist) at a point the scope's area covers.
MERCHANTS_OUTSIDE = """
SELECT m.code, m.name FROM merchant m
LEFT JOIN building b ON b.id = m.building_id
LEFT JOIN micro_grid g ON g.id = b.micro_grid_id
WHERE m.code = ANY(%(merchants)s)
  AND NOT coalesce(starts_with(g.code, %(scope)s), false)
  AND NOT EXISTS (SELECT 1 FROM {level} a WHERE a.code = %(scope)s AND ST_Covers(a.geom, m.geom))
"""
# An hourly wage from a monthly one: weeks of the year over months.
WEEKS_PER_MONTH = 52 / 12


def load_openings(cur: Any, rows: Rows, summary: Summary, options: Options) -> None:
    """Openings by merchant code and title (or by the opening's own code, when the file has
    it); new ones numbered after the merchant's others (``<merchant>-J03``)."""
    kind = "openings"
    summary.touch(kind)
    read = []
    for where, v in rows:
        summary.count(kind, "read")
        issues: list[Issue] = [(where, f, m) for f, m in getattr(v, "problems", ())]
        read.append((where, _opening_values(where, v, issues), issues))
    merchants = sorted({o["merchant"] for _, o, _ in read if o["merchant"]})
    cur.execute("SELECT code, id::text FROM merchant WHERE code = ANY(%s)", (merchants,))
    known = dict(cur.fetchall())
    outside: dict[str, str] = {}
    if options.scope:
        level = level_of(options.scope)
        if level is None:
            raise ValueError(f"scope {options.scope!r} is not an area code")
        cur.execute(MERCHANTS_OUTSIDE.format(level=level),
                    {"merchants": merchants, "scope": options.scope})  # fmt: skip
        outside = dict(cur.fetchall())
    cur.execute(OPENINGS_NOW, {"merchants": merchants})
    existing: dict[str, list[dict[str, Any]]] = {}
    for r in cur.fetchall():
        o = dict(zip(("id", "code", *OPENING_COLUMNS, "taken", "digest", "file_digest",
                      "row_digest"), r[1:], strict=True))  # fmt: skip
        o["skills"], o["shifts"] = list(o["skills"]), list(o["shifts"])
        existing.setdefault(r[0], []).append(o)
    numbers: dict[str, int] = {}
    for merchant, openings in existing.items():
        for o in openings:
            found = re.search(r"-J(\d+)$", o["code"])
            if found:
                numbers[merchant] = max(numbers.get(merchant, 0), int(found[1]))
    taken_keys: dict[Any, str] = {}
    staged: list[tuple[Any, ...]] = []
    recorded: list[tuple[str, str]] = []
    today = dt.date.today()
    for where, o, issues in read:
        merchant = o["merchant"]
        if merchant is not None and merchant not in known:
            issues.append((where, "merchant", f"unknown merchant code {merchant}"))
        elif merchant in outside:
            issues.append((where, "merchant", f"{merchant} ({outside[merchant]}) is a merchant "
                           "outside your area"))  # fmt: skip
        current = None
        if not issues:
            mine = existing.get(merchant, [])
            if o["code"] is not None:
                current = next((x for x in mine if x["code"] == o["code"]), None)
                if current is None:
                    issues.append((where, "code", f"no opening {o['code']} of merchant "
                                   f"{merchant}: leave the code blank for a new one"))  # fmt: skip
            else:
                same = [x for x in mine if x["title"].strip() == o["title"]]
                current = same[-1] if same else None
            key = current["code"] if current else (merchant, o["title"])
            if key in taken_keys:
                issues.append((where, "title", f"the same opening as at {taken_keys[key]}"))
            taken_keys.setdefault(key, where)
        if issues:
            _refuse(summary, kind, issues)
            continue
        file_digest = _digest({"merchant": merchant, **{c: o[c] for c in OPENING_COLUMNS}})
        final = {c: o[c] if o[c] is not None else (current or {}).get(c) for c in OPENING_COLUMNS}
        final["valid_from"] = final["valid_from"] or today
        final["skills"] = final["skills"] if final["skills"] is not None else []
        if current is None:
            numbers[merchant] = numbers.get(merchant, 0) + 1
            code = f"{merchant}-J{numbers[merchant]:02d}"
            problem = _opening_problem(final, None)
            if problem:
                numbers[merchant] -= 1
                _refuse(summary, kind, [(where, *problem)])
                continue
            staged.append((str(uuid.uuid4()), True, code, known[merchant],
                           *(final[c] for c in OPENING_COLUMNS)))  # fmt: skip
            recorded.append((code, file_digest))
            summary.count(kind, "inserted")
            continue
        stored = (current["file_digest"], current["row_digest"]) if current["file_digest"] else None
        differs = any(final[c] != current[c] for c in OPENING_COLUMNS)
        action = _decide(stored, file_digest, current["digest"], differs,
                         options.prefer_file)  # fmt: skip
        problem = _opening_problem(final, current) if action == "update" else None
        if problem:
            _refuse(summary, kind, [(where, *problem)])
        elif action == "conflict":
            _conflict(summary, kind, current["code"], where, stored)
        elif action in ("unchanged", "record"):
            if action == "record":
                recorded.append((current["code"], file_digest))
            summary.count(kind, "unchanged")
        else:
            staged.append((current["id"], False, current["code"], known[merchant],
                           *(final[c] for c in OPENING_COLUMNS)))  # fmt: skip
            recorded.append((current["code"], file_digest))
            summary.count(kind, "updated")
    stage(cur, "stage_opening", "id uuid, new boolean, code text, merchant_id uuid, title text,"
          " skills text[], shifts text[], weekly_hours integer, wage integer, headcount integer,"
          " valid_from date, valid_until date", staged)  # fmt: skip
    stage(cur, "stage_opening_record", "key text, file_digest text", recorded)
    if staged:
        cur.execute(WRITE_OPENINGS)
    _record(cur, kind, "stage_opening_record", "JOIN job_opening o ON o.code = s.key",
            OPENING_DIGEST)  # fmt: skip


def _opening_problem(
    final: dict[str, Any], current: dict[str, Any] | None
) -> tuple[str, str] | None:
    """What the file's values, with what they keep of the opening, may not be."""
    if final["valid_until"] is not None and final["valid_until"] < final["valid_from"]:
        return "valid_until", f"{final['valid_until']} is before the start {final['valid_from']}"
    if current is None or final["headcount"] == current["headcount"]:
        return None
    if final["headcount"] < current["taken"]:
        return "headcount", (f"{current['taken']} places of {current['code']} are proposed or "
                             "filled already: not below that")  # fmt: skip
    return None


def _opening_values(where: str, v: Mapping[str, str], issues: list[Issue]) -> dict[str, Any]:
    o: dict[str, Any] = {"merchant": _token(v, "merchant"), "title": _raw(v, "title"),
                         "code": _token(v, "code")}  # fmt: skip
    for name in ("merchant", "title"):
        if o[name] is None:
            issues.append((where, name, "missing"))

    def parse(name: str, how: Any, required: bool = False) -> Any:
        text = _raw(v, name)
        if text is None:
            if required:
                issues.append((where, name, "missing"))
            return None
        try:
            return how(text)
        except ValueError as exc:
            issues.append((where, name, str(exc)))
            return None

    o["skills"] = parse("skills", lambda t: sorted(set(split_list(t))))
    if o["skills"] is not None and len(o["skills"]) > 30:
        issues.append((where, "skills", "at most 30 skills"))
    o["shifts"] = parse(
        "shifts", lambda t: sorted({_choice(s, SHIFT_NAMES, "shift") for s in split_list(t)},
                                   key=SHIFTS.index), required=True)  # fmt: skip
    o["weekly_hours"] = parse("weekly_hours", lambda t: parse_int(t, 1, 84), required=True)
    o["headcount"] = parse("headcount", lambda t: parse_int(t, 1), required=True)
    o["wage"] = parse("wage", lambda t: parse_int(t, 1))
    monthly = parse("monthly_wage", lambda t: parse_int(t, 1))
    if o["wage"] is None and monthly is not None and o["weekly_hours"]:
        o["wage"] = max(1, round(monthly / (o["weekly_hours"] * WEEKS_PER_MONTH)))
    if o["wage"] is None and monthly is None and not any(f == "wage" for _, f, _ in issues):
        issues.append((where, "wage", "missing: yuan per hour (or a monthly wage)"))
    o["valid_from"] = parse("valid_from", parse_date)
    o["valid_until"] = parse("valid_until", parse_date)
    if o["valid_from"] and o["valid_until"] and o["valid_until"] < o["valid_from"]:
        issues.append((where, "valid_until", f"{o['valid_until']} is before valid_from "
                       f"{o['valid_from']}"))  # fmt: skip
    return o
