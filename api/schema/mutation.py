"""The root Mutation. Each mutation is kept whole or not at all (``RequestDB.write``), is checked
by row-level security like any read, and is written to the audit log."""

from __future__ import annotations

import strawberry

from api.schema import cases, imports, jobs
from api.schema.coverage import set_cadence_policy
from api.schema.family_files import (
    add_member,
    move_out,
    remove_member,
    update_family_file,
    update_member,
)
from api.schema.routes import plan_route, set_worker_schedule
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
    import_register = strawberry.field(
        resolver=imports.import_register,
        description="Upload a register (households, workers, merchants, openings, cases) as a "
        "GraphQL multipart request: imported as `gridmap import` does, inside your subdistrict; "
        "a file with refused rows changes nothing unless `skipInvalid`.",
    )
    set_cadence_policy = strawberry.field(
        resolver=set_cadence_policy, description="Change a subdistrict's cadence (grid center)."
    )

    create_job_opening = strawberry.field(
        resolver=jobs.create_job_opening, description="A merchant's new opening."
    )
    update_job_opening = strawberry.field(resolver=jobs.update_job_opening)
    register_job_seeker = strawberry.field(
        resolver=jobs.register_job_seeker,
        description="Register (or update) a resident seeking work, with their consent.",
    )
    remove_job_seeker = strawberry.field(resolver=jobs.remove_job_seeker)
    create_offer = strawberry.field(resolver=jobs.create_offer)
    propose_job_matches = strawberry.field(resolver=jobs.propose_job_matches)
    propose_job_match = strawberry.field(
        resolver=jobs.propose_job_match, description="Propose one feasible pair."
    )
    set_job_match_state = strawberry.field(
        resolver=jobs.set_job_match_state,
        description="Move a match along PROPOSED → CONTACTED → INTERVIEWED → HIRED, or DECLINED.",
    )

    plan_route = strawberry.field(
        resolver=plan_route,
        description="Plan a worker's day of visits and save it (replacing the day's plan).",
    )
    set_worker_schedule = strawberry.field(
        resolver=set_worker_schedule, description="Set the week a worker's routes fit into."
    )

    report_case = strawberry.field(
        resolver=cases.report_case,
        description="Blow the whistle: report a case where it is (possible duplicates listed).",
    )
    transition_case = strawberry.field(
        resolver=cases.transition_case, description="Move a case one step along the closed loop."
    )
    merge_case = strawberry.field(
        resolver=cases.merge_case, description="Close a duplicate with a link to its case."
    )
    add_case_photo = strawberry.field(resolver=cases.add_case_photo)
    set_case_category = strawberry.field(
        resolver=cases.set_case_category, description="Add or change a category (grid center)."
    )
    set_holidays = strawberry.field(
        resolver=cases.set_holidays, description="Set a year's holiday calendar (grid center)."
    )
