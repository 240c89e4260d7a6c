"""Choosing hybrid search's fusion for a collection nobody has judged, from the collection itself.

Self-supervised queries (the inverse cloze task of Lee et al., 2019): a span is drawn from a document (a
whole sentence, or 4 to 12 of its words), and that document, with the sentence holding the span removed,
is the query's one relevant answer. The answer never contains the query's words in the order the query has
them, so matching it takes what matching a real query takes: the document's other words (lexical) and its
meaning (dense).

The candidates (simsearch.evaluation.fusion_fit: dense only, RRF, the convex combination at α = 0 ... 1, α = 0
being lexical only) are scored on a pool: the answers and a random sample of the collection's other documents,
each encoded with the collection's model and its passage splitting, and indexed for BM25 with the collection's
analyser. The default fusion (simsearch.search.fusion.DEFAULT_FUSION) is kept unless another candidate beats
it by more than one standard error of the per-query difference (the "one-standard-error rule"; a single list
that scores at least what the default scores is taken instead, being one retrieval): the self-supervised
queries are not the users' queries, and on SciFact the best of them picked an α whose gain over the default
was within that noise and lost 3 points on the real queries (bench/results/fusion_unjudged.json). A collection
where one list is far worse (long documents cut at the model's limit) still moves, because there the
difference is many standard errors. The pool keeps the fit cheap (about a minute for a few hundred queries on
2 cores) and needs nothing from the store but documents.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.data.corpus import Document
from simsearch.evaluation.fusion_fit import candidates, choose_per_query, fixed_alpha_of
from simsearch.evaluation.metrics import evaluate_run, ndcg_at_k
from simsearch.index.manifest import FusionInfo
from simsearch.lexical import LexicalIndex, build_lexical
from simsearch.search.fusion import DEFAULT_FUSION, Fusion, fuse
from simsearch.text.passages import PassageSplitter, passage_input

log = logging.getLogger(__name__)

# sentence ends of Latin and CJK scripts; a rough cut is enough to draw query spans from (a span is checked to
# be absent from its answer afterwards), so no sentence model is loaded for it
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
MIN_WORDS = 5


@dataclass(frozen=True)
class ClozeQuery:
    text: str
    answer: Document  # the source document without the sentence that held ``text``


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def cloze_queries(docs: Sequence[Document], n: int, seed: int = 0) -> list[ClozeQuery]:
    """Up to ``n`` queries, at most one per document, from documents of at least three sentences."""
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    out: list[ClozeQuery] = []
    for i in order:
        doc = docs[i]
        parts = sentences(doc.text)
        usable = [j for j, s in enumerate(parts) if len(s.split()) >= MIN_WORDS or (len(s) >= 12 and " " not in s)]
        if len(parts) < 3 or not usable:
            continue
        j = rng.choice(usable)
        sentence = parts[j]
        words = sentence.split()
        if len(words) >= MIN_WORDS and rng.random() < 0.5:  # a span of a few words, not the whole sentence
            size = rng.randint(4, min(12, len(words)))
            start = rng.randint(0, len(words) - size)
            query = " ".join(words[start : start + size])
        elif " " not in sentence and len(sentence) > 12:  # a script without spaces: a run of characters
            size = rng.randint(6, min(24, len(sentence)))
            start = rng.randint(0, len(sentence) - size)
            query = sentence[start : start + size]
        else:
            query = sentence
        rest = " ".join(parts[:j] + parts[j + 1 :])
        if query in rest or not rest.strip():  # the span is said again elsewhere: no longer a cloze
            continue
        out.append(ClozeQuery(query, Document(id=doc.id, text=rest, title=doc.title, metadata=doc.metadata)))
        if len(out) == n:
            break
    return out


class Pool:
    """The answers and distractors, encoded and indexed the collection's way, searched exactly."""

    def __init__(
        self,
        docs: Sequence[Document],
        encode: Callable[[list[str]], np.ndarray],
        splitter: PassageSplitter,
        document_prefix: str,
        folder: Path,
        analyser_name: str = "english",
    ) -> None:
        self.docs = list(docs)
        passages = splitter.split(self.docs, document_prefix)
        self.spans = passages.spans
        self.vectors = encode(passages.inputs)
        counts = np.asarray(passages.counts)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        build_lexical(folder, ((i, d.content()) for i, d in enumerate(self.docs)), analyser_name)
        self._lexical = LexicalIndex(folder, analyser_name=analyser_name)
        self.searcher = self._lexical.searcher()

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        best = np.maximum.reduceat(self.vectors @ vector, self.starts)  # each document by its best passage
        order = np.argsort(-best, kind="stable")[:k]
        return [(int(i), float(best[i])) for i in order]

    def lexical(self, text: str, k: int) -> list[tuple[int, float]]:
        return self.searcher.search(text, k)

    def reads(self, member: int, vector: np.ndarray) -> str:
        """What a cross-encoder reads of a member for a query: its best passage by the query vector, after the
        title (the collection's candidate_texts)."""
        spans = self.spans[member]
        first = int(self.starts[member])
        best = int(np.argmax(self.vectors[first : first + len(spans)] @ vector)) if len(spans) > 1 else 0
        return passage_input(self.docs[member], *spans[best])

    def close(self) -> None:
        self._lexical.close()


@dataclass
class Searched:
    """Self-supervised queries searched over their pool: query ``i``'s answer is pool member ``i``."""

    queries: list[ClozeQuery]
    members: list[Document]
    lists: list[tuple[list[tuple[int, float]], list[tuple[int, float]]]]  # each query's dense and lexical top
    pool: Pool  # its passages and vectors stay readable after its lexical index is closed
    vectors: np.ndarray  # the queries' vectors

    def reads(self, query: int, member: int) -> str:
        """What a cross-encoder reads of a member for a query: its best passage for it, after the title."""
        return self.pool.reads(member, self.vectors[query])


def searched_pool(
    docs: Sequence[Document],
    encode: Callable[[list[str]], np.ndarray],
    splitter: PassageSplitter,
    queries: int,
    pool: int,
    seed: int,
    depth: int,
    query_prefix: str,
    document_prefix: str,
    analyser_name: str,
) -> Searched | None:
    """Self-supervised queries drawn from ``docs``, the pool they are searched in (their answers first, query
    ``i``'s answer being member ``i``, then a sample of the other documents up to ``pool``), and each query's
    dense and lexical top ``depth`` over it (member positions); ``None`` with fewer than 20 queries."""
    rng = random.Random(seed)
    made = cloze_queries(docs, queries, seed)
    if len(made) < 20:
        return None
    answers = {q.answer.id for q in made}
    others = [d for d in docs if d.id not in answers]
    members = [q.answer for q in made] + rng.sample(others, min(len(others), max(0, pool - len(made))))
    with tempfile.TemporaryDirectory() as tmp:
        index = Pool(members, encode, splitter, document_prefix, Path(tmp) / "lexical", analyser_name)
        try:
            vectors = encode([query_prefix + q.text for q in made])
            lists = [(index.dense(vectors[i], depth), index.lexical(q.text, depth)) for i, q in enumerate(made)]
        finally:
            index.close()
    return Searched(made, members, lists, index, vectors)


def choose_fusion_unjudged(
    docs: Sequence[Document],
    encode: Callable[[list[str]], np.ndarray],
    splitter: PassageSplitter,
    *,
    query_prefix: str = "",
    document_prefix: str = "",
    queries: int = 200,
    pool: int = 2000,
    seed: int = 0,
    depth: int = 100,
    analyser_name: str = "english",
    per_query_weights: bool = True,
) -> FusionInfo | None:
    """The best fusion on self-supervised queries from ``docs`` (the collection's documents, or a sample of
    at least ``pool`` of them); ``None`` when the documents are too short or too few to draw queries from.
    ``encode`` is the collection's bi-encoder (texts to unit vectors)."""
    drawn = searched_pool(
        docs, encode, splitter, queries, pool, seed, depth, query_prefix, document_prefix, analyser_name
    )
    if drawn is None:
        log.warning("too few self-supervised queries could be drawn (at least 20): fusion keeps its default")
        return None
    made, members, searched = drawn.queries, drawn.members, drawn.lists
    lists = {str(i): pair for i, pair in enumerate(searched)}  # query i's answer is pool member i
    fusions = candidates()
    per_query = {
        name: np.array(
            [ndcg_at_k([str(k) for k, _ in fuse(d, lex, fusion)[:10]], {q: 1}, 10) for q, (d, lex) in lists.items()]
        )
        for name, fusion in fusions.items()
    }
    scores: dict[str, Any] = {name: round(100 * float(v.mean()), 2) for name, v in per_query.items()}
    best = choose_over_default(per_query, fusions)
    chosen = fusions[best]
    method = "lexical" if chosen.method == "convex" and chosen.alpha == 0.0 else chosen.method
    chosen_on = (
        f"self-supervised: {len(made)} inverse-cloze queries over a pool of {len(members)} documents "
        f"(nDCG@10; the default unless beaten by more than one standard error)"
        f"{'; lexical only' if method == 'lexical' else ''}"
    )
    if per_query_weights:
        adaptive, figures = choose_per_query(searched, fixed_alpha_of(chosen))
        scores["per-query"] = figures
        if adaptive is not None:
            return FusionInfo(
                method="convex",
                alpha=adaptive.alpha,
                beta=adaptive.beta,
                dense_gap=round(adaptive.dense_gap, 6),
                lexical_gap=round(adaptive.lexical_gap, 6),
                rrf_k=adaptive.rrf_k,
                chosen_on=chosen_on + f"; then per-query weights (α {adaptive.alpha}, β {adaptive.beta}), better than "
                f"{describe(chosen)} by more than one standard error",
                validation=scores,
            )
    return FusionInfo(
        method=chosen.method,
        alpha=chosen.alpha if chosen.method == "convex" else None,
        rrf_k=chosen.rrf_k,
        chosen_on=chosen_on,
        validation=scores,
    )


def describe(fusion: Fusion) -> str:
    if fusion.method == "convex":
        return f"convex α {fusion.alpha}"
    return fusion.method


def choose_over_default(
    per_query: dict[str, np.ndarray], fusions: dict[str, Fusion], default: Fusion = DEFAULT_FUSION
) -> str:
    """The candidate to use, from each candidate's per-query scores: the best one if it beats the default by
    more than one standard error of their paired per-query difference; else a single list (dense, then
    lexical: one retrieval instead of two) that scores at least what the default scores; else the default.
    Ties among the best go to the simpler candidate (a single list, then RRF, then the convex combinations
    from the most dense)."""
    names = list(fusions)
    order = ["dense", "convex-0.0", *[n for n in names if n not in ("dense", "convex-0.0")]]
    best = max(order, key=lambda n: (float(per_query[n].mean()), -order.index(n)))
    keep = next((n for n in names if fusions[n] == default), None)
    if keep is None or keep == best:
        return best
    diff = per_query[best] - per_query[keep]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    if float(diff.mean()) > se:
        return best
    level = float(per_query[keep].mean())
    return next((n for n in ("dense", "convex-0.0") if n in per_query and float(per_query[n].mean()) >= level), keep)


def live_documents(view: Any, limit: int, seed: int = 0) -> list[Document]:
    """Up to ``limit`` of a collection's current documents (its build's and the writes since), sampled with
    a seed: what the self-supervised queries and their pool are drawn from."""
    base = getattr(view, "base", None)
    state = getattr(view, "state", None)
    if base is None or state is None:
        raise ValueError("self-supervised fusion reads the embedded store's documents")
    alive = np.setdiff1d(np.arange(base.count), state.dead_base)
    keys = np.concatenate([alive, state.live_delta_keys]).astype(np.int64)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(keys, size=min(limit, len(keys)), replace=False)) if len(keys) else keys
    return [d for d in view.documents(chosen.tolist()) if d is not None]


def fit_unjudged(
    view: Any,
    encode: Callable[[list[str]], np.ndarray],
    splitter: PassageSplitter,
    *,
    query_prefix: str = "",
    document_prefix: str = "",
    queries: int = 200,
    pool: int = 2000,
    seed: int = 0,
    per_query_weights: bool = True,
) -> FusionInfo | None:
    """:func:`choose_fusion_unjudged` over a collection's view (``None``: too few documents to draw from),
    with the collection's analyser."""
    docs = live_documents(view, max(pool, queries * 4), seed)
    searcher = getattr(view, "lexical_searcher", None)
    analyser_name = searcher.analyser_name if searcher is not None else "english"
    return choose_fusion_unjudged(
        docs,
        encode,
        splitter,
        query_prefix=query_prefix,
        document_prefix=document_prefix,
        queries=queries,
        pool=pool,
        seed=seed,
        analyser_name=analyser_name,
        per_query_weights=per_query_weights,
    )


def choose_rerank_weight_unjudged(
    docs: Sequence[Document],
    encode: Callable[[list[str]], np.ndarray],
    score: Callable[[list[tuple[str, str]]], np.ndarray],
    splitter: PassageSplitter,
    *,
    first_stage: str = "dense",
    k_r: int = 100,
    query_prefix: str = "",
    document_prefix: str = "",
    queries: int = 100,
    pool: int = 2000,
    seed: int = 0,
    analyser_name: str = "english",
    fusion: Fusion = DEFAULT_FUSION,
) -> dict[str, Any] | None:
    """How much ``rerank`` should trust the cross-encoder (``score``) on this collection, without judgments:
    the first stage's top ``k_r`` of self-supervised queries over the pool are scored by the cross-encoder and
    blended at each weight (simsearch.evaluation.rerank_fit; ``hybrid`` fuses them with the collection's
    ``fusion``); the best nDCG@10 wins (ties: the smaller weight,
    the safer when the cross-encoder was trained elsewhere). ``None`` with too few documents."""
    from simsearch.evaluation.rerank_fit import WEIGHTS
    from simsearch.search.rescore import interpolate

    drawn = searched_pool(
        docs, encode, splitter, queries, pool, seed, k_r, query_prefix, document_prefix, analyser_name
    )
    if drawn is None:
        return None
    made, members, searched = drawn.queries, drawn.members, drawn.lists
    scored: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for i, (q, (dense, lexical)) in enumerate(zip(made, searched, strict=True)):
        first = {"dense": dense, "lexical": lexical}.get(first_stage) or fuse(dense, lexical, fusion)
        first = first[:k_r]
        # what re-ranking gives the cross-encoder: each candidate's best passage, as the collection reads it
        cross = score([(q.text, drawn.reads(i, k)) for k, _ in first])
        scored[str(i)] = ([k for k, _ in first], [s for _, s in first], [float(x) for x in cross])
    qrels = {str(i): {str(i): 1} for i in range(len(made))}
    validation = {}
    for w in WEIGHTS:
        run = {}
        for qid, (keys, first_scores, cross_scores) in scored.items():
            blended = interpolate(first_scores, cross_scores, w)
            run[qid] = [str(keys[i]) for i in sorted(range(len(keys)), key=lambda i: -blended[i])]
        validation[f"{w:.1f}"] = round(100 * evaluate_run(run, qrels)["ndcg@10"], 2)
    best = max(WEIGHTS, key=lambda w: (validation[f"{w:.1f}"], -w))
    return {
        "weight": best,
        "validation": validation,
        "queries": len(made),
        "chosen_on": f"self-supervised: {len(made)} inverse-cloze queries over a pool of {len(members)} documents "
        "(nDCG@10)",
    }
