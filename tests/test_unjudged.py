"""Choosing the fusion without judgments: the inverse-cloze queries never leave their text in their answer;
a corpus where words cannot match makes the choice dense only, one where the vectors are noise makes it
lexical only; the choice repeats for a seed."""

from __future__ import annotations

import hashlib
import random
import re

import numpy as np
import pytest

from simsearch.data.corpus import Document
from simsearch.evaluation.fusion_fit import candidates
from simsearch.evaluation.unjudged import choose_fusion_unjudged, choose_over_default, cloze_queries, sentences
from simsearch.search.fusion import DEFAULT_FUSION
from simsearch.text.passages import PassageSplitter

DIM = 32
FILLER = [f"w{i}" for i in range(40)]


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return v / np.linalg.norm(v)


def topic_encoder(texts: list[str]) -> np.ndarray:
    """Reads only the topic markers ``t<topic><variant>``: every variant of a topic is the same meaning."""
    out = []
    for t in texts:
        topics = [int(m) for m in re.findall(r"\bt(\d+)[a-z]\d\b", t)]
        v = sum((unit(x) for x in topics), np.zeros(DIM)) if topics else unit(0)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, dtype=np.float32)


def noise_encoder(texts: list[str]) -> np.ndarray:
    return np.stack([unit(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)) for t in texts]).astype(np.float32)


def lexical_useless(n: int = 150, prefix: str = "L") -> list[Document]:
    """Every word names the document's topic by another variant: no word is said twice, so BM25 has nothing
    to match, while the meaning (what the stand-in encoder reads) is the document's topic throughout."""
    docs = []
    for i in range(n):
        parts = [" ".join(f"t{i}{variant}{j}" for j in range(6)) + "." for variant in "abcdef"]
        docs.append(Document(id=f"{prefix}{i}", text=" ".join(parts)))
    return docs


def dense_useless(n: int = 150, prefix: str = "D") -> list[Document]:
    """Each document repeats its own rare words in every sentence; the vectors will be noise."""
    rng = random.Random(1)
    docs = []
    for i in range(n):
        own = [f"rare{i}x{j}" for j in range(4)]
        parts = [f"{' '.join(rng.sample(own, 3))} {' '.join(rng.sample(FILLER, 5))}." for _ in range(6)]
        docs.append(Document(id=f"{prefix}{i}", text=" ".join(parts)))
    return docs


def test_a_cloze_query_never_appears_in_its_answer() -> None:
    docs = lexical_useless() + dense_useless()
    made = cloze_queries(docs, 200, seed=3)
    assert len(made) == 200
    for q in made:
        assert q.text not in q.answer.text and q.text.strip()
        source = next(d for d in docs if d.id == q.answer.id)
        assert q.text in source.text and len(sentences(q.answer.text)) == len(sentences(source.text)) - 1
    assert cloze_queries(docs, 200, seed=3) == made  # the same for a seed
    assert cloze_queries([Document(id="x", text="One sentence only.")], 5) == []


@pytest.mark.parametrize(
    ("docs", "encode", "expected"),
    [(lexical_useless(), topic_encoder, "dense"), (dense_useless(), noise_encoder, "lexical")],
    ids=["words-cannot-match", "vectors-are-noise"],
)
def test_the_choice_follows_the_list_that_works(docs: list[Document], encode, expected: str) -> None:
    info = choose_fusion_unjudged(docs, encode, PassageSplitter(None, None), queries=60, pool=150, seed=0)
    assert info is not None
    if expected == "dense":
        assert info.method == "dense" or (info.method == "convex" and info.alpha == 1.0), info
    else:
        assert info.method == "convex" and info.alpha == 0.0, info
    assert info.chosen_on.startswith("self-supervised: 60 inverse-cloze queries")
    again = choose_fusion_unjudged(docs, encode, PassageSplitter(None, None), queries=60, pool=150, seed=0)
    assert again == info  # deterministic for a seed


class Oracle:
    """A cross-encoder that knows each cloze answer: scores 1 for a document sharing the query's topic."""

    def __init__(self, topics: dict[str, int]) -> None:
        self.topics = topics

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        def topic(text: str) -> set[int]:
            return {int(m) for m in re.findall(r"\bt(\d+)[a-z]\d\b", text)}

        return np.asarray([float(bool(topic(q) & topic(d))) for q, d in pairs], dtype=np.float32)


def test_the_rerank_weight_follows_what_the_cross_encoder_is_worth() -> None:
    """Without judgments: a cross-encoder that finds the answer gets the full weight; one that is noise
    gets none (the first stage's order is kept)."""
    from simsearch.evaluation.unjudged import choose_rerank_weight_unjudged

    docs = lexical_useless()
    splitter = PassageSplitter(None, None)
    noisy_first = noise_encoder  # a first stage that cannot find the answers: only a good re-ranker helps
    good = choose_rerank_weight_unjudged(docs, noisy_first, Oracle({}), splitter, queries=40, pool=150, k_r=150)
    assert good is not None and good["validation"]["1.0"] == 100.0 and good["validation"]["0.0"] < 10, good
    assert good["weight"] >= 0.5 and good["validation"][f"{good['weight']:.1f}"] == 100.0  # the least that wins

    def noise(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.random.default_rng(len(pairs)).normal(size=len(pairs)).astype(np.float32)

    bad = choose_rerank_weight_unjudged(docs, topic_encoder, noise, splitter, queries=40, pool=150, k_r=20)
    assert bad is not None and bad["weight"] == 0.0, bad


def test_the_default_is_kept_unless_beaten_beyond_noise() -> None:
    """The one-standard-error rule: a candidate whose gain over the default is within the per-query noise does
    not replace it; one that wins on nearly every query does."""
    fusions = candidates()
    default = next(n for n, f in fusions.items() if f == DEFAULT_FUSION)
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 200)
    noisy = {n: base.copy() for n in fusions}
    noisy["dense"] = noisy["convex-0.0"] = base - 0.05  # no single list is as good as the default
    noisy["convex-0.2"] = base + rng.normal(0.01, 0.2, 200)  # ahead by 0.01, one standard error is 0.014
    assert max(noisy, key=lambda n: noisy[n].mean()) != default  # a rival is ahead on the mean ...
    assert choose_over_default(noisy, fusions) == default  # ... but not beyond its noise
    clear = {n: base.copy() for n in fusions}
    clear["convex-0.0"] = np.clip(base + 0.1, 0, 1)  # lexical better on every query
    assert choose_over_default(clear, fusions) == "convex-0.0"
    ties = {n: base.copy() for n in fusions}
    assert choose_over_default(ties, fusions) == "dense"  # a single list as good as the default: one retrieval
    ties["dense"] = base - 0.01
    assert choose_over_default(ties, fusions) == "convex-0.0"
    ties["convex-0.0"] = base - 0.01
    assert choose_over_default(ties, fusions) == default


def test_the_per_query_weight_leans_on_the_list_whose_top_stands_out() -> None:
    """simsearch.search.fusion.query_alpha: with β = 0 it is the fixed convex combination; with β > 0 a query
    whose lexical list is flat leans on dense and one whose lexical top stands far above the rest leans on
    lexical; the choice keeps the fixed weight unless the self-supervised queries say otherwise by more than
    noise."""
    from simsearch.evaluation.fusion_fit import choose_per_query, gap_medians
    from simsearch.search.fusion import Fusion, convex, fuse, query_alpha

    dense = [(i, 0.8 - 0.01 * i) for i in range(20)]
    flat = [(100 + i, 10.0 - 0.01 * i) for i in range(20)]
    peaked = [(100 + i, 30.0 if i == 0 else 5.0 - 0.01 * i) for i in range(20)]
    md, ml = gap_medians([(dense, flat), (dense, peaked)])
    fixed = Fusion("convex", 0.6, dense_gap=md, lexical_gap=ml)
    assert query_alpha(dense, flat, fixed) == 0.6 and fuse(dense, peaked, fixed) == convex(dense, peaked, 0.6)
    moving = Fusion("convex", 0.6, beta=1.0, dense_gap=md, lexical_gap=ml)
    assert query_alpha(dense, flat, moving) > 0.6 > query_alpha(dense, peaked, moving)
    # self-supervised lists (the answer of query i is member i) that no fixed weight gets right: either
    # lexical is flat and its top documents are dense's runners-up too (only α near 1 puts the answer first)
    # or lexical's top stands out and is the answer, which dense misses (only α under 0.5 does)
    cloze = []
    for i in range(40):
        wrong = [(2000 + j, 9.0 - 0.001 * j) for j in range(30)]
        if i % 2:
            d = [(1000 + j, 0.9 - 0.001 * j) for j in range(30)]
            lex = [(i, 40.0)] + [(2000 + j, 5.0 - 0.01 * j) for j in range(30)]
        else:
            d = [(i, 0.95)] + [(2000 + j, 0.9 - 0.001 * j) for j in range(30)]
            lex = wrong
        cloze.append((d, lex))
    rule, how = choose_per_query(cloze, 0.8)
    assert rule is not None and how["kept"] and rule.beta > 0 and how["best"]["ndcg"] > how["fixed"]
    assert rule.method == "convex" and (rule.dense_gap, rule.lexical_gap) == gap_medians(cloze)
    rule, how = choose_per_query(cloze[::2], 0.8)  # nothing to gain: no per-query weights
    assert rule is None and not how["kept"]


def test_a_collection_records_per_query_weights_and_searches_with_them() -> None:
    """The manifest's fusion carries β and the collection's median gaps; the view's fusion reads them back."""
    from simsearch.index.manifest import FusionInfo
    from simsearch.search.fusion import fusion_from, query_alpha

    info = FusionInfo(method="convex", alpha=0.7, beta=2.0, dense_gap=0.15, lexical_gap=0.5, chosen_on="test")
    fusion = fusion_from(FusionInfo.model_validate(info.model_dump()))
    assert (fusion.alpha, fusion.beta, fusion.dense_gap, fusion.lexical_gap) == (0.7, 2.0, 0.15, 0.5)
    dense = [(i, 0.9 - 0.03 * i) for i in range(20)]  # a dense gap of 0.27, above the median
    flat = [(100 + i, 10.0 - 0.01 * i) for i in range(20)]  # a lexical gap of 0.009, far below it
    assert query_alpha(dense, flat, fusion) > 0.95
    assert fusion_from(FusionInfo(method="convex", alpha=0.7, chosen_on="x")).beta == 0.0  # older manifests


def test_the_rerank_weight_is_measured_on_what_re_ranking_reads() -> None:
    """In a collection split into passages the cross-encoder reads each candidate's best passage after its
    title, never the whole document cut at its window: the self-supervised choice scores the same texts."""
    from transformers import AutoTokenizer

    from simsearch.evaluation.unjudged import choose_rerank_weight_unjudged
    from simsearch.models.files import default_bi_model
    from simsearch.text.passages import passage_input

    splitter = PassageSplitter(AutoTokenizer.from_pretrained(default_bi_model()), 24, 0)
    docs = [Document(id=d.id, title=f"Title {d.id}", text=d.text) for d in lexical_useless(60)]
    readable: set[str] = set()
    for d in docs:  # a cloze query's answer is its document less one sentence: its passages are its own
        readable |= {passage_input(d, s, e) for s, e in splitter.spans(d)}
    seen: list[str] = []

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        seen.extend(t for _, t in pairs)
        return np.zeros(len(pairs), dtype=np.float32)

    found = choose_rerank_weight_unjudged(docs, topic_encoder, score, splitter, queries=30, pool=60, k_r=10)
    assert found is not None and len(seen) == 10 * found["queries"]
    others = [t for t in seen if t in readable]  # the distractors, read whole as written
    assert len(others) > len(seen) // 2 and all(len(splitter.spans(Document(id="x", text=t))) <= 2 for t in seen)
    assert not any(t == d.content() for t in seen for d in docs if len(splitter.spans(d)) > 1)
