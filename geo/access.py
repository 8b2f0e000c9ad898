"""Who is asking, and what that lets them see.

A ``Caller`` is recorded in every transaction (``geo.db.set_scope``); the row-level security
policies of the personal-data tables read it back with ``current_setting('gridmap.…')``, so even
a resolver that forgets to filter cannot return another grid's households.

| role | sees |
|---|---|
| grid_center | everything in its subdistrict(s) |
| community | its community |
| grid_worker, micro_grid_leader | its assigned grids |
| department | cases of its unit, no family files |
| public | aggregates only |
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    GRID_CENTER = "grid_center"
    COMMUNITY = "community"
    GRID_WORKER = "grid_worker"
    MICRO_GRID_LEADER = "micro_grid_leader"
    DEPARTMENT = "department"
    PUBLIC = "public"


# Roles that read and write family files inside their areas.
FAMILY_FILE_ROLES = frozenset(
    {Role.GRID_CENTER, Role.COMMUNITY, Role.GRID_WORKER, Role.MICRO_GRID_LEADER}
)


class Access(enum.Enum):
    FULL = "full"
    MASKED = "masked"
    NONE = "none"


# What each role reads of a personal field of a household inside its areas. The grid center
# oversees and dispatches: it knows a phone or ID number exists but does not read it.
SENSITIVE_FOR_OVERSIGHT = frozenset({"phone", "id_number"})


@dataclass(frozen=True)
class Caller:
    role: Role
    worker_id: uuid.UUID | None = None
    worker_code: str | None = None
    # Code prefixes of the areas this caller covers (subdistricts, a community, or grids).
    areas: tuple[str, ...] = ()
    unit_code: str | None = None
    remote: str | None = field(default=None, compare=False)

    @property
    def is_public(self) -> bool:
        return self.role is Role.PUBLIC

    def settings(self) -> dict[str, str]:
        """The transaction settings row-level security reads (``gridmap.role`` …)."""
        return {
            "role": self.role.value,
            "worker": self.worker_code or "",
            "areas": ",".join(self.areas),
            "unit": self.unit_code or "",
        }

    def covers(self, code: str) -> bool:
        """Whether a household (or anything coded below an area) is inside this caller's areas."""
        return self.role in FAMILY_FILE_ROLES and any(code.startswith(a) for a in self.areas)

    def personal_access(self, field_name: str, household_code: str | None) -> Access:
        """How this caller may read one personal field of one household."""
        if household_code is None or not self.covers(household_code):
            return Access.NONE
        return self.access_inside(field_name)

    def access_inside(self, field_name: str) -> Access:
        """How this caller reads a personal field of a household inside its areas (the only
        households row-level security shows it)."""
        if self.role not in FAMILY_FILE_ROLES:
            return Access.NONE
        if self.role is Role.GRID_CENTER and field_name in SENSITIVE_FOR_OVERSIGHT:
            return Access.MASKED
        return Access.FULL

    def may_act_for(self, worker_id: uuid.UUID, worker_areas: Sequence[str]) -> bool:
        """Whether a write naming another worker (``workerId`` of a visit …) may go through:
        the caller itself, or a community or the grid center whose areas cover every area of
        that worker. Such acts on behalf are audited (action ``act_for``)."""
        if worker_id == self.worker_id:
            return True
        if self.role not in (Role.COMMUNITY, Role.GRID_CENTER) or not worker_areas:
            return False
        return all(self.covers(area) for area in worker_areas)


PUBLIC = Caller(Role.PUBLIC)
