"""Whether an area code exists: districts, subdistricts and communities are checked against the
national statistical division codes (data/admin_codes, see its SOURCE.md); grids and micro-grids
are our own, checked by their parent. ``free`` accepts any code of the right width, for foreign
or test areas."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "admin_codes"

# The fixed-width scheme of DESIGN.md: each level adds digits to its parent's code.
LEVELS = {
    "district": 6,
    "subdistrict": 9,
    "community": 12,
    "grid": 15,
    "micro_grid": 18,
}
PARENT = {
    "subdistrict": "district",
    "community": "subdistrict",
    "grid": "community",
    "micro_grid": "grid",
}
MODES = ("national", "free")


def level_of(code: str) -> str | None:
    """The level a code of this width belongs to, or None."""
    if not code.isascii() or not code.isdigit():
        return None
    return next((level for level, width in LEVELS.items() if width == len(code)), None)


@cache
def _table(name: str) -> frozenset[str]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return frozenset(row["code"] for row in csv.DictReader(f))


@cache
def _cities_with_communities() -> frozenset[str]:
    return frozenset(code[:4] for code in _table("villages_bj_tj_sh_jinan_lanzhou.csv"))


def national_problem(level: str, code: str) -> str | None:
    """Why ``code`` is not a valid national code of ``level`` (None when it is, or when the
    tables do not cover it: communities of cities outside the copied table, grids)."""
    if level == "district":
        known = _table("areas.csv")
    elif level == "subdistrict":
        known = _table("streets.csv")
    elif level == "community":
        if code[:4] not in _cities_with_communities():
            return None
        known = _table("villages_bj_tj_sh_jinan_lanzhou.csv")
    else:
        return None
    if code in known:
        return None
    return (f"{code} is not a {level} code of the national statistical division tables "
            "(2023); use --codes free for areas outside them")  # fmt: skip
