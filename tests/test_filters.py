"""Metadata filters: the syntax, the errors that name the part at fault, and the vectorised evaluation
over a build's columns against the per-document reference."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from simsearch.collection.filters import Filter, FilterError, parse_filter
from simsearch.collection.metadata import MetadataColumns


def test_implicit_equality_and_operators() -> None:
    f = Filter.parse({"lang": "en", "year": {"$gte": 2020, "$lt": 2023}})
    assert f.matches({"lang": "en", "year": 2021})
    assert not f.matches({"lang": "en", "year": 2023}) and not f.matches({"lang": "de", "year": 2021})
    assert not f.matches({"lang": "en"})  # a missing field never satisfies a comparison ...
    assert Filter.parse({"year": {"$ne": 2020}}).matches({})  # ... but is "not equal" to anything (Mongo)
    assert Filter.parse({"a.b": 1}).matches({"a": {"b": 1}})  # dots reach into nested objects
    assert not Filter.parse({"flag": 1}).matches({"flag": True})  # true is not 1
    assert Filter.parse({"tier": {"$in": ["gold", "silver"]}}).matches({"tier": "gold"})
    assert Filter.parse({"tier": {"$nin": ["gold"]}}).matches({"tier": "bronze"})
    assert Filter.parse({"x": {"$exists": False}}).matches({"y": 1})
    assert Filter.parse({"$or": [{"a": 1}, {"b": 2}]}).matches({"b": 2})
    assert Filter.parse({"$not": {"a": 1}}).matches({"a": 2})
    assert Filter.parse({"a": {"$not": {"$gt": 5}}}).matches({"a": 3})
    assert Filter.parse({"d": {"$gte": "2021-01-01"}}).matches({"d": "2022-06-30"})  # ISO dates as strings
    assert parse_filter(None) is None
    assert Filter.parse({"a": 1, "b": 2}) == Filter.parse({"b": 2, "a": 1})  # canonical: cacheable


@pytest.mark.parametrize(
    ("raw", "path", "problem"),
    [
        ({"year": {"$gte": {"x": 1}}}, "filter.year.$gte", "expected a string, number or boolean"),
        ({"year": {"$near": 3}}, "filter.year.$near", "unknown operator"),
        ({"$xor": []}, "filter.$xor", "unknown operator"),
        ({"lang": {"$in": "en"}}, "filter.lang.$in", "non-empty list"),
        ({"lang": {"$in": ["en", {"a": 1}]}}, "filter.lang.$in[1]", "expected a string"),
        ({"$and": {"a": 1}}, "filter.$and", "non-empty list"),
        ({"$or": [{"a": 1}, 5]}, "filter.$or[1]", "expected an object"),
        ({"x": {"$exists": 1}}, "filter.x.$exists", "true or false"),
        ({"x": {"$gt": True}}, "filter.x.$gt", "booleans have no order"),
        ({"x": [1, 2]}, "filter.x", "expected a string, number or boolean"),
        ({}, "filter", "empty filter"),
        ({"a..b": 1}, "filter.a..b", "field name"),
        ([{"a": 1}], "filter", "expected an object"),
    ],
)
def test_malformed_filters_name_the_part_at_fault(raw: object, path: str, problem: str) -> None:
    with pytest.raises(FilterError) as caught:
        Filter.parse(raw)
    assert caught.value.path == path and problem in caught.value.problem


def random_metadata(rng: random.Random, n: int) -> list[dict | None]:
    out: list[dict | None] = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(None)
            continue
        meta: dict = {}
        if rng.random() < 0.9:
            meta["year"] = rng.choice([2018, 2019, 2020, 2021, 2022, 2023.5, "2020", True])
        if rng.random() < 0.8:
            meta["lang"] = rng.choice(["en", "de", "fr", "zh", "", 3])
        if rng.random() < 0.5:
            meta["open"] = rng.choice([True, False, "yes"])
        if rng.random() < 0.5:
            meta["author"] = {"country": rng.choice(["uk", "us", "de"]), "h": rng.randint(0, 50)}
        if rng.random() < 0.1:
            meta["tags"] = ["a", "b"]  # stored, never matched by a comparison
        out.append(meta)
    return out


FILTERS = [
    {"year": 2020},
    {"year": {"$gte": 2020}},
    {"year": {"$lt": 2021, "$gt": 2018}},
    {"year": {"$ne": 2020}},
    {"year": {"$in": [2019, "2020", True]}},
    {"year": {"$nin": [2019, 2020]}},
    {"lang": {"$gte": "e"}},
    {"lang": {"$lte": "en"}},
    {"lang": {"$gt": "zz"}},
    {"lang": ""},
    {"open": True},
    {"open": {"$exists": False}},
    {"author.country": "uk", "author.h": {"$gte": 10}},
    {"$or": [{"lang": "zh"}, {"author.h": {"$lt": 5}}]},
    {"$not": {"year": {"$in": [2020, 2021]}}},
    {"lang": {"$not": {"$in": ["en", "de"]}}},
    {"$and": [{"year": {"$exists": True}}, {"$or": [{"open": False}, {"tags": {"$exists": True}}]}]},
    {"tags": "a"},
    {"missing": {"$ne": 1}},
]


def test_columns_agree_with_the_per_document_reference() -> None:
    metadata = random_metadata(random.Random(0), 3000)
    columns = MetadataColumns(metadata, len(metadata))
    for raw in FILTERS:
        f = Filter.parse(raw)
        expected = np.array([f.matches(m) for m in metadata])
        np.testing.assert_array_equal(columns.mask(f), expected, err_msg=json.dumps(raw))
        trivial = ({"lang": {"$gt": "zz"}}, {"tags": "a"}, {"missing": {"$ne": 1}})
        assert 0 < expected.sum() < len(metadata) or raw in trivial  # the rest select a real subset
