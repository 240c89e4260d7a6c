"""The lexical index and fusion: BM25 scores against an independent computation, query text that is
data and never syntax, the fusion arithmetic, and the measured choice of fusion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from simsearch.lexical import LexicalIndex, build_lexical
from simsearch.search.fusion import Fusion, convex, fuse, rrf

TOY = [
    "zebra okapi zebra",
    "okapi quagga",
    "zebra quagga quagga quagga",
    "lion tiger",
    "zebra",
]


def bm25(query: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Lucene's BM25, written out from the formula (idf = ln(1 + (N - n + 0.5) / (n + 0.5)))."""
    n_docs = len(docs)
    avgdl = sum(len(d) for d in docs) / n_docs
    out = []
    for d in docs:
        score = 0.0
        for term in set(query):
            n = sum(term in other for other in docs)
            tf = d.count(term)
            if not tf:
                continue
            idf = math.log(1 + (n_docs - n + 0.5) / (n + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(score)
    return out


@pytest.fixture
def toy(tmp_path: Path) -> LexicalIndex:
    build_lexical(tmp_path / "lex", enumerate(TOY))
    index = LexicalIndex.open_writable(tmp_path / "lex", tmp_path / "work")
    yield index
    index.close()


@pytest.mark.parametrize("query", ["zebra", "quagga okapi", "zebra zebra okapi lion"])
def test_bm25_scores_match_the_formula(toy: LexicalIndex, query: str) -> None:
    expected = bm25(query.split(), [d.split() for d in TOY])
    got = dict(toy.searcher().search(query, 10))
    for key, score in enumerate(expected):
        if score > 0:
            assert got[key] == pytest.approx(score, rel=1e-4), (key, got)
        else:
            assert key not in got
    ranked = [k for k, _ in toy.searcher().search(query, 10)]
    assert ranked == sorted(got, key=lambda k: -got[k])


def test_writes_change_scores_with_collection_wide_statistics(toy: LexicalIndex) -> None:
    """A new document changes every document's IDF, as in one Lucene index (one shared view of the terms);
    like Lucene, the statistics still count a deleted document until its segment is merged away."""
    before = toy.searcher()
    after = toy.apply([(5, "okapi okapi")], [3])
    docs = [d.split() for d in TOY] + [["okapi", "okapi"]]
    expected = {k: s for k, s in enumerate(bm25(["okapi"], docs)) if k != 3}
    got = dict(after.search("okapi", 10))
    assert set(got) == {k for k, s in expected.items() if s > 0}
    for key, score in got.items():
        assert score == pytest.approx(expected[key], rel=1e-4)
    assert 5 not in dict(before.search("okapi", 10))  # the old view is unchanged
    assert after.search("lion", 10) == []  # deleted


def test_cached_keys_give_the_same_answers_and_follow_new_views(toy: LexicalIndex, monkeypatch) -> None:
    """Keys read once per searcher are cached: a repeated query answers the same, the cache stays within
    its bound, and a new view after writes (new segments, new addresses) reads its own keys."""
    from simsearch.lexical import tantivy_index

    monkeypatch.setattr(tantivy_index, "KEY_CACHE_MAX", 3)
    view = toy.searcher()
    first = view.search("zebra okapi quagga lion", 10)
    assert len(first) > 3 and view.search("zebra okapi quagga lion", 10) == first
    assert len(view._keys) == 3  # bounded; the rest read from the documents each time
    after = toy.apply([(7, "zebra zebra zebra"), (0, "lion only now")], [0])  # 0 replaced
    assert after is not view and len(after._keys) == 0
    got = dict(after.search("zebra", 10))
    assert 7 in got and 0 not in got and dict(after.search("lion", 10)).get(0)
    assert view.search("zebra okapi quagga lion", 10) == first  # the old view is unchanged


HOSTILE = [
    '"unbalanced quote',
    "zebra*",
    "NEAR(zebra okapi)",
    "zebra OR okapi",
    "-zebra",
    "(((",
    ")",
    "the and of",
    "!!! ??? ...",
    "zebra AND NOT okapi",
    "field:zebra",
    "zebra~2",
    "^10",
    "斑马 シマウマ Зебра زرافة",
    "\\",
    "' OR 1=1 --",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_query_text_is_data_never_syntax(toy: LexicalIndex, query: str) -> None:
    found = toy.searcher().search(query, 10)
    assert isinstance(found, list)
    words = {w for w in toy.searcher().terms(query)}
    if "zebra" in words:
        assert {k for k, _ in found} >= {0, 2, 4}
    if not words:
        assert found == []


def test_rrf_arithmetic() -> None:
    a = [(1, 9.0), (2, 8.0), (3, 7.0)]
    b = [(3, 0.9), (4, 0.8)]
    fused = dict(rrf([a, b], k=60))
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1] == pytest.approx(1 / 61) and fused[4] == pytest.approx(1 / 62)
    assert [k for k, _ in rrf([a, b], k=60)] == [3, 1, 2, 4]


def test_convex_arithmetic() -> None:
    dense = [(1, 0.9), (2, 0.5), (3, -0.9)]  # (s + 1) / (0.9 + 1): 1, 1.5 / 1.9, 0.1 / 1.9
    lexical = [(3, 20.0), (4, 10.0)]  # s / 20: 1, 0.5
    fused = dict(convex(dense, lexical, alpha=0.25))
    assert fused[1] == pytest.approx(0.25)
    assert fused[2] == pytest.approx(0.25 * 1.5 / 1.9)
    assert fused[3] == pytest.approx(0.25 * 0.1 / 1.9 + 0.75)
    assert fused[4] == pytest.approx(0.75 * 0.5)
    assert [k for k, _ in fuse(dense, lexical, Fusion("convex", alpha=1.0))][:3] == [1, 2, 3]
    assert fuse(dense, lexical, Fusion("dense")) == dense


def test_vectorised_fusions_equal_the_plain_definitions_exactly() -> None:
    """The numpy fusions give the same scores, bit for bit, and the same order (score, then key) as the
    textbook dictionary versions, over lists with overlaps, ties, empty lists and constant scores."""
    import random

    def plain_rrf(lists, k=60):
        scores: dict[int, float] = {}
        for ranked in lists:
            for rank, (key, _) in enumerate(ranked, start=1):
                scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
        return sorted(scores.items(), key=lambda p: (-p[1], p[0]))

    def plain_convex(dense, lexical, alpha):
        def norm(ranked, low):
            if not ranked:
                return {}
            span = max(s for _, s in ranked) - low
            return {key: (s - low) / span if span > 0 else 1.0 for key, s in ranked}

        d, lex = norm(dense, -1.0), norm(lexical, 0.0)
        scores = {key: alpha * d.get(key, 0.0) + (1 - alpha) * lex.get(key, 0.0) for key in set(d) | set(lex)}
        return sorted(scores.items(), key=lambda p: (-p[1], p[0]))

    rng = random.Random(0)
    for trial in range(200):
        pool = rng.sample(range(5000), 300)
        dense_keys = rng.sample(pool, rng.randint(0, 200))
        lexical_keys = rng.sample(pool, rng.randint(0, 200))
        quantum = 0.25 if trial % 3 == 0 else 1e-9  # coarse scores: many ties
        dense = sorted(((k, round(rng.uniform(-1, 1) / quantum) * quantum) for k in dense_keys), key=lambda p: -p[1])
        lexical = sorted(
            ((k, round(rng.uniform(0, 30) / quantum) * quantum) for k in lexical_keys), key=lambda p: -p[1]
        )
        if trial % 7 == 0:
            lexical = [(k, 0.0) for k, _ in lexical]  # constant scores: a zero span
        alpha = rng.choice([0.0, 0.3, 0.8, 1.0])
        assert convex(dense, lexical, alpha) == plain_convex(dense, lexical, alpha)
        assert rrf([dense, lexical]) == plain_rrf([dense, lexical])


def test_fusion_choice_picks_dense_only_where_lexical_matching_misleads(tmp_path: Path) -> None:
    """A collection where each query's words appear only in wrong documents while the dense vectors
    point at the right one: the measured choice is dense only."""
    from simsearch.collection.embedded import EmbeddedCollection
    from simsearch.evaluation.fusion_fit import fit_fusion
    from simsearch.index.build import build_index
    from simsearch.search import DirectModels
    from tests.conftest import write_jsonl

    n = 40
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(n, 16))
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    vectors = {f"body of item {i} word{(i + 1) % n}": basis[i] for i in range(n)}  # doc i holds query i+1's word
    vectors.update({f"word{i}": basis[i] + 0.05 * rng.normal(size=16) for i in range(n)})  # query i: near doc i

    class TableEncoder:
        path, sha256, dim, max_seq_length, whitening = "table", "table-v1", 16, 32, None

        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            out = np.stack([vectors[t] for t in texts]).astype(np.float32)
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    docs = [{"_id": f"d{i}", "text": text} for i, text in enumerate(list(vectors)[:n])]
    build_index(write_jsonl(tmp_path / "c.jsonl", docs), TableEncoder(), tmp_path / "ix", "t", progress=False)  # type: ignore[arg-type]
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "queries.jsonl", [{"_id": f"q{i}", "text": f"word{i}"} for i in range(n)])
    (data / "qrels" / "train.tsv").write_text("q\td\ts\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n)))
    collection = EmbeddedCollection.open(tmp_path / "ix" / "t")
    info = fit_fusion(collection.view(), DirectModels(TableEncoder()), data, split="train", progress=False)
    collection.close()
    assert info.method == "dense" and info.validation["dense"] == 100.0
    assert info.validation["convex-0.0"] < 20 and info.validation["rrf"] < 100


def test_a_build_from_a_judged_corpus_measures_its_fusion_in_one_build(
    tmp_path: Path, tiny_model: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With enough judged queries the fusion is measured in the build before it is published, and it says
    so first; with too few (3 once chose "dense only") the build keeps the default and says why. Either way
    one build is published, so the previous corpus's builds are not pushed out by a second one."""
    from simsearch.index.layout import builds
    from simsearch.index.manifest import Manifest
    from tests.conftest import DOCS, write_jsonl
    from training.build_index import main as build

    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "corpus.jsonl", DOCS)
    words = ["coffee beans", "rain", "cats", "dogs", "python code", "tea leaves", "football", "stock market"]
    queries = [{"_id": f"q{i}", "text": f"{words[i % 8]} {i}"} for i in range(24)]
    write_jsonl(data / "queries.jsonl", queries)
    few = "q\td\ts\n" + "".join(f"q{i}\td{i % 8 + 1}\t1\n" for i in range(3))
    (data / "qrels" / "train.tsv").write_text(few)
    args = ["--corpus", str(data), "--name", "j", "--index-dir", str(tmp_path / "ix"), "--model", tiny_model]
    with caplog.at_level("WARNING"):
        assert build([*args, "--no-progress"]) == 0
    assert Manifest.read((tmp_path / "ix" / "j").resolve()).fusion is None  # the stated default
    assert "judges 3 queries, too few" in caplog.text and len(builds(tmp_path / "ix", "j")) == 1
    (data / "qrels" / "train.tsv").write_text(few + "".join(f"q{i}\td{i % 8 + 1}\t1\n" for i in range(3, 24)))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert build([*args, "--no-progress"]) == 0
    fusion = Manifest.read((tmp_path / "ix" / "j").resolve()).fusion
    assert fusion is not None and fusion.chosen_on.startswith("beir:train (24 queries")
    assert caplog.text.index("measuring hybrid search's fusion on the 24") < caplog.text.index("hybrid fusion:")
    assert len(builds(tmp_path / "ix", "j")) == 2  # one build per run
    assert set(fusion.validation) >= {"dense", "rrf", "convex-0.5"}
