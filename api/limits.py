"""Limits that keep one client from taking the server: how deep, wide and costly a GraphQL
operation may be, measured on the document before anything reaches the database; how large a
request body may be; how many requests a caller may make per second.

What is checked before any parsing is cheap (the query's length; the variables' depth, number of
values and NUL characters, in one walk without recursion); the rest is checked on the parsed
document before the schema's validation, whose cost some shapes would otherwise blow up: many
operations or fragments in one document, and one field selected again and again beside itself
(graphql-core compares such fields pairwise: 330 copies of one field took it 0.8 s).
A refusal carries a code: PAYLOAD_TOO_LARGE (answered 413) for what is too long, and
QUERY_TOO_COMPLEX (400) for what is too deep or too many (``refusal_status``).

Cost is an estimate of the rows an operation can touch: every field costs the multiplier of its
parent (1 at the root); a connection multiplies its ``edges`` by its ``first`` (as sent, with the
variables' values; 50 when absent, at most 500); any other list multiplies by ``LIST_FACTOR``.
A full 500-row page of households three levels deep costs about 10,000; pages nested in pages
cost the product of their sizes (500 grids x 500 micro-grids x 500 buildings: over a million).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    parse,
    visit,
)
from graphql.language import BREAK
from starlette.requests import Request

from api.schema.relay import DEFAULT_PAGE, MAX_PAGE

MAX_DEPTH = 20
MAX_QUERY_CHARS = 100_000  # comments and strings are not tokens: the text itself is bounded too
MAX_OPERATIONS = 20  # in one document (GraphiQL sends the whole editor)
MAX_FRAGMENTS = 100
MAX_VARIABLE_DEFINITIONS = 100  # in one document
MAX_DUPLICATES = 20  # fields selected again beside a field of the same response name
MAX_INPUT_DEPTH = 32  # lists and objects in the variables (a GeoJSON multipolygon is 6)
MAX_INPUT_VALUES = 50_000  # every value in the variables, list items and object fields included
MAX_COST = 200_000  # a 500-row page three levels deep costs about 10,000
MAX_FIELDS = 1_000  # counted with fragments expanded where they are spread
MAX_ALIASES = 200
MAX_TOKENS = 15_000  # a 1,000-field query is about 5,000
CACHED_QUERY_CHARS = 20_000  # longer documents are parsed each time, not kept
CACHED_VARIABLES_BYTES = 2_000
MAX_BATCH = 10
MAX_STEPS = 10 * MAX_FIELDS  # fields, fragments and spreads visited: bounds fragment bombs
LIST_FACTOR = 10
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
TOO_COMPLEX = "QUERY_TOO_COMPLEX"
TOO_LARGE = "PAYLOAD_TOO_LARGE"


def parse_document(query: str) -> DocumentNode:
    """The document of a query; the common ones (clients send the same few again and again)
    are parsed once. Documents are never changed after parsing, so they can be shared."""
    return _parse_cached(query) if len(query) <= CACHED_QUERY_CHARS else _parse(query)


def _parse(query: str) -> DocumentNode:
    return parse(query, max_lexical_tokens=MAX_TOKENS)


_parse_cached = lru_cache(maxsize=256)(_parse)


def too_complex(message: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes=node, extensions={"code": TOO_COMPLEX})


def too_large(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": TOO_LARGE})


def refusal_status(errors: list[GraphQLError]) -> int | None:
    """The HTTP status of an operation refused by these limits (413 too large, 400 too deep or
    too many); None for other errors, answered as before."""
    codes = {(e.extensions or {}).get("code") for e in errors}
    if TOO_LARGE in codes:
        return 413
    if TOO_COMPLEX in codes:
        return 400
    return None


def check_operation(
    schema: GraphQLSchema,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    *,
    introspection: bool,
) -> list[GraphQLError]:
    """The reasons to refuse an operation before running it (none: run it). Documents that are
    invalid in other ways pass here; the schema's own validation reports them. The verdicts on
    small operations are kept: dashboards send the same few again and again."""
    if len(query) > MAX_QUERY_CHARS:
        return [
            too_large(
                f"the query is {len(query):,} characters long, over the limit of "
                f"{MAX_QUERY_CHARS:,}: send a shorter query (without long comments or strings), "
                "or pass long values as variables"
            )
        ]
    refused = check_variables(variables)
    if refused:
        return [refused]
    values = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS, default=_upload)
    if len(query) <= CACHED_QUERY_CHARS and len(values) <= CACHED_VARIABLES_BYTES:
        return list(_checked(schema, query, values, operation_name, introspection))
    return _check(schema, query, variables, operation_name, introspection)


def _upload(value: Any) -> str:
    """An uploaded file in the variables (a multipart request): its place, not its bytes,
    decides the verdict."""
    if hasattr(value, "filename") and hasattr(value, "read"):
        return "<upload>"
    raise TypeError(f"{type(value).__name__} in the variables")


@lru_cache(maxsize=1024)
def _checked(
    schema: GraphQLSchema,
    query: str,
    values: bytes,
    operation_name: str | None,
    introspection: bool,
) -> tuple[GraphQLError, ...]:
    return tuple(_check(schema, query, orjson.loads(values), operation_name, introspection))


def _check(
    schema: GraphQLSchema,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    introspection: bool,
) -> list[GraphQLError]:
    try:
        document = parse_document(query)
    except GraphQLError as exc:
        if "Parsing aborted" in exc.message:  # too many tokens, or nested too deeply
            return [
                too_complex(
                    f"the query is too large or nested too deeply to read (at most {MAX_TOKENS} "
                    "tokens): ask for fewer fields, or split it into several queries"
                )
            ]
        return [exc]
    refused = _check_document(document)
    if refused:
        return [refused]
    if _holds_nul(document):
        return [_nul_error()]
    try:
        measure = Measure(schema, document, variables or {}, introspection=introspection)
        measure.walk(operation_name)
    except GraphQLError as exc:
        return [exc]
    if measure.cost > MAX_COST:
        return [
            too_complex(
                f"the query costs {measure.cost:,}, over the limit of {MAX_COST:,} (each field "
                "counts once per row it can return: nested pages multiply): ask for smaller "
                "pages with `first`, fewer nested lists, or split it into several queries"
            )
        ]
    return []


def check_variables(variables: dict[str, Any] | None) -> GraphQLError | None:
    """The reason to refuse the variables, if any: nested too deeply (the JSON parser allows
    1,024 levels, the JSON writer 255, graphql-core 200 — and each recursion costs), too many
    values, or a NUL character. One walk with a stack of its own: no recursion to exhaust."""
    stack: list[tuple[Any, int]] = [(variables or {}, 1)]
    values = 0
    nul = False
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_INPUT_VALUES:
            return too_complex(
                f"the variables hold more than {MAX_INPUT_VALUES:,} values (list items and "
                "object fields counted): send fewer at once, in several requests"
            )
        if isinstance(value, dict | list):
            if depth > MAX_INPUT_DEPTH:
                return too_complex(
                    f"the variables are nested more than {MAX_INPUT_DEPTH} levels deep (lists "
                    "and objects): no input of this API is that deep"
                )
            if isinstance(value, dict):
                nul = nul or any("\x00" in key for key in value)
                stack.extend((v, depth + 1) for v in value.values())
            else:
                stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and "\x00" in value:
            nul = True
    return _nul_error() if nul else None


def _nul_error() -> GraphQLError:
    return GraphQLError(
        "a string holds a NUL character (\\u0000), which no field accepts: remove it",
        extensions={"code": "BAD_USER_INPUT"},
    )


def _check_document(document: DocumentNode) -> GraphQLError | None:
    """Refuse documents whose validation would cost more than their size suggests: many
    operations, fragments or variables, or one field selected again and again beside itself.
    Linear in the document, with a stack of its own."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = sum(isinstance(d, FragmentDefinitionNode) for d in document.definitions)
    variables = sum(len(o.variable_definitions or ()) for o in operations)
    for count, limit, what in (
        (len(operations), MAX_OPERATIONS, "operations"),
        (fragments, MAX_FRAGMENTS, "fragments"),
        (variables, MAX_VARIABLE_DEFINITIONS, "variable definitions"),
    ):
        if count > limit:
            return too_complex(
                f"the document holds {count:,} {what}, over the limit of {limit}: send only "
                "the operation you run and the fragments it spreads"
            )
    duplicates = 0
    sets = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while sets:
        names: set[str] = set()
        merged = [sets.pop()]  # a selection set and the inline fragments in it: one level
        while merged:
            for selection in merged.pop().selections:
                if isinstance(selection, InlineFragmentNode):
                    merged.append(selection.selection_set)
                elif isinstance(selection, FieldNode):
                    name = (selection.alias or selection.name).value
                    if name in names:
                        duplicates += 1
                        if duplicates > MAX_DUPLICATES:
                            return too_complex(
                                f"the query selects {name!r} (or other fields) again beside "
                                f"itself more than {MAX_DUPLICATES} times: select each field "
                                "once",
                                selection,
                            )
                    names.add(name)
                    if selection.selection_set is not None:
                        sets.append(selection.selection_set)
    return None


def _holds_nul(document: DocumentNode) -> bool:
    """PostgreSQL text cannot hold NUL: refused here, where the error can say so, rather than
    deep in a driver (the variables are checked in ``check_variables``)."""
    strings = _Strings()
    visit(document, strings)
    return strings.found


class _Strings(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if "\x00" in node.value:
            self.found = True
            return BREAK
        return None


@dataclass
class Measure:
    """Walks the operations of a document with fragments expanded, counting fields, aliases,
    depth and cost; raises a ``GraphQLError`` at the first limit passed."""

    schema: GraphQLSchema
    document: DocumentNode
    variables: dict[str, Any]
    introspection: bool
    fields: int = 0
    aliases: int = 0
    cost: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        self.fragments = {
            d.name.value: d
            for d in self.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.values: dict[str, Any] = {}

    def walk(self, operation_name: str | None) -> None:
        for definition in self.document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            name = definition.name.value if definition.name else None
            if operation_name is not None and name != operation_name:
                continue
            self.values = self._variable_values(definition)
            root = self.schema.get_root_type(definition.operation)
            self.selections(definition.selection_set, root, 1, 1, frozenset(), None)

    def _variable_values(self, operation: OperationDefinitionNode) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for definition in operation.variable_definitions or ():
            if isinstance(definition.default_value, IntValueNode):
                values[definition.variable.name.value] = int(definition.default_value.value)
        values.update(self.variables)
        return values

    def selections(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        level: int,
        multiplier: int,
        fragments_seen: frozenset[str],
        page: int | None,
    ) -> None:
        """``page``: the ``first`` of the connection whose selection this is."""
        if selection_set is None:
            return
        for selection in selection_set.selections:
            self.steps += 1
            if self.steps > MAX_STEPS or len(fragments_seen) > MAX_DEPTH:
                raise too_complex(
                    "the query's fragments expand to too many selections: spread fewer "
                    "fragments, or split the query into several",
                    selection,
                )
            if isinstance(selection, FieldNode):
                self.field(selection, parent, level, multiplier, fragments_seen, page)
            elif isinstance(selection, InlineFragmentNode):
                kind = self._type(selection.type_condition) or parent
                self.selections(
                    selection.selection_set, kind, level, multiplier, fragments_seen, page
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in fragments_seen:
                    continue  # unknown or cyclic: the schema's validation reports it
                self.selections(
                    fragment.selection_set, self._type(fragment.type_condition), level,
                    multiplier, fragments_seen | {name}, page,
                )  # fmt: skip

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        level: int,
        multiplier: int,
        fragments_seen: frozenset[str],
        page: int | None,
    ) -> None:
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise too_complex(
                f"the query selects more than {MAX_FIELDS} fields (fragments counted where they "
                "are spread): split it into several queries",
                node,
            )
        if node.alias:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise too_complex(
                    f"the query has more than {MAX_ALIASES} aliases: split it into several "
                    "queries, or ask for a list instead of one field per item",
                    node,
                )
        name = node.name.value
        if name in INTROSPECTION_FIELDS:
            if not self.introspection:
                raise GraphQLError(
                    "introspection is off for the public here: log in (or send a token) to "
                    "explore the schema, or read it at /schema.graphql",
                    nodes=node,
                    extensions={"code": "FORBIDDEN"},
                )
            return  # answered from memory: its depth and cost do not count
        if name.startswith("__"):
            return  # __typename
        if level > MAX_DEPTH:
            raise too_complex(
                f"the query is nested more than {MAX_DEPTH} levels deep: start from a nearer "
                "object (by its code, or node(id:)) or split it into several queries",
                node,
            )
        if page is not None and name in ("edges", "nodes"):
            multiplier *= page
        self.cost += multiplier
        definition = _field(parent, name)
        if definition is None:
            self.selections(node.selection_set, None, level + 1, multiplier, fragments_seen, None)
            return
        kind = get_named_type(definition.type)
        child_page = None
        if "first" in definition.args and _has_field(kind, "edges"):
            child_page = self._first(node, definition.args["first"].default_value)
        elif isinstance(get_nullable_type(definition.type), GraphQLList) and page is None:
            multiplier *= LIST_FACTOR
        self.selections(node.selection_set, kind, level + 1, multiplier, fragments_seen, child_page)

    def _first(self, node: FieldNode, default: Any) -> int:
        value: Any = default
        for argument in node.arguments or ():
            if argument.name.value == "first":
                if isinstance(argument.value, IntValueNode):
                    value = int(argument.value.value)
                elif isinstance(argument.value, VariableNode):
                    value = self.values.get(argument.value.name.value)
        if not isinstance(value, int) or isinstance(value, bool):
            value = DEFAULT_PAGE
        return min(max(value, 0), MAX_PAGE)  # out of range: the resolver names the argument

    def _type(self, node: NamedTypeNode | None) -> GraphQLNamedType | None:
        return self.schema.get_type(node.name.value) if node else None


def _field(parent: GraphQLNamedType | None, name: str) -> Any:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None


def _has_field(kind: GraphQLNamedType, name: str) -> bool:
    return isinstance(kind, GraphQLObjectType) and name in kind.fields


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit:,} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused from ``Content-Length`` when it says too much and while
    reading when it grows past ``limit`` (a streamed body has no length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


class RateLimiter:
    """Token buckets in memory, one per key: ``burst`` requests at once, then ``rate`` per
    second. One per process: behind several workers each counts its own."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, when)

    def _tokens(self, key: str, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - then) * self.rate)

    def wait(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost``; 0 when it may now. Spends nothing."""
        missing = min(cost, self.burst) - self._tokens(key, self.clock())
        return max(0.0, missing / self.rate)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` of ``key``'s bucket and return 0, or return the seconds to wait."""
        now = self.clock()
        tokens = self._tokens(key, now)
        cost = min(cost, self.burst)
        if tokens < cost:
            return (cost - tokens) / self.rate
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._forget_full(now)
        self._buckets[key] = (tokens - cost, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        # A full bucket is the same as no bucket.
        self._buckets = {
            k: v for k, v in self._buckets.items() if self._tokens(k, now) < self.burst
        }


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` header: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
