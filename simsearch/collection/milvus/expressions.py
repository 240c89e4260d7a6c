"""Metadata filters as Milvus boolean expressions.

A filter becomes an expression over two JSON columns made from the flattened metadata at write time:
``meta_values`` (numbers and booleans as they are, strings hex-encoded) and ``meta_kinds`` (b, n, s, or o
for null and lists), keyed by the hex of the dotted field name. Hex makes every literal safe (milvus-lite's
parser takes no escapes and no templates) and keeps the order of strings (UTF-8 bytes sort as code points,
and so do their hex digits); a dotted key matches nested and dotted metadata alike, as Filter.matches does.
milvus-lite 2.5.1 has no ``not`` and no ``exists``: negations are pushed down to the conditions, where
``!=`` already means what Mongo's $ne means (a missing field or another type is "not equal"), and
presence is a test of the kind column. Checked against Filter.matches in tests/test_milvus.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from simsearch.collection.filters import And, Condition, Filter, Node, Not, Or, flatten, is_scalar, kind_of

Expr = str | bool  # True: every document; False: none
TRUE_EXPR: Expr = True
FALSE_EXPR: Expr = False
KINDS = ("b", "n", "o", "s")
_SYMBOL = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPPOSITE = {"$eq": "$ne", "$ne": "$eq", "$gt": "$lte", "$gte": "$lt", "$lt": "$gte", "$lte": "$gt"}


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def filter_columns(metadata: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``meta_values`` and ``meta_kinds`` of one document's metadata."""
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for name, value in flatten(metadata).items():
        key = _hex(name)
        if is_scalar(value):
            kinds[key] = kind_of(value)[0]
            values[key] = _hex(value) if isinstance(value, str) else value
        else:
            kinds[key] = "o"
    return values, kinds


def _tree(parts: list[str], op: str) -> str:
    # pairs in parentheses, a balanced tree: milvus-lite fails on a flat chain of more than a few dozen
    while len(parts) > 1:
        parts = [f"({a} {op} {b})" for a, b in zip(parts[::2], parts[1::2], strict=False)] + (
            [parts[-1]] if len(parts) % 2 else []
        )
    return parts[0]


def all_of(parts: Sequence[Expr]) -> Expr:
    if any(p is False for p in parts):
        return False
    kept = [str(p) for p in parts if p is not True]
    return _tree(kept, "and") if kept else True


def any_of(parts: Sequence[Expr]) -> Expr:
    if any(p is True for p in parts):
        return True
    kept = [str(p) for p in parts if p is not False]
    return _tree(kept, "or") if kept else False


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return f'"{_hex(value)}"'


def milvus_expression(flt: Filter | None) -> Expr:
    """``flt`` as a Milvus boolean expression over the filter columns (``True`` without a filter)."""
    return True if flt is None else _walk(flt.root, True)


def _walk(node: Node, positive: bool) -> Expr:
    if isinstance(node, And):
        return (all_of if positive else any_of)([_walk(p, positive) for p in node.parts])
    if isinstance(node, Or):
        return (any_of if positive else all_of)([_walk(p, positive) for p in node.parts])
    if isinstance(node, Not):
        return _walk(node.part, not positive)
    return _condition(node, positive)


def _condition(c: Condition, positive: bool) -> Expr:
    key = _hex(c.field)
    value, kind = f'meta_values["{key}"]', f'meta_kinds["{key}"]'
    if c.op == "$exists":
        return f"{kind} {'in' if c.value == positive else 'not in'} {json.dumps(list(KINDS))}"
    if c.op in ("$eq", "$ne"):
        return f"{value} {_SYMBOL[c.op if positive else _OPPOSITE[c.op]]} {_literal(c.value)}"
    if c.op in ("$in", "$nin"):
        # one list per type (milvus-lite refuses mixed lists; ints and floats compare as numbers)
        groups: dict[type, list[str]] = {}
        for v in c.value:
            groups.setdefault(type(v), []).append(_literal(v))
        lists = [f"[{', '.join(dict.fromkeys(items))}]" for items in groups.values()]
        if (c.op == "$in") == positive:
            return any_of([f"{value} in {items}" for items in lists])
        return all_of([f"{value} not in {items}" for items in lists])
    letter = kind_of(c.value)[0]  # an order: numbers with numbers, strings with strings
    if positive:
        return _order(value, kind, c.op, c.value)
    # not (same kind and x op v)  =  another kind (or none), or the same kind in the opposite order
    return any_of([f'{kind} != "{letter}"', _order(value, kind, _OPPOSITE[c.op], c.value)])


def _order(value: str, kind: str, op: str, operand: Any) -> Expr:
    if operand == "" and isinstance(operand, str):  # milvus-lite fails on `< ""`: the empty string is the least
        empty: dict[str, Expr] = {
            "$gt": f'{value} > ""',
            "$gte": f'{kind} == "s"',
            "$lt": False,
            "$lte": f'{value} == ""',
        }
        return empty[op]
    return f"{value} {_SYMBOL[op]} {_literal(operand)}"
