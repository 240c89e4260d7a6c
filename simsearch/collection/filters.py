"""Metadata filters in the syntax users already know (Mongo-style, as Chroma and Pinecone take them),
parsed once into a small tree that every backend evaluates its own way:

    {"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}, "$or": [{"open": true}, {"tier": "gold"}]}

- over the columns of an immutable build, vectorised (:mod:`simsearch.collection.metadata`);
- over one document's metadata, for the writes not yet compacted (:meth:`Filter.matches`);
- as a Milvus boolean expression (simsearch.collection.milvus, which also stores the columns it needs).

Fields are metadata keys; nested objects are reached with dots (``"author.country"``). Values are
scalars: strings, numbers, booleans. Operators: ``$eq`` (also ``{"f": value}``), ``$ne``, ``$gt``,
``$gte``, ``$lt``, ``$lte`` (numbers with numbers, strings with strings), ``$in``, ``$nin``,
``$exists``; and ``$and``, ``$or`` (lists of filters) and ``$not`` (one filter). Several keys in one
object are and-ed. A comparison with a value of another type never matches (as in Mongo), but a
malformed filter (an unknown operator, ``$in`` without a list, a comparison with an object) is a
:class:`FilterError` that names the part at fault, e.g. ``filter.year.$gte``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
SET_OPERATORS = ("$in", "$nin")
MAX_DEPTH = 16
MAX_SET = 1024


class FilterError(ValueError):
    """A malformed filter; ``path`` names the part at fault (``filter.year.$gte``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.problem = message


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # one of COMPARISONS, SET_OPERATORS or "$exists"
    value: Any  # a scalar, a tuple of scalars ($in, $nin), or a bool ($exists)


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Condition | And | Or | Not


def is_scalar(value: Any) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, str | int | float | bool)


def kind_of(value: Any) -> str:
    """The comparison class of a scalar: booleans are not numbers (``true`` never equals ``1``)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _parse(raw: Any, path: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise FilterError(path, f"nested more than {MAX_DEPTH} levels deep")
    if not isinstance(raw, dict):
        raise FilterError(path, f"expected an object, got {type(raw).__name__}")
    if not raw:
        raise FilterError(path, "an empty filter matches everything: leave it out instead")
    parts: list[Node] = []
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(where, "expected a non-empty list of filters")
            children = tuple(_parse(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
            parts.append(And(children) if key == "$and" else Or(children))
        elif key == "$not":
            parts.append(Not(_parse(value, where, depth + 1)))
        elif key.startswith("$"):
            raise FilterError(where, "unknown operator; use $and, $or or $not here, or a metadata field name")
        else:
            parts.extend(_field(key, value, where))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _field(name: str, value: Any, path: str) -> list[Node]:
    if not name or len(name) > 256 or any(not p for p in name.split(".")):
        raise FilterError(path, "a field name is a non-empty metadata key (dots reach into nested objects)")
    if not isinstance(value, dict):
        if not is_scalar(value):
            raise FilterError(path, "expected a string, number or boolean, or an object of operators")
        return [Condition(name, "$eq", value)]
    if not value:
        raise FilterError(path, 'expected at least one operator, e.g. {"$eq": ...}')
    conditions: list[Node] = []
    for op, operand in value.items():
        where = f"{path}.{op}"
        if op in COMPARISONS:
            if not is_scalar(operand):
                raise FilterError(where, "expected a string, number or boolean")
            if op not in ("$eq", "$ne") and isinstance(operand, bool):
                raise FilterError(where, "booleans have no order: use $eq or $ne")
            conditions.append(Condition(name, op, operand))
        elif op in SET_OPERATORS:
            if not isinstance(operand, list) or not operand:
                raise FilterError(where, "expected a non-empty list of strings, numbers or booleans")
            if len(operand) > MAX_SET:
                raise FilterError(where, f"{len(operand)} values; at most {MAX_SET}")
            bad = next((i for i, v in enumerate(operand) if not is_scalar(v)), None)
            if bad is not None:
                raise FilterError(f"{where}[{bad}]", "expected a string, number or boolean")
            conditions.append(Condition(name, op, tuple(operand)))
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(where, "expected true or false")
            conditions.append(Condition(name, op, operand))
        elif op == "$not":
            inner = _field(name, operand, where)
            conditions.append(Not(inner[0] if len(inner) == 1 else And(tuple(inner))))
        else:
            raise FilterError(
                where, f"unknown operator; known: {', '.join((*COMPARISONS, *SET_OPERATORS))}, $exists, $not"
            )
    return conditions


def flatten(metadata: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested metadata as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (non-scalar leaves are kept
    as they are and never match a comparison)."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def compare(have: Any, op: str, want: Any) -> bool:
    """One condition on one value that exists (missing fields are handled by the caller)."""
    if op == "$in":
        return any(compare(have, "$eq", w) for w in want)
    if op == "$nin":
        return not any(compare(have, "$eq", w) for w in want)
    if not is_scalar(have) or kind_of(have) != kind_of(want):
        return op == "$ne"
    if op == "$eq":
        return bool(have == want)
    if op == "$ne":
        return bool(have != want)
    if op == "$gt":
        return bool(have > want)
    if op == "$gte":
        return bool(have >= want)
    if op == "$lt":
        return bool(have < want)
    return bool(have <= want)


@dataclass(frozen=True)
class Filter:
    """A parsed filter. Build with :meth:`parse`; equal filters compare and hash equal (cacheable)."""

    root: Node = field(compare=False)
    text: str = ""  # canonical JSON of the request's filter: equality, hashing and the cache key

    @classmethod
    def parse(cls, raw: Any, path: str = "filter") -> Filter:
        return cls(_parse(raw, path, 0), json.dumps(raw, sort_keys=True, ensure_ascii=False))

    def matches(self, metadata: dict[str, Any] | None) -> bool:
        """Whether one document's metadata passes (the reference every backend is tested against)."""
        flat = flatten(metadata)

        def walk(node: Node) -> bool:
            if isinstance(node, And):
                return all(walk(p) for p in node.parts)
            if isinstance(node, Or):
                return any(walk(p) for p in node.parts)
            if isinstance(node, Not):
                return not walk(node.part)
            if node.op == "$exists":
                return (node.field in flat) == node.value
            if node.field not in flat:
                return node.op in ("$ne", "$nin")  # Mongo: a missing field is "not equal" to anything
            return compare(flat[node.field], node.op, node.value)

        return walk(self.root)


def parse_filter(raw: Any) -> Filter | None:
    """``None`` for no filter; a :class:`Filter`, or :class:`FilterError` naming the part at fault."""
    return None if raw is None else Filter.parse(raw)
