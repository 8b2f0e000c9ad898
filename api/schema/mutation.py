"""The root Mutation. Each mutation is kept whole or not at all (``RequestDB.write``), is checked
by row-level security like any read, and is written to the audit log."""

from __future__ import annotations

import strawberry

from api.schema.coverage import set_cadence_policy
from api.schema.family_files import (
    add_member,
    move_out,
    remove_member,
    update_family_file,
    update_member,
)
from api.schema.visits import record_visit


@strawberry.type
class Mutation:
    update_family_file = strawberry.field(
        resolver=update_family_file, description="Change a family file's own fields."
    )
    add_member = strawberry.field(resolver=add_member, description="A new member of a household.")
    update_member = strawberry.field(resolver=update_member, description="Change a member.")
    remove_member = strawberry.field(
        resolver=remove_member, description="A member leaves (moved out, died …), with a reason."
    )
    move_out = strawberry.field(
        resolver=move_out, description="The whole household leaves: its file is closed."
    )
    record_visit = strawberry.field(
        resolver=record_visit,
        description="Record a visit; retrying with the same `idempotencyKey` returns it again.",
    )
    set_cadence_policy = strawberry.field(
        resolver=set_cadence_policy, description="Change a subdistrict's cadence (grid center)."
    )
