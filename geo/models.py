"""The spatial model: district > subdistrict > community > grid > micro-grid > building > household.

Geometries are stored in EPSG:4326 (lon, lat); metres are computed on ``geography``.
Keys are UUIDs (no sequences, so tables can later be distributed); ``code`` is the natural key a
person or a file refers to. Codes use the "C" collation so a btree index answers prefix searches
(``code LIKE '310106015%'``): a code alone tells where a thing is.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WorkerRole(enum.StrEnum):
    GRID_CENTER = "GRID_CENTER"
    COMMUNITY = "COMMUNITY"
    GRID_WORKER = "GRID_WORKER"
    MICRO_GRID_LEADER = "MICRO_GRID_LEADER"
    DEPARTMENT = "DEPARTMENT"


class HouseholdClass(enum.StrEnum):
    """A: no door visits (phone/online); B: normal visits; C: special groups, visited more often."""

    A = "A"
    B = "B"
    C = "C"


PERSON_FLAGS = (
    "elderly_living_alone",
    "childless_elderly",
    "bereaved",
    "low_income",
    "disabled",
    "entitled_group",
    "seeking_work",
)


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )


def _code() -> Mapped[str]:
    return mapped_column(String(collation="C"), unique=True, nullable=False)


def _geometry_checks(column: str, types: tuple[str, ...]) -> tuple[CheckConstraint, ...]:
    kinds = ", ".join(f"'{t}'" for t in types)
    return (
        CheckConstraint(f"ST_SRID({column}) = {SRID}", name=f"{column}_srid"),
        CheckConstraint(f"ST_IsValid({column})", name=f"{column}_valid"),
        CheckConstraint(f"GeometryType({column}) IN ({kinds})", name=f"{column}_type"),
    )


def _code_check(pattern: str) -> CheckConstraint:
    return CheckConstraint(f"code ~ '{pattern}'", name="code_format")


def _children(table: str, parent: str) -> Index:
    """The rows of one parent in code order, as pages of children are read (and as the
    foreign key is checked): no sort, and no more rows than the page."""
    return Index(f"ix_{table}_{parent}", parent, "code")


AREA = ("MULTIPOLYGON",)
FOOTPRINT = ("POLYGON", "MULTIPOLYGON")
POINT = ("POINT",)


class District(Base):
    __tablename__ = "district"
    __table_args__ = (_code_check("^[0-9]{6}$"), *_geometry_checks("geom", AREA))

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str] = mapped_column(Text)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)


class Subdistrict(Base):
    __tablename__ = "subdistrict"
    __table_args__ = (
        _code_check("^[0-9]{9}$"),
        *_geometry_checks("geom", AREA),
        _children("subdistrict", "district_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str] = mapped_column(Text)
    district_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("district.id"))
    # Days, months and "today" are counted in this zone.
    timezone: Mapped[str] = mapped_column(Text, server_default=text("'Asia/Shanghai'"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)


class Community(Base):
    __tablename__ = "community"
    __table_args__ = (
        _code_check("^[0-9]{12}$"),
        *_geometry_checks("geom", AREA),
        *_geometry_checks("office", POINT),
        _children("community", "subdistrict_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str] = mapped_column(Text)
    subdistrict_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subdistrict.id"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)
    # The committee office: where a block head's walking route starts.
    office = mapped_column(Geometry("POINT", srid=SRID))


class Grid(Base):
    __tablename__ = "grid"
    __table_args__ = (
        _code_check("^[0-9]{15}$"),
        *_geometry_checks("geom", AREA),
        _children("grid", "community_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str | None] = mapped_column(Text)
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("community.id"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)


class MicroGrid(Base):
    __tablename__ = "micro_grid"
    __table_args__ = (
        _code_check("^[0-9]{18}$"),
        *_geometry_checks("geom", AREA),
        _children("micro_grid", "grid_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str | None] = mapped_column(Text)
    grid_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("grid.id"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID), nullable=False)


# A building's code is its micro-grid's code plus a 3-digit number, or a source key such as
# ``osm:w123456`` while it belongs to no micro-grid yet.
BUILDING_CODE = "^([0-9]{21}|[a-z][a-z0-9_]*:[^[:space:]]+)$"


class Building(Base):
    __tablename__ = "building"
    __table_args__ = (
        _code_check(BUILDING_CODE),
        *_geometry_checks("geom", FOOTPRINT),
        CheckConstraint("levels IS NULL OR levels BETWEEN 1 AND 200", name="levels_range"),
        _children("building", "micro_grid_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = _code()
    name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    levels: Mapped[int | None] = mapped_column(SmallInteger)
    # The key it has in the file it was imported from (migration 0012), e.g. ``osm:w123``.
    source_key: Mapped[str | None] = mapped_column(String(collation="C"), unique=True)
    micro_grid_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("micro_grid.id"))
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID), nullable=False)


class Household(Base):
    __tablename__ = "household"
    __table_args__ = (
        CheckConstraint("household_class IN ('A', 'B', 'C')", name="class"),
        *_geometry_checks("location", POINT),
        _children("household", "building_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    # The building's code plus unit and room: ``<building>-2-0302``.
    code: Mapped[str] = _code()
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("building.id"))
    unit: Mapped[str | None] = mapped_column(Text)
    room: Mapped[str] = mapped_column(Text)
    household_class: Mapped[str] = mapped_column(String(1), server_default=text("'B'"))
    moved_in: Mapped[dt.date | None] = mapped_column(Date)
    location = mapped_column(Geometry("POINT", srid=SRID))
    # The family file (migration 0006; its history, visits, demands and talents live in tables
    # of their own, geo/family_files.py and geo/visits.py).
    contact_preference: Mapped[str] = mapped_column(Text, server_default=text("'DOOR'"))
    visit_times: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    notes: Mapped[str | None] = mapped_column(Text)
    # Bumped by every edit: an edit based on an older version is refused.
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    moved_out: Mapped[dt.date | None] = mapped_column(Date)
    moved_out_reason: Mapped[str | None] = mapped_column(Text)
    # Kept by a trigger on visit: today's coverage reads these, not the visits.
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_preferred_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Person(Base):
    """A household member. Name, phone, ID number and birth year are personal data."""

    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint(
            "birth_year IS NULL OR birth_year BETWEEN 1880 AND 2200", name="birth_year"
        ),
        CheckConstraint("gender IS NULL OR gender IN ('F', 'M')", name="gender"),
        _children("person", "household_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    # The household's code plus a two-digit member number: ``<household>-01``.
    code: Mapped[str] = _code()
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("household.id"))
    name: Mapped[str] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(1))
    relation: Mapped[str | None] = mapped_column(Text)
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)
    phone: Mapped[str | None] = mapped_column(Text)
    # The ID number, never in plain text (geo/pii.py): sealed with AES-GCM, an HMAC digest to
    # find a person by number, and the masked form roles without the right to read it may see.
    id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_digest: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    id_number_masked: Mapped[str | None] = mapped_column(Text)
    elderly_living_alone: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    childless_elderly: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    bereaved: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    low_income: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    entitled_group: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    seeking_work: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


worker_grid = Table(
    "worker_grid",
    Base.metadata,
    Column("worker_id", ForeignKey("worker.id", ondelete="CASCADE"), primary_key=True),
    Column("grid_id", ForeignKey("grid.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Worker(Base):
    __tablename__ = "worker"
    __table_args__ = (
        CheckConstraint(
            "(role = 'DEPARTMENT') = (unit_code IS NOT NULL)", name="unit_code_for_department"
        ),
    )

    id: Mapped[uuid.UUID] = _pk()
    # The staff number.
    code: Mapped[str] = _code()
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    role: Mapped[WorkerRole] = mapped_column(Enum(WorkerRole, name="worker_role"))
    # The area the worker belongs to: the subdistrict for the grid center, the community for a
    # community secretary or a grid worker.
    subdistrict_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subdistrict.id"), index=True)
    community_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("community.id"), index=True)
    # Department staff belong to a unit (e.g. the housing office) that cases are dispatched to.
    unit_code: Mapped[str | None] = mapped_column(Text)
    # argon2 hash; NULL: this worker cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(Text)
    # Bumped to revoke every token and session issued before (api/auth.py).
    token_epoch: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Merchant(Base):
    __tablename__ = "merchant"
    __table_args__ = (
        *_geometry_checks("geom", POINT),
        CheckConstraint("employees IS NULL OR employees >= 0", name="employees"),
    )

    id: Mapped[uuid.UUID] = _pk()
    # Business-licence number, or a source key such as ``osm:n123``.
    code: Mapped[str] = _code()
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    employees: Mapped[int | None] = mapped_column(Integer)
    building_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("building.id"), index=True)
    geom = mapped_column(Geometry("POINT", srid=SRID), nullable=False)


class DemoInfo(Base):
    """What the demo loader put in this database, so a newer demo can bring it up to date."""

    __tablename__ = "demo_info"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    households: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
