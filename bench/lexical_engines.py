"""Which BM25 engine for the lexical index: tantivy against SQLite FTS5, on SciFact and the DL19 subset.

    python -m bench.lexical_engines

Each engine indexes title + text of every document and answers each test query as a bag of its terms
(query text is data: terms go in as term queries, never through a query parser). Reported per corpus
and engine: nDCG@10, Recall@100 (pytrec_eval definitions), build seconds, index bytes, ms per query.
Reference: Anserini BM25 flat (Lucene, k1 = 0.9, b = 0.4, Porter stemming, stop words): SciFact 67.89.
Writes bench/results/lexical_engines.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents
from simsearch.evaluation.metrics import evaluate_run

Search = Callable[[str, int], list[str]]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tantivy_engine(docs: list[tuple[str, str]], folder: Path, stop_words: bool) -> Search:
    import tantivy

    schema_builder = tantivy.SchemaBuilder()
    schema_builder.add_text_field("body", stored=False, tokenizer_name="en")
    schema_builder.add_text_field("id", stored=True, tokenizer_name="raw")
    schema = schema_builder.build()
    index = tantivy.Index(schema, path=str(folder))
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
    builder = builder.filter(tantivy.Filter.lowercase())
    if stop_words:
        builder = builder.filter(tantivy.Filter.stopword("english"))
    analyzer = builder.filter(tantivy.Filter.stemmer("english")).build()
    index.register_tokenizer("en", analyzer)
    writer = index.writer(heap_size=100_000_000, num_threads=1)
    for doc_id, text in docs:
        writer.add_document(tantivy.Document(id=doc_id, body=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()

    def search(query: str, k: int) -> list[str]:
        terms = list(dict.fromkeys(analyzer.analyze(query)))
        if not terms:
            return []
        q = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t)) for t in terms]
        )
        return [searcher.doc(addr)["id"][0] for _, addr in searcher.search(q, k).hits]

    return search


def fts5_engine(docs: list[tuple[str, str]], folder: Path, stop_words: bool) -> Search:
    del stop_words  # FTS5 has no stop-word filter; its IDF already gives common terms about no weight
    conn = sqlite3.connect(folder / "fts.sqlite", check_same_thread=False)
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, body, tokenize='porter unicode61')")
    conn.executemany("INSERT INTO docs VALUES (?, ?)", docs)
    conn.commit()

    def search(query: str, k: int) -> list[str]:
        terms = re.findall(r"\w+", query.lower())
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms))
        rows = conn.execute("SELECT id FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?", (match, k)).fetchall()
        return [r[0] for r in rows]

    return search


ENGINES: dict[str, tuple[Callable[[list[tuple[str, str]], Path, bool], Search], bool]] = {
    "tantivy (stemming, stop words)": (tantivy_engine, True),
    "tantivy (stemming)": (tantivy_engine, False),
    "sqlite-fts5 (porter)": (fts5_engine, False),
}


def run(corpus: Path) -> list[dict[str, Any]]:
    docs = [(d.id, d.content()) for d in iter_documents(corpus)]
    queries, qrels = load_queries(corpus), load_qrels(corpus, "test")
    ids = sorted(q for q in qrels if q in queries)
    rows = []
    for name, (make, stop_words) in ENGINES.items():
        folder = Path(tempfile.mkdtemp(prefix="lexical-"))
        try:
            t0 = time.perf_counter()
            search = make(docs, folder, stop_words)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_ = {q: search(queries[q], 100) for q in ids}
            per_query = (time.perf_counter() - t0) / len(ids)
            m = evaluate_run(run_, qrels)
            rows.append(
                {
                    "corpus": corpus.name,
                    "engine": name,
                    "ndcg@10": round(100 * m["ndcg@10"], 2),
                    "recall@100": round(100 * m["recall@100"], 2),
                    "build_s": round(build, 2),
                    "index_bytes": folder_bytes(folder),
                    "ms_per_query": round(1000 * per_query, 2),
                    "documents": len(docs),
                    "queries": len(ids),
                }
            )
            print(rows[-1])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["scifact", "msmarco-dl19"])
    args = p.parse_args(argv)
    data = settings_with().data_dir
    rows = [r for name in args.corpora for r in run(data / name)]
    best = {c: max((r for r in rows if r["corpus"] == c), key=lambda r: r["ndcg@10"])["engine"] for c in args.corpora}
    path = write_result(
        "lexical_engines",
        {
            "benchmark": "BM25 engines on BEIR test splits: title + text, queries as bags of terms",
            "reference": {"scifact_anserini_bm25_flat": 67.89, "dl19_subset_bm25s_lucene": 68.76},
            "best_by_corpus": best,
            "mean_ndcg@10": {
                e: round(float(np.mean([r["ndcg@10"] for r in rows if r["engine"] == e])), 2) for e in ENGINES
            },
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
