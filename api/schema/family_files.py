"""Family files (一户一档): the file as it stands or stood, its history, and its edits.

Every edit carries the ``version`` it was based on and is refused (``CONFLICT``) when someone
changed the file since; every field of the file is personal data (masked, null or audited as the
marker decides). The work is done in ``geo.family_files``; these types only carry it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from typing import Any

import strawberry

from api.schema.areas import Household, HouseholdClass, Person
from api.schema.base import parent, values_enum
from api.schema.context import Info
from api.schema.personal import personal
from api.schema.relay import parse_global_id
from geo import family_files as ff
from geo import visits as v
from geo.access import FAMILY_FILE_ROLES
from geo.errors import BadInput, Forbidden, NotFound

ContactChannel = values_enum(
    "ContactChannel", ff.CHANNELS, "How a household wants to be contacted."
)
VisitTime = values_enum(
    "VisitTime",
    ff.VISIT_TIMES,
    "When a household is in: working families only evenings and weekends.",
)
MemberRemoval = values_enum("MemberRemoval", ff.REMOVALS, "Why a member leaves a family file.")
DemandResolution = values_enum(
    "DemandResolution",
    v.RESOLUTIONS,
    "A demand raised on a visit: answered on the spot, or escalated.",
)


@strawberry.type(description="A demand a household raised (on a visit).")
class Demand:
    row: strawberry.Private[dict[str, Any]]
    household_id: strawberry.Private[uuid.UUID]
    household_code: strawberry.Private[str]
    id: strawberry.ID
    text: str | None = personal()
    category: str | None = strawberry.field(
        description="The case catalogue's category, when the demand has one."
    )
    resolution: DemandResolution
    answer: str | None = personal()
    raised_at: dt.datetime
    closed_at: dt.datetime | None = strawberry.field(
        description="When it was answered or its case closed; null while open."
    )

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.household_id, self.household_code

    @classmethod
    def of(cls, row: dict[str, Any], household_id: uuid.UUID, code: str) -> Demand:
        return cls(
            row=row, household_id=household_id, household_code=code,
            id=strawberry.ID(str(row["id"])), text=row["text"], category=row["category"],
            resolution=DemandResolution(row["resolution"]), answer=row["answer"],
            raised_at=row["raised_at"], closed_at=row["closed_at"],
        )  # fmt: skip


@strawberry.type(description="One recorded change of a family file.")
class FamilyFileChange:
    version: int
    at: dt.datetime | None = strawberry.field(
        description="When; null for the baseline (the file as it was before its first edit)."
    )
    worker_code: str | None
    role: str | None
    action: str = strawberry.field(
        description="BASELINE, UPDATE_FILE, ADD_MEMBER, UPDATE_MEMBER, REMOVE_MEMBER or MOVE_OUT."
    )
    reason: str | None


@strawberry.type(
    description="A household's family file (一户一档): as it stands, or as it stood at the end "
    "of the day `asOf` asked for."
)
class FamilyFile:
    row: strawberry.Private[dict[str, Any]]
    version: int = strawberry.field(description="Send it with an edit: a stale one is refused.")
    as_of: dt.datetime | None = strawberry.field(
        description="The instant this file is as of (the end of the day asked); null: now."
    )
    household_class: HouseholdClass | None = personal()
    contact_preference: ContactChannel | None = personal()
    visit_times: list[VisitTime] | None = personal(
        description="When the household is in (empty: any time)."
    )
    notes: str | None = personal()
    moved_in: dt.date | None = personal()
    moved_out: dt.date | None = strawberry.field(description="Null while the household lives here.")
    moved_out_reason: str | None = personal()

    def household_key(self) -> tuple[uuid.UUID, str]:
        return self.row["id"], self.row["code"]

    @strawberry.field
    async def household(self, info: Info) -> Household:
        found = await parent(info, Household, self.row["id"])
        assert found is not None
        return found

    @strawberry.field(description="The members as of this file (those who left are in history).")
    def members(self) -> list[Person]:
        return [Person.from_row(m) for m in self.row["members"]]

    @strawberry.field(description="Demands escalated and not closed yet, as of this file.")
    async def open_demands(self, info: Info) -> list[Demand]:
        rows = await info.context.db.run(v.open_demands, household_id=self.row["id"], at=self.as_of)
        return [Demand.of(r, self.row["id"], self.row["code"]) for r in rows]

    @strawberry.field(description="Every recorded change, oldest first, with who and when.")
    async def history(self, info: Info) -> list[FamilyFileChange]:
        rows = await info.context.db.run(ff.history, household_id=self.row["id"])
        return [FamilyFileChange(**r) for r in rows]

    @classmethod
    def of(cls, file: dict[str, Any]) -> FamilyFile:
        return cls(
            row=file,
            version=file["version"],
            as_of=file["at"],
            household_class=HouseholdClass(file["household_class"]),
            contact_preference=ContactChannel(file["contact_preference"]),
            visit_times=[VisitTime(t) for t in file["visit_times"] or ()],
            notes=file["notes"],
            moved_in=file["moved_in"],
            moved_out=file["moved_out"],
            moved_out_reason=file["moved_out_reason"],
        )


def require_file_keeper(info: Info) -> None:
    """Family files, visits, talents and overdue lists are for those who keep the files."""
    if info.context.caller.role not in FAMILY_FILE_ROLES:
        raise Forbidden(
            "family files are kept by grid workers, micro-grid leaders, communities and the grid "
            "center: sign in as one of them"
        )


def entity_key(info: Info, value: str, type_name: str, argument: str) -> uuid.UUID:
    """The key of a global ID of ``type_name``, for a caller who keeps family files."""
    require_file_keeper(info)
    found, key = parse_global_id(value, argument=argument)
    if found != type_name:
        raise BadInput(argument, f"{value!r} is the ID of a {found}, not of a {type_name}")
    return key


async def family_file(
    info: Info,
    household_id: strawberry.ID,
    as_of: dt.date | None = None,
) -> FamilyFile | None:
    """The file as it stands, or as it stood at the end of day `asOf` (null: not moved in)."""
    if info.context.caller.role not in FAMILY_FILE_ROLES:
        return None  # no family files for this role: nothing to find, nothing to say
    key = entity_key(info, household_id, "Household", "householdId")
    day = as_of
    if day is None:
        file = await info.context.db.run(ff.current_file, household_id=key)
    else:
        file = await info.context.db.run(ff.file_as_of, household_id=key, as_of=day)
        if file is None and await info.context.db.run(ff.current_file, household_id=key):
            return None
    if file is None:
        raise NotFound("householdId", f"no household {household_id} in your areas")
    return FamilyFile.of(file)


# --------------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------------

ID_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def sealed_id_number(info: Info, value: str | None) -> tuple[bytes, bytes, str] | None:
    """A resident ID number (GB 11643: 18 characters, the last a check digit), sealed."""
    if value is None:
        return None
    number = value.strip().upper()
    if not ID_NUMBER.match(number):
        raise BadInput("input.idNumber", "18 characters: 17 digits and a digit or X")
    check = "10X98765432"[
        sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS, strict=True)) % 11
    ]
    if number[-1] != check:
        raise BadInput("input.idNumber", "the check digit does not match: a typo?")
    return info.context.vault.seal(number)


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The input fields a client sent (UNSET: not sent), enums as their values."""
    out = {}
    for name, value in values.items():
        if value is strawberry.UNSET:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, list):
            value = [x.value if isinstance(x, enum.Enum) else x for x in value]
        out[name] = value
    return out


@strawberry.input(description="Only the fields given change; `version` is the one you read.")
class UpdateFamilyFileInput:
    household_id: strawberry.ID
    version: int
    household_class: HouseholdClass | None = strawberry.UNSET
    contact_preference: ContactChannel | None = strawberry.UNSET
    visit_times: list[VisitTime] | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    moved_in: dt.date | None = strawberry.UNSET


@strawberry.input(description="A member's fields; on update only the fields given change.")
class MemberFields:
    name: str | None = strawberry.UNSET
    gender: str | None = strawberry.UNSET
    relation: str | None = strawberry.UNSET
    birth_year: int | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    id_number: str | None = strawberry.UNSET
    elderly_living_alone: bool | None = strawberry.UNSET
    childless_elderly: bool | None = strawberry.UNSET
    bereaved: bool | None = strawberry.UNSET
    low_income: bool | None = strawberry.UNSET
    disabled: bool | None = strawberry.UNSET
    entitled_group: bool | None = strawberry.UNSET
    seeking_work: bool | None = strawberry.UNSET


@strawberry.input
class AddMemberInput:
    household_id: strawberry.ID
    version: int
    member: MemberFields


@strawberry.input
class UpdateMemberInput:
    member_id: strawberry.ID
    version: int
    member: MemberFields


@strawberry.input
class RemoveMemberInput:
    member_id: strawberry.ID
    version: int
    reason: MemberRemoval
    note: str | None = None


@strawberry.input
class MoveOutInput:
    household_id: strawberry.ID
    version: int
    moved_out_on: dt.date | None = strawberry.field(
        default=None, description="The day the household left; today when not given."
    )
    reason: str | None = None


@strawberry.type(description="The family file after the edit (with its new version).")
class FamilyFilePayload:
    family_file: FamilyFile
    member: Person | None = strawberry.field(
        default=None, description="The member added or changed."
    )


def _member_values(fields: MemberFields) -> tuple[dict[str, Any], Any]:
    values = given(vars(fields))
    number = values.pop("id_number", strawberry.UNSET)
    return values, number


def _member(file: dict[str, Any], member_id: uuid.UUID) -> Person | None:
    return next((Person.from_row(m) for m in file["members"] if m["id"] == member_id), None)


async def update_family_file(info: Info, input: UpdateFamilyFileInput) -> FamilyFilePayload:
    key = entity_key(info, input.household_id, "Household", "input.householdId")
    values = given({k: getattr(input, k) for k in ff.FILE_FIELDS if hasattr(input, k)})
    file = await info.context.db.write(
        ff.update_file, caller=info.context.caller, household_id=key, version=input.version,
        values=values,
    )  # fmt: skip
    return FamilyFilePayload(family_file=FamilyFile.of(file))


async def add_member(info: Info, input: AddMemberInput) -> FamilyFilePayload:
    key = entity_key(info, input.household_id, "Household", "input.householdId")
    values, number = _member_values(input.member)
    sealed = None if number is strawberry.UNSET else sealed_id_number(info, number)
    file, member_id = await info.context.db.write(
        ff.add_member, caller=info.context.caller, household_id=key, version=input.version,
        values=values, sealed=sealed,
    )  # fmt: skip
    return FamilyFilePayload(family_file=FamilyFile.of(file), member=_member(file, member_id))


async def update_member(info: Info, input: UpdateMemberInput) -> FamilyFilePayload:
    key = entity_key(info, input.member_id, "Person", "input.memberId")
    values, number = _member_values(input.member)
    sealed = None if number in (strawberry.UNSET, None) else sealed_id_number(info, number)
    file = await info.context.db.write(
        ff.update_member, caller=info.context.caller, member_id=key, version=input.version,
        values=values, sealed=sealed, clear_id_number=number is None,
    )  # fmt: skip
    return FamilyFilePayload(family_file=FamilyFile.of(file), member=_member(file, key))


async def remove_member(info: Info, input: RemoveMemberInput) -> FamilyFilePayload:
    key = entity_key(info, input.member_id, "Person", "input.memberId")
    file = await info.context.db.write(
        ff.remove_member, caller=info.context.caller, member_id=key, version=input.version,
        reason=input.reason.value, note=input.note,
    )  # fmt: skip
    return FamilyFilePayload(family_file=FamilyFile.of(file))


async def move_out(info: Info, input: MoveOutInput) -> FamilyFilePayload:
    key = entity_key(info, input.household_id, "Household", "input.householdId")
    file = await info.context.db.write(
        ff.move_out, caller=info.context.caller, household_id=key, version=input.version,
        on=input.moved_out_on, reason=input.reason,
    )  # fmt: skip
    return FamilyFilePayload(family_file=FamilyFile.of(file))
