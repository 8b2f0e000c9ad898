"""Compiled queries: a read-only operation on the spatial model answered by one SQL statement
that builds the whole JSON answer in PostgreSQL (PostGraphile's way), instead of field by field.

Why: resolving in Python costs per field and per row; a page of 500 households with members is
thousands of resolver calls, and that made gridmap twenty times slower than PostGraphile. The
compiler covers the areas, buildings, households and members: their fields, counts, parents,
child connections, lookups by code and lists with their filters. Anything else (mutations,
workers, merchants, the audit log, ``node``, directives, an ID number in clear) and anything
in doubt (a bad argument, an unknown code) returns ``None``: the general path answers it, with
the same data or the proper error, only slower. ``tests/test_compiled.py`` holds the two paths
to the same answers and the same audit rows for every role.

Security is the same on both paths: the statement runs as the app role, under row-level
security, in a transaction that records the caller first (``geo.db.scope_sql``); personal
fields are read, masked or withheld by ``Caller.access_inside`` (row-level security shows a
caller only households inside its areas); each object whose personal fields are read in full
carries a marker (its household and which fields) that ``run`` strips from the answer and writes
to the audit log before the answer is returned.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
import psycopg2
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from sqlalchemy import Engine, PoolProxiedConnection
from sqlalchemy.exc import DBAPIError

from api.limits import CACHED_QUERY_CHARS, CACHED_VARIABLES_BYTES, parse_document
from api.schema import schema
from api.schema.areas import NODE_TYPES
from api.schema.base import NearInput, filters, in_callers_areas
from api.schema.personal import Personal
from api.schema.relay import check_first, decode_cursor
from geo import queries as q
from geo.access import Access, Caller
from geo.audit import reads_sql
from geo.db import scope_sql
from geo.errors import BadInput

SCHEMA = schema._schema

ENTITIES = {name: cls.entity for name, cls in NODE_TYPES.items()}
LOOKUPS = {
    "district": "District",
    "subdistrict": "Subdistrict",
    "community": "Community",
    "grid": "Grid",
    "microGrid": "MicroGrid",
    "building": "Building",
    "household": "Household",
}
LISTS = {
    "districts": "District",
    "subdistricts": "Subdistrict",
    "communities": "Community",
    "grids": "Grid",
    "microGrids": "MicroGrid",
    "buildings": "Building",
    "households": "Household",
}
CHILDREN = {
    ("District", "subdistricts"): "Subdistrict",
    ("Subdistrict", "communities"): "Community",
    ("Community", "grids"): "Grid",
    ("Grid", "microGrids"): "MicroGrid",
    ("MicroGrid", "buildings"): "Building",
    ("Building", "households"): "Household",
}
PARENTS = {
    ("Subdistrict", "district"): "District",
    ("Community", "subdistrict"): "Subdistrict",
    ("Grid", "community"): "Community",
    ("MicroGrid", "grid"): "Grid",
    ("Building", "microGrid"): "MicroGrid",
    ("Household", "building"): "Building",
    ("Person", "household"): "Household",
}
AREAS = frozenset({"District", "Subdistrict", "Community", "Grid", "MicroGrid"})
# Columns of ``Entity.select`` that fields show as they are.
COLUMNS = frozenset(
    {"code", "name", "timezone", "office", "address", "levels", "unit", "room", "geometry"}
)


def _personal_fields() -> dict[tuple[str, str], str]:
    """(type, GraphQL field) → Python name of every field the personal-data marker marks."""
    convert = schema.config.name_converter
    return {
        (type_name, convert.get_graphql_name(f)): f.python_name
        for type_name, cls in NODE_TYPES.items()
        for f in cls.__strawberry_definition__.fields  # type: ignore[attr-defined]
        if any(isinstance(d, Personal) for d in f.directives)
    }


PERSONAL = _personal_fields()
# Masked forms in SQL, as ``geo.pii`` makes them in Python ({} is the column).
MASKED = {
    "phone": "CASE WHEN length({0}) <= 7 THEN repeat('*', length({0}))"
    " ELSE left({0}, 3) || repeat('*', length({0}) - 7) || right({0}, 4) END",
    "id_number": "{a}.id_number_masked",
}

MARK = '{"\\u0001" : '  # how json_build_object writes the key chr(1): then "…", or null,
MARK_END = '", '
NO_MARK = "null, "
PARAM = re.compile(r"(?<![:\w]):(\w+)")


class Audited(NamedTuple):
    """What a marker stands for: the fields read in full, and whether the marked row is a
    member (whose household's code is its own without the last part)."""

    fields: tuple[str, ...]
    of_member: bool


class NotCompiled(Exception):
    """This operation takes the general path."""


@dataclass(frozen=True)
class Compiled:
    """One statement (psycopg2 parameters) whose single row is (answer's data as JSON text,
    whether every root field found what it named); ``audited[i]``: the fields marker ``i``
    stands for."""

    sql: str
    params: dict[str, Any]
    audited: list[Audited]


def compile_operation(
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    caller: Caller,
    k_anonymity: int,
) -> Compiled | None:
    """The statement answering this operation for this caller, or None for the general path.
    Small operations' statements are kept per caller: dashboards ask the same few again and
    again, and compiling the grid tree cost a sixth of its request's Python time."""
    try:
        values = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an uploaded file: a mutation, never compiled
        return None
    if len(query) <= CACHED_QUERY_CHARS and len(values) <= CACHED_VARIABLES_BYTES:
        return _kept(query, values, operation_name, caller, k_anonymity)
    return _compile(_valid(query), variables or {}, operation_name, caller, k_anonymity)


@lru_cache(maxsize=1024)
def _kept(
    query: str, variables: bytes, operation_name: str | None, caller: Caller, k_anonymity: int
) -> Compiled | None:
    """A ``Caller`` is equal to another with the same role, worker and areas (not address)."""
    return _compile(_document(query), orjson.loads(variables), operation_name, caller, k_anonymity)


def _compile(
    document: DocumentNode | None,
    variables: dict[str, Any],
    operation_name: str | None,
    caller: Caller,
    k_anonymity: int,
) -> Compiled | None:
    if document is None:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    values = get_variable_values(SCHEMA, operation.variable_definitions or [], variables)
    if isinstance(values, list):  # the variables do not fit their types
        return None
    try:
        return _Compiler(document, values, caller, k_anonymity).operation(operation)
    except (NotCompiled, BadInput):
        return None


@lru_cache(maxsize=256)
def _document(query: str) -> DocumentNode | None:
    return _valid(query)


def _valid(query: str) -> DocumentNode | None:
    """The document if it is valid against the schema (else the general path reports why)."""
    try:
        document = parse_document(query)
    except GraphQLError:
        return None
    return None if validate(SCHEMA, document) else document


def strip_marks(data: str) -> tuple[str, list[tuple[str, int, str]]]:
    """The answer without its audit markers, and (household id, index into ``audited``, code
    of the marked row) of each. A marker opens its object (``{"\\u0001" : "…", ``): the
    text cannot occur elsewhere, where a quote after a brace would be escaped."""
    parts = data.split(MARK)
    if len(parts) == 1:
        return data, []
    out, marks = [parts[0]], []
    for part in parts[1:]:
        out.append("{")
        if part.startswith(NO_MARK):
            out.append(part[len(NO_MARK) :])
            continue
        end = part.find(MARK_END)
        while _escaped(part, end):
            end = part.find(MARK_END, end + 1)
        index, _, code = part[38:end].partition("/")
        marks.append((part[1:37], int(index), orjson.loads(f'"{code}"') if "\\" in code else code))
        out.append(part[end + len(MARK_END) :])
    return "".join(out), marks


def _escaped(text: str, quote: int) -> bool:
    """Whether the quote at ``quote`` is escaped: an odd run of backslashes before it."""
    run = 0
    while text[quote - 1 - run] == "\\":
        run += 1
    return run % 2 == 1


class _Compiler:
    def __init__(
        self, document: DocumentNode, values: dict[str, Any], caller: Caller, k: int
    ) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.values = values
        self.caller = caller
        self.k = k
        self.params: dict[str, Any] = {}
        self.audited: list[Audited] = []
        self.aliases = 0
        self.with_distance: set[str] = set()  # aliases of rows of a `near` search

    # -- the statement ------------------------------------------------------------------------

    def operation(self, operation: OperationDefinitionNode) -> Compiled:
        root = SCHEMA.query_type
        assert root is not None
        pairs: list[tuple[str, str]] = []
        found: list[str] = []
        lookups: list[str] = []  # each built once in a subquery of its own, then tested
        for key, node in self.collect(operation.selection_set, root):
            name = node.name.value
            if name == "__typename":
                pairs.append((key, "'\"Query\"'::json"))
                continue
            if name not in LOOKUPS and name not in LISTS:
                raise NotCompiled(name)
            args = self.arguments(root, node)
            if name in LOOKUPS:
                type_name = LOOKUPS[name]
                entity, a, code = ENTITIES[type_name], self.alias(), self.bind(args["code"])
                rows = f"SELECT {entity.select} FROM {entity.table} t WHERE t.code = {code}"
                f = f"f{len(lookups)}"
                value = f"(SELECT {self.object(type_name, a, node)} FROM ({rows}) {a})"
                lookups.append(f"(SELECT {value} AS v OFFSET 0) {f}")
                pairs.append((key, f"{f}.v"))
                found.append(f"{f}.v IS NOT NULL")
            else:
                expr, check = self.root_list(LISTS[name], root.fields[name], node, args)
                pairs.append((key, expr))
                if check:
                    found.append(check)
        ok = " AND ".join(found) or "true"
        sql = f"SELECT {_build(pairs)}::text, {ok}"
        if lookups:
            sql += " FROM " + ", ".join(lookups)
        return Compiled(sql, self.params, self.audited)

    def root_list(
        self, type_name: str, field: Any, node: FieldNode, args: dict[str, Any]
    ) -> tuple[str, str | None]:
        entity = ENTITIES[type_name]
        first = check_first(args["first"])
        after = decode_cursor(args.get("after"))
        where = filters(
            within=args.get("within"),
            intersects=args.get("intersects"),
            near=_near(args.get("near")),
            scope=args.get("scope"),
        )
        where = in_callers_areas(where, entity, self.caller)
        check = None
        if where.scope is not None:
            area = q.AREAS_BY_WIDTH.get(len(where.scope)) if where.scope.isdigit() else None
            if area is None:
                raise NotCompiled("scope")
            check = f"EXISTS (SELECT FROM {area.table} WHERE code = {self.bind(where.scope)})"

        def rows(limit: int) -> str:
            return self.sql(*q.page_sql(entity, limit, after, where))

        order = "distance_meters, code" if where.near else "code"
        total = self.sql(*q.count_sql(entity, where))
        conn_type = get_named_type(field.type)
        conn = self.connection(conn_type, node, type_name, rows, order, total, after is not None,
                               first)  # fmt: skip
        return conn, check

    def connection(
        self,
        conn_type: Any,
        node: FieldNode,
        type_name: str,
        rows: Any,
        order: str,
        total: str,
        has_previous: bool,
        first: int,
    ) -> str:
        """A Relay connection over ``rows(limit)`` (a SELECT of ``Entity.select`` columns in
        ``order``)."""
        pairs: list[tuple[str, str]] = []
        for key, sel in self.collect(node.selection_set, conn_type):
            name = sel.name.value
            if name == "__typename":
                pairs.append((key, _typename(conn_type.name)))
            elif name == "totalCount":
                pairs.append((key, f"({total})"))
            elif name == "edges":
                a = self.alias()
                if order != "code":
                    self.with_distance.add(a)
                edge = self.edge(_type_of(conn_type, "edges"), sel, type_name, a, order)
                ordered = ", ".join(f"{a}.{c}" for c in order.split(", "))
                pairs.append(
                    (key, f"COALESCE((SELECT json_agg({edge} ORDER BY {ordered})"
                          f" FROM ({rows(first)}) {a}), '[]'::json)")
                )  # fmt: skip
            elif name == "pageInfo":
                info_type = _type_of(conn_type, "pageInfo")
                pairs.append((key, self.page_info(info_type, sel, rows, order, has_previous,
                                                  first)))  # fmt: skip
            else:
                raise NotCompiled(name)
        return _build(pairs)

    def edge(self, edge_type: Any, node: FieldNode, type_name: str, a: str, order: str) -> str:
        pairs: list[tuple[str, str]] = []
        for key, sel in self.collect(node.selection_set, edge_type):
            name = sel.name.value
            if name == "__typename":
                pairs.append((key, _typename(edge_type.name)))
            elif name == "cursor":
                pairs.append((key, _cursor(a, order)))
            elif name == "node":
                pairs.append((key, self.object(type_name, a, sel)))
            else:
                raise NotCompiled(name)
        return _build(pairs)

    def page_info(
        self, info_type: Any, node: FieldNode, rows: Any, order: str, has_previous: bool,
        first: int,
    ) -> str:  # fmt: skip
        pairs: list[tuple[str, str]] = []
        for key, sel in self.collect(node.selection_set, info_type):
            name = sel.name.value
            a = self.alias()
            if name == "__typename":
                expr = _typename(info_type.name)
            elif name == "hasNextPage":
                expr = f"(SELECT count(*) > {first} FROM ({rows(first + 1)}) {a})"
            elif name == "hasPreviousPage":
                expr = "true" if has_previous else "false"
            elif name in ("startCursor", "endCursor"):
                if first == 0:
                    expr = "NULL"
                else:
                    last = name == "endCursor"
                    desc = ", ".join(f"{a}.{c} DESC" for c in order.split(", "))
                    expr = (f"(SELECT {_cursor(a, order)} FROM ({rows(first if last else 1)})"
                            f" {a}{f' ORDER BY {desc} LIMIT 1' if last else ''})")  # fmt: skip
            else:
                raise NotCompiled(name)
            pairs.append((key, expr))
        return _build(pairs)

    def object(self, type_name: str, a: str, node: FieldNode, read: set[str] | None = None) -> str:
        """The JSON object of the row ``a`` (``Entity.select`` columns) for this selection.
        Members of a household pass what they read in full to ``read``: their household's
        object carries the marker, one per household rather than one per member."""
        entity = ENTITIES[type_name]
        gtype = SCHEMA.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType)
        pairs: list[tuple[str, str]] = []
        audited: set[str] = set()
        members_read: set[str] = set()
        has_members = "false"
        for key, sel in self.collect(node.selection_set, gtype):
            name = sel.name.value
            python_name = PERSONAL.get((type_name, name))
            if python_name is not None:
                expr = self.personal(python_name, a)
                if self.caller.access_inside(python_name) is Access.FULL:
                    audited.add(python_name)
            elif name == "__typename":
                expr = _typename(type_name)
            elif name == "id":
                expr = _base64(f"'{type_name}:' || {a}.id::text")
            elif name in COLUMNS:
                expr = f"{a}.{name}"
            elif name == "distanceMeters":
                expr = f"{a}.distance_meters" if a in self.with_distance else "NULL"
            elif name in ("householdCount", "residentCount", "suppressed"):
                expr = self.count(type_name, name, a)
            elif (type_name, name) in CHILDREN:
                expr = self.children(type_name, CHILDREN[type_name, name], a, sel)
            elif (type_name, name) in PARENTS:
                parent = PARENTS[type_name, name]
                up, b = ENTITIES[parent], self.alias()
                rows = f"SELECT {up.select} FROM {up.table} t WHERE t.id = {a}.parent_id"
                expr = f"(SELECT {self.object(parent, b, sel)} FROM ({rows}) {b})"
            elif (type_name, name) == ("Household", "members"):
                b = self.alias()
                members = f"FROM person t WHERE t.household_id = {a}.id"
                person = self.object("Person", b, sel, members_read)
                rows = f"SELECT {q.PERSON.select} {members}"
                expr = (f"COALESCE((SELECT json_agg({person} ORDER BY {b}.code)"
                        f" FROM ({rows}) {b}), '[]'::json)")  # fmt: skip
                has_members = f"EXISTS (SELECT {members})"
            else:
                raise NotCompiled(f"{type_name}.{name}")
            pairs.append((key, expr))
        if read is not None:
            read |= audited
        elif audited or members_read:
            # Which household the read is of: the row's own, or a member's household; and
            # which fields: what members showed counts only if there are members.
            household = f"{a}.id" if entity is q.HOUSEHOLD else f"{a}.parent_id"
            index = alone = self.audit(audited, entity)
            if members_read:
                with_members = self.audit(audited | members_read, entity)
                index = f"CASE WHEN {has_members} THEN {with_members} ELSE {alone} END"
            # NULL (nothing read: a household without members) makes the marker null.
            mark = f"{household}::text || '/' || {index} || '/' || {a}.code"
            pairs.insert(0, ("\x01", mark))
        return _build(pairs)

    def audit(self, fields: set[str], entity: q.Entity) -> str:
        """SQL for the index of this field set in ``audited`` (NULL: nothing read)."""
        if not fields:
            return "NULL"
        self.audited.append(Audited(tuple(sorted(fields)), entity is q.PERSON))
        return f"'{len(self.audited) - 1}'"

    def personal(self, python_name: str, a: str) -> str:
        access = self.caller.access_inside(python_name)
        if access is Access.FULL:
            if python_name == "id_number":
                raise NotCompiled("id_number")  # sealed: only the app can open it
            return f"{a}.{python_name}"
        if access is Access.MASKED and python_name in MASKED:
            return MASKED[python_name].format(f"{a}.{python_name}", a=a)
        return "NULL"

    def count(self, type_name: str, name: str, a: str) -> str:
        if type_name == "Household":
            if name == "householdCount":
                return "1"
            if name == "residentCount":
                return f"(SELECT count(*) FROM person t WHERE t.household_id = {a}.id)"
            raise NotCompiled(name)
        if type_name in AREAS:
            households, residents = f"area_households({a}.code)", f"area_residents({a}.code)"
        elif type_name == "Building":
            households, residents = f"building_households({a}.id)", f"building_residents({a}.id)"
        else:
            raise NotCompiled(name)
        if not self.caller.is_public:
            value = {"householdCount": households, "residentCount": residents}.get(name, "false")
            return value
        small = f"{households} < {self.k}"
        if name == "suppressed":
            return f"({small})"
        value = households if name == "householdCount" else residents
        return f"CASE WHEN {small} THEN NULL ELSE {value} END"

    def children(self, type_name: str, child: str, a: str, node: FieldNode) -> str:
        entity = ENTITIES[child]
        parent = self.field_def(type_name, node)
        args = get_argument_values(parent, node, self.values)
        first = check_first(args["first"])
        after = decode_cursor(args.get("after"))
        where = f"t.{entity.parent} = {a}.id"
        if after is not None:
            where += f" AND t.code > {self.bind(after[-1])}"

        def rows(limit: int) -> str:
            return (f"SELECT {entity.select} FROM {entity.table} t WHERE {where}"
                    f" ORDER BY t.code LIMIT {limit}")  # fmt: skip

        total = f"SELECT count(*) FROM {entity.table} t WHERE t.{entity.parent} = {a}.id"
        conn_type = get_named_type(parent.type)
        return self.connection(conn_type, node, child, rows, "code", total, after is not None,
                               first)  # fmt: skip

    # -- the document -------------------------------------------------------------------------

    def collect(
        self, selection_set: SelectionSetNode | None, gtype: Any
    ) -> Iterator[tuple[str, FieldNode]]:
        """(response key, field) in answer order, fragments that apply to ``gtype`` spread.
        A key asked for twice is compiled only when both ask for the same leaf."""
        seen: dict[str, FieldNode] = {}
        for key, node in self._fields(selection_set, gtype):
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = node
                yield key, node
            elif (earlier.name.value != node.name.value or earlier.arguments or node.arguments
                  or earlier.selection_set or node.selection_set):  # fmt: skip
                raise NotCompiled(f"{key} asked for twice")

    def _fields(
        self, selection_set: SelectionSetNode | None, gtype: Any
    ) -> Iterator[tuple[str, FieldNode]]:
        if selection_set is None:
            return
        for sel in selection_set.selections:
            if sel.directives:
                raise NotCompiled("directives")
            if isinstance(sel, FieldNode):
                yield (sel.alias or sel.name).value, sel
                continue
            if isinstance(sel, FragmentSpreadNode):
                fragment: Any = self.fragments[sel.name.value]
            else:
                assert isinstance(sel, InlineFragmentNode)
                fragment = sel
            condition = fragment.type_condition
            if condition is None or _applies(condition.name.value, gtype):
                if isinstance(fragment, FragmentDefinitionNode) and fragment.directives:
                    raise NotCompiled("directives")
                yield from self._fields(fragment.selection_set, gtype)

    def arguments(self, parent: GraphQLObjectType, node: FieldNode) -> dict[str, Any]:
        return get_argument_values(parent.fields[node.name.value], node, self.values)

    def field_def(self, type_name: str, node: FieldNode) -> Any:
        return SCHEMA.type_map[type_name].fields[node.name.value]  # type: ignore[union-attr]

    # -- parameters and aliases ---------------------------------------------------------------

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def sql(self, text: str, params: dict[str, Any]) -> str:
        """``geo.queries`` SQL (``:name`` parameters) with its parameters bound here."""
        return PARAM.sub(lambda m: self.bind(params[m[1]]), text)

    def alias(self) -> str:
        self.aliases += 1
        return f"a{self.aliases}"


def _type_of(gtype: Any, field_name: str) -> Any:
    return get_named_type(gtype.fields[field_name].type)


def _applies(condition: str, gtype: Any) -> bool:
    return condition == gtype.name or any(i.name == condition for i in gtype.interfaces)


def _near(value: dict[str, Any] | None) -> NearInput | None:
    return None if value is None else NearInput(**value)


def _build(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        raise NotCompiled("empty selection")
    if len(pairs) > 50:  # json_build_object takes at most 100 arguments
        raise NotCompiled("too many fields")
    items = (f"{'chr(1)' if k == chr(1) else repr(k)}, {v}" for k, v in pairs)
    return "json_build_object(" + ", ".join(items) + ")"


def _typename(name: str) -> str:
    return f"'\"{name}\"'::json"


def _base64(text: str) -> str:
    """URL-safe base64 of a text, as Python's ``base64.urlsafe_b64encode`` writes it."""
    return f"translate(encode(convert_to({text}, 'UTF8'), 'base64'), E'+/\\n', '-_')"


def _cursor(a: str, order: str) -> str:
    """The cursor of a row, as ``api.schema.relay.encode_cursor`` writes its sort key."""
    parts = " || ',' || ".join(f"to_json({a}.{c})::text" for c in order.split(", "))
    return _base64(f"'[' || {parts} || ']'")


def run(engine: Engine, compiled: Compiled, caller: Caller) -> str | None:
    """The answer's data (JSON text), read as ``caller`` and audited before it is returned;
    None when a root field found nothing. ``engine`` is in autocommit mode: the caller's scope
    and the query go as one message, which PostgreSQL runs as one transaction; the audit entry
    of what it read follows. A read whose pooled connection turns out to be gone (a database
    restart), or lost its prepared statements, is tried once more."""
    scope, scope_params = scope_sql(caller.settings())
    statement = PARAM.sub(r"%(\1)s", scope) + "; "
    params = {**scope_params, **compiled.params}
    for attempt in (1, 2):
        try:
            return _read(engine, statement, compiled, params, caller)
        except DBAPIError as exc:
            gone = isinstance(exc.orig, psycopg2.errors.InvalidSqlStatementName)
            if attempt == 1 and (exc.connection_invalidated or gone):
                continue
            raise
    raise AssertionError("unreachable")


def _read(
    engine: Engine, scope: str, compiled: Compiled, params: dict[str, Any], caller: Caller
) -> str | None:
    """``run``'s work on the pooled DB-API connection itself: SQLAlchemy's Connection and result
    objects cost a fifth of a grid tree's Python time, and two statements need neither. Driver
    errors come out as SQLAlchemy's, as from any other read."""
    connection = cursor = None
    try:
        connection = engine.raw_connection()
        cursor = connection.cursor()
        cursor.execute(scope + prepared(connection, compiled.sql), params)
        data, found = cursor.fetchone()
        if not found:
            return None
        data, marks = strip_marks(data)
        if marks:
            sql, values = reads_sql(caller, _reads(compiled, marks))
            cursor.execute(prepared(connection, sql), values)
        return data
    except psycopg2.Error as exc:
        dbapi = connection.dbapi_connection if connection is not None else None
        lost = engine.dialect.is_disconnect(exc, dbapi, cursor)
        if connection is not None:
            if isinstance(exc, psycopg2.errors.InvalidSqlStatementName):
                connection.info.pop(PREPARED, None)
            if lost:
                connection.invalidate(exc)
        raise DBAPIError.instance(
            compiled.sql, None, exc, psycopg2.Error, connection_invalidated=lost
        ) from exc
    finally:
        if connection is not None:
            connection.close()  # back to the pool (or discarded, when invalidated)


# Statements are prepared on each pooled connection the first time they run there: parsing a
# compiled statement of a few kilobytes and rewriting it under row-level security cost more
# than planning it. One takes about 200 KB of the backend's memory (the grid tree, with its
# generic plan): at most PREPARED_PER_CONNECTION, the least recently used deallocated.
PREPARED = "gridmap_prepared"
PREPARED_PER_CONNECTION = 50
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def prepared(connection: PoolProxiedConnection, sql: str) -> str:
    """``sql`` (psycopg2 ``%(name)s`` parameters, the same values) as an EXECUTE of the statement
    prepared on this pooled connection, or ``sql`` itself where PostgreSQL cannot prepare it (a
    parameter's type it cannot tell)."""
    info = connection.info  # lives as long as the database connection
    cache: OrderedDict[str, tuple[str, list[str]] | None] = info.setdefault(PREPARED, OrderedDict())
    if sql not in cache:
        names: list[str] = []

        def number(m: re.Match[str]) -> str:
            if m[1] not in names:
                names.append(m[1])
            return f"${names.index(m[1]) + 1}"

        name = f"gridmap_{info.setdefault('prepared_count', 0)}"
        info["prepared_count"] += 1
        cursor = connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"PREPARE {name} AS {PLACEHOLDER.sub(number, sql).replace('%%', '%')}")
            cache[sql] = (name, names)
        except psycopg2.errors.IndeterminateDatatype:
            cache[sql] = None
        if len(cache) > PREPARED_PER_CONNECTION:
            evicted = cache.popitem(last=False)[1]
            if evicted is not None:
                cursor.execute(f"DEALLOCATE {evicted[0]}")
        cursor.close()
    cache.move_to_end(sql)
    entry = cache[sql]
    if entry is None:
        return sql
    name, names = entry
    return f"EXECUTE {name}({', '.join(f'%({n})s' for n in names)})" if names else f"EXECUTE {name}"


def _reads(
    compiled: Compiled, marks: list[tuple[str, int, str]]
) -> dict[str, tuple[str, set[str]]]:
    """Household id → (code, fields read in full) from the answer's markers."""
    reads: dict[str, tuple[str, set[str]]] = {}
    for household, index, code in marks:
        fields, of_member = compiled.audited[index]
        if household not in reads:  # a member's code is its household's plus -NN
            reads[household] = (code.rsplit("-", 1)[0] if of_member else code, set())
        reads[household][1].update(fields)
    return reads
