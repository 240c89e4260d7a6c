"""Long documents as passages: the splitter (sentence boundaries, token counts of the model's own
tokenizer, offsets into the text, texts without spaces or without any boundary), a collection scored by
each document's best passage (k distinct documents, filters, replace and delete of every passage, the log,
compaction), builds, and the API's hits with their passage."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from simsearch.api.spec import CollectionSpec, PassageSpec
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.filters import Filter
from simsearch.collection.manager import EmbeddedStore
from simsearch.data.corpus import Document
from simsearch.index.manifest import ModelInfo
from simsearch.models.files import default_bi_model
from simsearch.text.passages import PassageSplitter
from tests.test_collections import DIM, ENC, search_ids

SENTENCES = [
    "The committee met on a cold morning to discuss the budget.",
    "Rainfall in the northern valleys doubled over the last decade.",
    "A new species of frog was found near the river delta.",
    "Engineers replaced the old bridge with a lighter steel design.",
    "Volcanic ash closed the airport for three days in April.",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_bi_model())


def long_text(sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(SENTENCES) for _ in range(sentences))


def test_the_splitter_keeps_to_the_token_budget_at_sentence_boundaries(tokenizer: Any) -> None:
    splitter = PassageSplitter(tokenizer, 64, 16)
    short = Document(id="s", text="A short note.")
    assert splitter.spans(short) == [(0, len(short.text))]
    doc = Document(id="l", text=long_text(60), title="Notes")
    spans = splitter.spans(doc)
    assert len(spans) > 5
    for start, end in spans:
        piece = doc.text[start:end]
        assert len(tokenizer.tokenize(piece)) <= 64
        assert piece.endswith(".") and piece[0].isupper()  # whole sentences: boundaries, not cuts
    assert spans[0][0] == 0 and spans[-1][1] == len(doc.text)
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # neighbours overlap
    without = PassageSplitter(tokenizer, 64, 0).spans(doc)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(without)) and len(without) < len(spans)
    passages = splitter.split([doc, short], prefix="passage: ")
    assert passages.counts == [len(spans), 1] and passages.inputs[0].startswith("passage: Notes ")


@pytest.mark.parametrize(
    "text",
    [
        "猫是一种小型的家养肉食性哺乳动物" * 60,  # Chinese without spaces or punctuation
        "x" * 100_000,  # one unbroken 100,000-character token
        "word\u3000  \t" * 3000,  # only whitespace between words
        ". " * 2000 + "end",  # boundaries and nothing between them
    ],
    ids=["chinese", "one-token", "whitespace", "empty-sentences"],
)
def test_the_splitter_copes_with_texts_without_boundaries(tokenizer: Any, text: str) -> None:
    spans = PassageSplitter(tokenizer, 32, 8).spans(Document(id="x", text=text))
    assert spans and all(0 <= s < e <= len(text) for s, e in spans)
    assert all(len(tokenizer.tokenize(text[s:e])) <= 32 for s, e in spans)


MODEL = ModelInfo(name="default", path="hash", sha256=ENC.sha256, dimension=DIM, max_seq_length=64)


def passage_collection(root: Path, tokenizer: Any, docs: list[Document], tokens: int = 32) -> tuple[Any, Any]:
    spec = CollectionSpec(passages=PassageSpec(tokens=tokens, overlap=4))
    store = EmbeddedStore(root)
    store.create("p", spec, MODEL)
    c = store.open("p", writable=True)
    splitter = PassageSplitter(tokenizer, tokens, 4)
    write(c, splitter, docs)
    return c, splitter


def write(c: Any, splitter: PassageSplitter, docs: list[Document]) -> Any:
    passages = splitter.split(docs)
    return c.upsert(docs, ENC.encode(passages.inputs), passages.spans)


def test_dense_search_returns_k_distinct_documents_by_their_best_passage(tmp_path: Path, tokenizer: Any) -> None:
    """One document owns the top 50 passages for a query: the search still returns k distinct documents,
    each scored by its best passage, before and after compaction; a hit shows that passage."""
    rng = random.Random(1)
    hog = Document(id="hog", text=" ".join(["Volcanic ash."] * 800), metadata={"kind": "hog"})
    others = [
        Document(id=f"d{i}", text=long_text(rng.randint(1, 12), seed=i), metadata={"kind": "other", "n": i})
        for i in range(40)
    ]
    c, splitter = passage_collection(tmp_path / "ix", tokenizer, [hog, *others])
    hog_inputs = splitter.split([hog]).inputs
    assert hog_inputs.count(hog_inputs[1]) >= 50  # its passages are one text: it owns the top 50 passages
    q = ENC.encode([hog_inputs[1]])[0]

    def check(view: Any) -> None:
        ranked = view.dense(q, 10)
        assert len(ranked) == 10 and len({k for k, _ in ranked}) == 10
        docs = view.documents([k for k, _ in ranked])
        assert docs[0].id == "hog" and ranked[0][1] == pytest.approx(1.0, abs=1e-5)  # MaxP: its exact passage
        passages = view.best_passages([k for k, _ in ranked], q, "")
        start, end = passages[0].start, passages[0].end
        assert docs[0].text[start:end] == hog_inputs[1]
        flt = Filter.parse({"kind": "other"})
        filtered = view.dense(q, 10, flt)
        assert len(filtered) == 10 and all(
            d.metadata["kind"] == "other" for d in view.documents([k for k, _ in filtered])
        )

    assert c.view().has_passages
    check(c.view())
    from simsearch.collection.compact import compact

    assert compact(c) is not None
    again = EmbeddedCollection.open(tmp_path / "ix" / "p")
    assert again.index.passages is not None and again.index.vectors > 41
    check(again.view())
    again.close()
    c.close()


def test_a_document_and_its_passages_are_replaced_and_deleted_together(tmp_path: Path, tokenizer: Any) -> None:
    docs = [Document(id=f"d{i}", text=long_text(20, seed=i)) for i in range(5)]
    c, splitter = passage_collection(tmp_path / "ix", tokenizer, docs)
    rows = c.view().state.n
    assert rows > 5 and c.view().count == 5
    short = Document(id="d0", text="Now only a short line about frogs.")
    r = write(c, splitter, [short])
    assert r.replaced == ["d0"]
    view = c.view()
    q = ENC.encode([short.text])[0]
    assert view.dense(q, 5)[0][0] == view.state.live_ids["d0"]  # the new version, one passage
    assert len(view.state.live_rows) == rows - len(splitter.spans(docs[0])) + 1
    c.delete(["d1"])
    view = c.view()
    assert view.count == 4 and "d1" not in search_ids(view, "dense", q, 10)
    c.close()
    reopened = EmbeddedCollection.open(tmp_path / "ix" / "p")  # the log replays every passage and span
    view = reopened.view()
    assert view.count == 4 and view.get("d0") == short and view.has_passages
    kept = view.state.live_ids["d2"]
    spans = [tuple(s) for s in view.state.row_span[view.state.rows_of(kept)]]
    assert spans == splitter.spans(docs[2])
    reopened.close()


def test_a_build_from_a_corpus_splits_with_the_same_code(tmp_path: Path, tiny_encoder: Any) -> None:
    from simsearch.index.build import build_index
    from simsearch.index.open import open_index
    from tests.conftest import write_jsonl

    rows = [{"_id": f"d{i}", "title": f"Report {i}", "text": long_text(30, seed=i)} for i in range(6)]
    rows.append({"_id": "short", "text": "Just one line."})
    spec = CollectionSpec(passages=PassageSpec(tokens=24, overlap=4))
    path = build_index(
        write_jsonl(tmp_path / "c.jsonl", rows), tiny_encoder, tmp_path / "ix", "b", progress=False, spec=spec
    )
    index = open_index(path)
    m = index.manifest
    assert m.count == 7 and m.passages is not None and m.passages.tokens == 24 and m.passages.split == 6
    assert index.passages is not None and m.passages.passages == len(index.passages) == index.ann.count()
    splitter = PassageSplitter(tiny_encoder.model.tokenizer, 24, 4)
    first = [tuple(r[1:]) for r in index.passages if r[0] == 0]
    assert first == splitter.spans(Document(id="d0", text=rows[0]["text"]))
    assert m.passages.over_window == 0  # every passage fits the tiny model's 32-token window with its title
    index.close()
    unsplit = build_index(write_jsonl(tmp_path / "c.jsonl", rows), tiny_encoder, tmp_path / "ix", "u", progress=False)
    info = open_index(unsplit).manifest.passages
    assert info is not None and info.tokens is None and info.over_window == 6  # the long ones are cut: said


def test_the_api_splits_shows_the_passage_and_refuses_what_cannot_fit(
    tmp_path: Path, built_index: Path, settings_for: Any
) -> None:
    """Over HTTP (the tiny model's window is 32 tokens): a passage setting larger than the window, or an
    overlap not smaller than the passage, is refused naming the field; long documents are split, a hit
    carries its passage (index, offsets into the text, text), the document reads back whole; a text of a
    million characters is refused naming the limit; an unsplit collection says how much of its text is cut."""
    import shutil

    from fastapi.testclient import TestClient

    from service.app import create_app
    from simsearch.client import Client, SimsearchError

    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    with TestClient(create_app(settings_for(index_dir=root, anonymous_writes=True))) as http:
        c = Client(http=http)
        for passages, field in (
            ({"tokens": 40}, "body.passages.tokens"),
            ({"tokens": 16, "overlap": 16}, "body.passages.overlap"),
        ):
            with pytest.raises(SimsearchError) as refused:
                c.create_collection("long", passages=passages)
            assert refused.value.status == 422 and refused.value.message.startswith(field), refused.value.message
        c.create_collection("long", passages={"tokens": 16, "overlap": 4})
        docs = [{"id": f"r{i}", "title": "Report", "text": long_text(12, seed=i)} for i in range(4)]
        docs.append(
            {"id": "frog", "text": long_text(6, seed=9) + " A new species of frog was found near the river delta."}
        )
        c.upsert("long", docs)
        hits = c.search("long", "new species of frog near the river delta", k=5, mode="lexical").hits
        assert hits[0].id == "frog" and hits[0].passage is not None
        p = hits[0].passage
        assert hits[0].text[p.start : p.end] == p.text and "frog" in p.text and p.index > 0
        for mode in ("dense", "hybrid"):
            found = c.search("long", "frog river delta", k=5, mode=mode).hits
            assert len({h.id for h in found}) == len(found) == 5 and all(h.passage for h in found), mode
        assert c.get("long", "frog").text == docs[-1]["text"]  # the whole document
        with pytest.raises(SimsearchError) as huge:
            c.upsert("long", [{"id": "huge", "text": "word " * 200_000}])
        assert huge.value.status == 422 and "SIMSEARCH_MAX_TEXT_CHARS" in huge.value.message
        c.create_collection("cut", passages="none")  # long texts are cut at the window, and it says so
        c.upsert("cut", docs)
        cut = c.get_collection("cut")
        assert cut.passages is None and cut.warnings
        assert "5 of 5 documents (100.0 %) are longer than model 'default'" in cut.warnings[0]
        assert not c.get_collection("long").warnings
        # by default (auto): the measured size fitted to the model's window (32 tokens less 2 special ones)
        c.create_collection("auto")
        c.upsert("auto", docs)
        auto = c.get_collection("auto")
        assert auto.spec.passages == "auto" and auto.passages is not None
        assert (auto.passages.tokens, auto.passages.overlap) == (30, 0) and not auto.warnings
        hits = c.search("auto", "new species of frog near the river delta", k=5, mode="lexical").hits
        assert hits[0].id == "frog" and hits[0].passage is not None and hits[0].passage.index > 0


@pytest.fixture(scope="module")
def milvus_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("milvus-passages") / "m.db"))
    yield client
    client.close()


def test_both_backends_return_the_same_hits_and_passages(tmp_path: Path, tokenizer: Any, milvus_client: Any) -> None:
    """The same long documents written to both stores (Milvus: a row per passage, the document's id a
    field, dense search grouped by document): the same documents, scores and best passages in every mode;
    replacing a document with a shorter version leaves none of its old passages; deleting removes them all."""
    import uuid

    from simsearch.collection.manager import MilvusStore
    from simsearch.search import DirectModels, SearchParams, SearchPipeline, run_sync

    rng = random.Random(4)
    docs = [
        Document(id=f"é-{i}/x", title=f"Report {i}", text=long_text(rng.randint(1, 14), seed=i), metadata={"n": i})
        for i in range(30)
    ]
    spec = CollectionSpec(passages=PassageSpec(tokens=32, overlap=4))
    stores = [EmbeddedStore(tmp_path / "ix"), MilvusStore(milvus_client, "")]
    splitter = PassageSplitter(tokenizer, 32, 4)
    opened = []
    for store in stores:
        name = f"p{uuid.uuid4().hex[:6]}"
        store.create(name, spec, MODEL)
        c = store.open(name, writable=True)
        write(c, splitter, docs)
        opened.append(c)
    embedded, milvus = opened
    assert milvus.view().count == 30 and milvus.view().has_passages
    pipeline, models = SearchPipeline(), DirectModels(ENC)
    queries = [splitter.split([docs[3]]).inputs[-1], "volcanic ash airport", "frog river delta species"]
    for query in queries:
        a = run_sync(pipeline.search(embedded.view(), models, query, SearchParams(k=5)))
        b = run_sync(pipeline.search(milvus.view(), models, query, SearchParams(k=5)))
        assert [h.id for h in a.hits] == [h.id for h in b.hits], query
        assert [h.score for h in b.hits] == pytest.approx([h.score for h in a.hits], rel=1e-3, abs=1e-4)
        assert [h.passage for h in a.hits] == [h.passage for h in b.hits], query
    # BM25: Milvus counts every passage row in its corpus statistics (the later passages hold no terms), so
    # scores differ from the embedded store's; what must hold: a document is found by its own words, once,
    # with the passage that holds them (measured difference: docs/search.md#long-documents-passages)
    for c in opened:
        for mode in ("lexical", "hybrid"):
            hits = run_sync(
                pipeline.search(c.view(), models, "lighter steel design bridge", SearchParams(k=10, mode=mode))
            ).hits
            assert len({h.id for h in hits}) == len(hits) and hits
            assert all("bridge" in h.text for h in hits[:3]), (c.backend, mode)
            assert all("bridge" in h.text[h.passage.start : h.passage.end] for h in hits[:3] if mode == "lexical")
    short = Document(id=docs[3].id, text="Just one line now.", title="Report 3")
    for c in opened:
        write(c, splitter, [short])
        c.delete([docs[4].id])
    rows = milvus_client.query(
        milvus.milvus_name, filter=f'doc == "{docs[3].id.encode().hex()}"', output_fields=["ord"]
    )
    assert [r["ord"] for r in rows] == [0]  # the old version's other passages are gone
    assert (
        milvus_client.query(milvus.milvus_name, filter=f'doc == "{docs[4].id.encode().hex()}"', output_fields=["ord"])
        == []
    )
    for c in opened:
        assert c.view().count == 29 and c.view().get(docs[3].id) == short and c.view().get(docs[4].id) is None
    embedded.close()


@pytest.mark.parametrize("index_type", ["FLAT", "IVF_FLAT"])
def test_a_passage_collection_copies_to_milvus_with_its_passages(
    tmp_path: Path, tokenizer: Any, milvus_client: Any, index_type: str
) -> None:
    """training.to_milvus copies a collection of passages as it is: the compacted build's passages and the
    uncompacted writes' (a replaced document's new passages only), so the copy answers every query with the
    same documents, scores and passages; IVF_FLAT is tuned on the passage rows."""
    import uuid

    from simsearch.collection.compact import compact
    from simsearch.search import DirectModels, SearchParams, SearchPipeline, run_sync
    from training.to_milvus import copy_to_milvus

    rng = random.Random(9)
    docs = [
        Document(id=f"研究-{i}/" + "x" * (i % 3) * 40, title=f"R{i}", text=long_text(rng.randint(1, 12), seed=i))
        for i in range(40)
    ]
    c, splitter = passage_collection(tmp_path, tokenizer, docs[:30])
    assert compact(c) is not None  # the first 30 in the build
    write(c, splitter, docs[30:])  # 10 in the log
    write(c, splitter, [Document(id=docs[2].id, text=long_text(9, seed=99), title="R2 again")])
    c.delete([docs[5].id, docs[33].id])
    assert c.view().has_passages
    copied = copy_to_milvus(c, milvus_client, f"cp{uuid.uuid4().hex[:6]}", index_type=index_type, progress=False)  # type: ignore[arg-type]
    assert copied.view().count == c.view().count == 38
    if index_type == "IVF_FLAT":
        assert copied.info.index.recall_at_10 is not None and copied.info.index.recall_at_10 >= 0.95
    pipeline, models = SearchPipeline(), DirectModels(ENC)
    for query in ["volcanic ash airport", "frog river delta species", splitter.split([docs[31]]).inputs[-1]]:
        a = run_sync(pipeline.search(c.view(), models, query, SearchParams(k=8)))
        b = run_sync(pipeline.search(copied.view(), models, query, SearchParams(k=8)))
        assert [h.id for h in a.hits] == [h.id for h in b.hits], query
        assert [h.score for h in b.hits] == pytest.approx([h.score for h in a.hits], rel=1e-3, abs=1e-4)
        # the best passage's text (two passages of the same sentences tie, and either is the right one)
        assert [h.text[h.passage.start : h.passage.end] for h in a.hits] == [
            h.text[h.passage.start : h.passage.end] for h in b.hits
        ], query
    assert copied.view().get(docs[2].id).title == "R2 again" and copied.view().get(docs[5].id) is None
    c.close()


def test_a_specification_recorded_before_passages_keeps_one_vector_per_document() -> None:
    """`auto` is the default of a new specification; one recorded without the field (before it existed)
    reads as `none`, as it was built; `auto` fits the measured size to a smaller window."""
    from pydantic import TypeAdapter

    from simsearch.api.spec import AUTO_OVERLAP_TOKENS, AUTO_PASSAGE_TOKENS, StoredSpec, resolve_passages

    assert CollectionSpec().passages == "auto"
    recorded = {"model": "default", "cross": None, "index": "auto", "fusion": "auto", "analyser": "english"}
    adapter: TypeAdapter[CollectionSpec | None] = TypeAdapter(StoredSpec)
    assert adapter.validate_python(recorded).passages == "none"
    assert adapter.validate_python({**recorded, "passages": "auto"}).passages == "auto"
    wide = resolve_passages("auto", 254)
    assert wide is not None and (wide.tokens, wide.overlap) == (AUTO_PASSAGE_TOKENS, AUTO_OVERLAP_TOKENS)
    narrow = resolve_passages("auto", 30)
    assert narrow is not None and (narrow.tokens, narrow.overlap) == (30, min(AUTO_OVERLAP_TOKENS, 7))
    assert resolve_passages("none", 254) is None
