"""The personal-data marker: one place that decides what a caller reads of a personal field.

``personal(...)`` marks a field in the schema (the ``@personal`` directive, visible in
``schema.graphql``) and wraps its resolver: the caller gets the value, a masked form, or null
(``geo.access.Caller.personal_access``), and every full read of a household's field is written
to the audit log when the request ends. Masking, auditing and the tests all key on this marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location

from geo.access import Access

# A node type that holds a household's data says which household (id, code).
HouseholdKey = Callable[[], tuple[uuid.UUID, str]]


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="Personal data: masked or null for callers who may not read it; reads audited.",
)
class Personal:
    pass


class PersonalData(FieldExtension):
    def __init__(self, masked: Callable[[Any], Any] | None = None) -> None:
        self.masked = masked

    def apply(self, field: Any) -> None:
        self.name = field.python_name

    def _access(self, source: Any, info: strawberry.Info) -> Access:
        caller = info.context.caller
        key: HouseholdKey | None = getattr(source, "household_key", None)
        if key is None:  # staff data (a worker's phone): for staff, not for the public
            return Access.NONE if caller.is_public else Access.FULL
        household_id, household_code = key()
        access = caller.personal_access(self.name, household_code)
        if access is Access.FULL:
            info.context.audit.read(household_id, household_code, self.name)
        return access

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kw: Any
    ) -> Any:
        access = self._access(source, info)
        if access is Access.FULL:
            return next_(source, info, **kw)
        return self._masked(access, source)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info, **kw: Any
    ) -> Any:
        access = self._access(source, info)
        if access is Access.FULL:
            return await next_(source, info, **kw)
        return self._masked(access, source)

    def _masked(self, access: Access, source: Any) -> Any:
        if access is Access.MASKED and self.masked is not None:
            return self.masked(source)
        return None


def personal(
    *, description: str | None = None, masked: Callable[[Any], Any] | None = None, **kw: Any
) -> Any:
    """A personal field; ``masked(node)`` gives the masked form for callers allowed only that."""
    return strawberry.field(
        description=description,
        directives=[Personal()],
        extensions=[PersonalData(masked)],
        **kw,
    )
