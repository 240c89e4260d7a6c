"""training.mine_pairs: judged pairs with hard and random negatives, and the bi-encoder distilled into
the labels (``--teacher``)."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.data.corpus import Document
from tests.conftest import DOCS, write_jsonl

QUERIES = {"q1": "a small pet cat", "q2": "a hot drink from beans", "q3": "rain tomorrow in the north"}
RELEVANT = {"q1": "d1", "q2": "d6", "q3": "d4"}


@pytest.fixture
def judged(tmp_path, monkeypatch, tiny_model, built_index):
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "queries.jsonl", [{"_id": q, "text": t} for q, t in QUERIES.items()])
    (data / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in RELEVANT.items())
    )
    monkeypatch.setenv("SIMSEARCH_BI_MODEL", tiny_model)
    monkeypatch.setenv("SIMSEARCH_INDEX_DIR", str(built_index.parent))
    monkeypatch.setenv("SIMSEARCH_BACKEND", "torch")
    return data


def rows(path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text().splitlines():
        q, d, label = line.split("\t")
        out.append((q, d, float(label)))
    return out


def mine(data, out, *extra: str) -> None:
    from training.mine_pairs import main

    args = ["--data", str(data), "--index", "tiny", "--negatives", "2", "--random-negatives", "1"]
    assert main([*args, "--dev-fraction", "0.34", "--out", str(out), *extra]) == 0


def test_teacher_labels_are_the_judgement_plus_the_bi_encoders_cosine(judged, tmp_path, tiny_encoder) -> None:
    mine(judged, tmp_path / "plain.tsv")
    mine(judged, tmp_path / "taught.tsv", "--teacher")
    plain, taught = rows(tmp_path / "plain.tsv"), rows(tmp_path / "taught.tsv")
    # the same pairs in the same order; only the labels differ
    assert [(q, d) for q, d, _ in plain] == [(q, d) for q, d, _ in taught] and len(plain) >= 6
    assert {label for *_, label in plain} == {0.0, 1.0}
    texts = {d["_id"]: " ".join(f"{d['title']} {d['text']}".split()) for d in DOCS}
    for (q, d, judgement), (*_, label) in zip(plain, taught, strict=True):
        qv, dv = tiny_encoder.encode([q])[0], tiny_encoder.encode([d])[0]
        cosine = float(qv @ dv / (np.linalg.norm(qv) * np.linalg.norm(dv)))
        assert label == pytest.approx(2 * judgement + cosine, abs=2e-3), (q, d)
        assert d in texts.values()
    # every judged pair above every unjudged one, whatever the cosines
    assert min(lab for *_, lab in taught if lab >= 1) > max(lab for *_, lab in taught if lab < 1)
    # the dev file keeps the 0/1 judgements: its Spearman is measured against the truth
    dev = rows(tmp_path / "taught-dev.tsv")
    assert dev == rows(tmp_path / "plain-dev.tsv") and {lab for *_, lab in dev} == {0.0, 1.0}


def test_the_dev_queries_are_written_as_a_beir_folder_for_fitting(judged, tmp_path) -> None:
    """The held-out queries (those of the dev file, never trained on) with their judgements, readable by
    the BEIR loaders that training.fit_rerank uses."""
    from simsearch.data.beir import load_qrels, load_queries

    mine(judged, tmp_path / "pairs.tsv")
    folder = tmp_path / "pairs-heldout"
    queries, qrels = load_queries(folder), load_qrels(folder, "heldout")
    dev_queries = {q for q, _, _ in rows(tmp_path / "pairs-dev.tsv")}
    train_queries = {q for q, _, _ in rows(tmp_path / "pairs.tsv")}
    assert set(queries.values()) == dev_queries and len(queries) == 1
    assert not dev_queries & train_queries
    assert {q: set(d) for q, d in qrels.items()} == {q: {RELEVANT[q]} for q in queries}


def test_a_build_split_into_passages_gives_documents_and_their_best_passage(
    tmp_path, monkeypatch, tiny_model, tiny_encoder
) -> None:
    """On a build whose documents are split, the negatives are documents (each once, never a passage's row
    taken for a document's position), a pair's text is what the cross-encoder reads at search time (the
    title and the best passage) and the teacher's cosine is the best passage's, dense search's score."""
    from simsearch.api.spec import CollectionSpec, PassageSpec
    from simsearch.index.build import build_index
    from simsearch.text.passages import PassageSplitter
    from tests.test_passages import long_text

    rows_in = [{"_id": f"long-{i}", "title": f"Report {i}", "text": long_text(12, seed=i)} for i in range(8)]
    rows_in += [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in DOCS]
    root = tmp_path / "ix"
    spec = CollectionSpec(passages=PassageSpec(tokens=16, overlap=0))
    build_index(write_jsonl(tmp_path / "c.jsonl", rows_in), tiny_encoder, root, "split", progress=False, spec=spec)
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    queries = {"q1": "a new species of frog near the river", "q2": "a small pet cat", "q3": "the old steel bridge"}
    judged = {"q1": "long-3", "q2": "d1", "q3": "long-5"}
    write_jsonl(data / "queries.jsonl", [{"_id": q, "text": t} for q, t in queries.items()])
    (data / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in judged.items())
    )
    monkeypatch.setenv("SIMSEARCH_BI_MODEL", tiny_model)
    monkeypatch.setenv("SIMSEARCH_INDEX_DIR", str(root))
    monkeypatch.setenv("SIMSEARCH_BACKEND", "torch")
    from training.mine_pairs import main

    out = tmp_path / "pairs.tsv"
    args = ["--data", str(data), "--index", "split", "--negatives", "3", "--lexical-negatives", "2"]
    assert main([*args, "--teacher", "--titles", "4", "--out", str(out)]) == 0
    pairs = rows(out)
    splitter = PassageSplitter(tiny_encoder.model.tokenizer, 16, 0)
    readable = set()  # every text the cross-encoder could be given: a title with one passage, or a whole short doc
    for row in rows_in:
        doc = Document(id=row["_id"], text=row["text"], title=row["title"])
        for s, e in splitter.spans(doc):
            readable.add(" ".join(f"{doc.title} {doc.text[s:e]}".split()))
            readable.add(" ".join(doc.text[s:e].split()))  # a title query's positive leaves its title out
    by_query: dict[str, list[tuple[str, float]]] = {}
    for q, d, label in pairs:
        assert d in readable, d
        by_query.setdefault(q, []).append((d, label))
    for q in queries.values():
        texts = [d for d, _ in by_query[q]]
        assert len(texts) == len(set(texts)) >= 4  # distinct documents, the judged one and its negatives
        for d, label in by_query[q]:
            qv, dv = tiny_encoder.encode([q])[0], tiny_encoder.encode([d])[0]
            cosine = float(qv @ dv / (np.linalg.norm(qv) * np.linalg.norm(dv)))
            # the passage shown is the best by the query vector: its cosine is the document's (the label's)
            assert label - 2 * (label >= 1) == pytest.approx(cosine, abs=2e-3), (q, d)
    assert sum(1 for q, _, _ in pairs if q.startswith("Report ")) >= 4  # the title pairs
