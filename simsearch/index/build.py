"""Building an index folder from a corpus: validate every line, encode, index, write, publish.

The build runs in a staging folder (simsearch.index.publish) and is published by one atomic rename.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.ann import AnnIndex, backend, create_index
from simsearch.ann.tuning import build_tuned
from simsearch.api.spec import CollectionSpec, PassageSpec, resolve_passages
from simsearch.data.corpus import CorpusFormat, Document, iter_documents, resolve_corpus, scan_corpus
from simsearch.index import layout
from simsearch.index.docstore import DocStore, DocStoreWriter
from simsearch.index.manifest import (
    IndexInfo,
    LexicalInfo,
    Manifest,
    ModelInfo,
    PassageInfo,
    ScriptInfo,
    SourceInfo,
)
from simsearch.index.publish import build_lock, prune_builds, publish, staged
from simsearch.lexical import build_lexical
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.files import file_sha256
from simsearch.models.loading import SPECIAL_TOKENS_MARGIN
from simsearch.text.analysers import mostly_cjk
from simsearch.text.passages import PassageSplitter, Span, spans_array

# tokens (padded) per batch of a build, at most the encoder's batch size of inputs (32): 2 inputs of 256
# tokens, 8 of 64, 32 short sentences. Measured (bench.encoding's sweep, ONNX fp32 / int8 on 2 cores): 8,192
# tokens without the cap made batches of 800 short sentences, 2.1x slower than 32; with the cap, 512 was
# the best or within 3 % of it for short, 64-token and 256-token texts, and 1.4x faster than 8,192 on
# 256-token ones (attention over a large batch leaves the caches)
BUILD_BATCH_TOKENS = 512


def _chunks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while chunk := list(islice(docs, size)):
        yield chunk


def build_index(
    corpus: Path,
    encoder: BiEncoder,
    root: Path,
    name: str,
    *,
    fmt: CorpusFormat = "auto",
    kind: str = "faiss",
    params: dict[str, Any] | None = None,
    document_prefix: str = "",
    chunk_size: int = 256,
    keep_builds: int = 2,
    target_recall: float = 0.95,
    progress: bool = True,
    lexical: bool = True,
    tuning_queries: list[str] | None = None,
    query_prefix: str = "",
    model_name: str | None = None,
    spec: CollectionSpec | None = None,
    finish: Callable[[Path, Manifest], Manifest] | None = None,
) -> Path:
    """Validate, encode and write ``root/<name>``; return the published path (the symlink).

    With ``kind="faiss"`` the index type follows the corpus size unless ``params["factory"]`` names one
    (simsearch.ann.tuning); approximate types are tuned to ``target_recall`` and the recall reached is
    recorded in the manifest. ``tuning_queries``: texts like the queries the index will serve (encoded
    with ``encoder`` and ``query_prefix``, as searches encode queries); recall is then tuned on them,
    and they are kept in the build so that compaction tunes on them again."""
    corpus_file, resolved_fmt = resolve_corpus(corpus, fmt)
    count = scan_corpus(corpus_file, resolved_fmt)  # every bad line is reported before encoding starts
    backend(kind)  # an unknown index type fails now, not after the encoding
    model = model_info(encoder, document_prefix, model_name)
    encoding = [0.0]  # seconds spent in the encoder
    splitter = splitter_for(encoder, spec, document_prefix)

    def encode(_start: int, chunk: list[Document]) -> Encoded:
        t0 = time.perf_counter()
        passages = splitter.split(chunk, document_prefix)
        counts = getattr(encoder, "token_counts", None)  # stand-in encoders (tests) have no tokenizer
        if counts is None:
            vectors, over, tokens = encoder.encode(passages.inputs), 0, 0
        else:
            lengths = counts(passages.inputs)
            # batches by tokens, longest first: less padding, and as many short texts as fit at once
            vectors = encoder.encode(passages.inputs, max_tokens=BUILD_BATCH_TOKENS, lengths=lengths)
            over, tokens = sum(n >= encoder.max_seq_length for n in lengths), sum(lengths)
        encoding[0] += time.perf_counter() - t0
        return Encoded(vectors, passages.spans, over, tokens)

    return write_build(
        corpus_file,
        resolved_fmt,
        count,
        model,
        Path(root),
        name,
        encode,
        encode_seconds=lambda: encoding[0],
        chunk_size=chunk_size,
        kind=kind,
        params=params,
        keep_builds=keep_builds,
        target_recall=target_recall,
        lexical=lexical,
        tuning_queries=encoder.encode(tuning_queries, prefix=query_prefix) if tuning_queries else None,
        progress=progress,
        desc=f"encoding {name}",
        spec=spec,
        finish=finish,
        split_into=splitter.spec,
    )


@dataclass(frozen=True)
class Encoded:
    """A chunk of documents as vectors: one per passage (``spans[i]``: document ``i``'s passages) and how
    many model inputs were longer than the model's window (cut)."""

    vectors: np.ndarray
    spans: list[list[Span]] | None = None  # None: one vector per document, over its whole text
    over_window: int = 0
    tokens: int = 0  # tokens the model read


def passage_room(encoder: BiEncoder, document_prefix: str = "") -> int | None:
    """Tokens a passage's text may have in ``encoder``'s window: less its special tokens and the prefix
    (``None`` for an encoder without a tokenizer: a stand-in in tests, which cannot split)."""
    tokenizer = getattr(getattr(encoder, "model", None), "tokenizer", None)
    if tokenizer is None:
        return None
    prefix = len(tokenizer.tokenize(document_prefix)) if document_prefix else 0
    return int(encoder.max_seq_length) - SPECIAL_TOKENS_MARGIN // 2 - prefix


def passages_of(encoder: BiEncoder, spec: CollectionSpec | None, document_prefix: str = "") -> PassageSpec | None:
    """The passages ``spec`` means with ``encoder`` (``auto`` fitted to its window); ``None``: one vector per
    document (also without a specification: a build made before specifications)."""
    if spec is None or spec.passages == "none":
        return None
    room = passage_room(encoder, document_prefix)
    if room is None:
        if spec.passages == "auto":
            return None
        raise ValueError("passages need the model's tokenizer")
    return resolve_passages(spec.passages, room)


def splitter_for(encoder: BiEncoder, spec: CollectionSpec | None, document_prefix: str = "") -> PassageSplitter:
    """The collection's passage splitter (no splitting without a specification, or with ``none``)."""
    passages = passages_of(encoder, spec, document_prefix)
    if passages is None:
        return PassageSplitter(None, None)
    return PassageSplitter(encoder.model.tokenizer, passages.tokens, passages.overlap)


class EmbeddingsWriter:
    """``embeddings.npy`` written chunk by chunk when the number of rows is known only at the end (documents
    split into passages): rows are appended to a raw file, then copied under the ``.npy`` header."""

    def __init__(self, folder: Path, dimension: int) -> None:
        self.folder, self.dimension, self.rows = folder, dimension, 0
        self._raw_path = folder / (layout.EMBEDDINGS_FILE + ".raw")
        self._raw = self._raw_path.open("wb")

    def add(self, vectors: np.ndarray) -> None:
        self._raw.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self.rows += len(vectors)

    def close(self) -> np.ndarray:
        self._raw.close()
        raw = np.memmap(self._raw_path, dtype="<f4", mode="r", shape=(self.rows, self.dimension)) if self.rows else None
        out = np.lib.format.open_memmap(
            self.folder / layout.EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(self.rows, self.dimension)
        )
        for start in range(0, self.rows, 65_536):
            assert raw is not None
            out[start : start + 65_536] = raw[start : start + 65_536]
        out.flush()
        del raw
        self._raw_path.unlink()
        return out


def passage_info_of(chosen: PassageSpec | None, passages: int, split: int, over_window: int) -> PassageInfo:
    """What a build records of its passages: ``chosen`` is the resolved setting (``None``: not split)."""
    if chosen is None:
        return PassageInfo(tokens=None, passages=passages, split=split, over_window=over_window)
    return PassageInfo(
        tokens=chosen.tokens, overlap=chosen.overlap, passages=passages, split=split, over_window=over_window
    )


def recorded_passages(m: Manifest) -> PassageSpec | None:
    """The passages a build was split into, as it recorded them (compaction keeps them)."""
    if m.passages is None or m.passages.tokens is None:
        return None
    return PassageSpec.model_construct(tokens=m.passages.tokens, overlap=m.passages.overlap)


def model_info(encoder: BiEncoder, document_prefix: str, name: str | None = None) -> ModelInfo:
    """What a build records of the model that encoded it."""
    return ModelInfo(
        name=name,
        path=encoder.path,
        sha256=encoder.sha256,
        dimension=encoder.dim,
        max_seq_length=encoder.max_seq_length,
        document_prefix=document_prefix,
        whitening=encoder.whitening,
        backend=getattr(encoder, "backend", None),
    )


def create_empty(root: Path, name: str, model: ModelInfo, spec: CollectionSpec, *, lexical: bool = True) -> Path:
    """Publish an empty build of ``name`` (no documents: writes fill it, compaction folds them in), or raise
    ``FileExistsError`` when the name is taken. The same staged folder and atomic publish as every build,
    so a create killed half-way leaves either nothing or a complete collection."""
    root = Path(root)
    with build_lock(root, name):
        if (root / name).exists() or (root / name).is_symlink():
            raise FileExistsError(f"collection {name!r} exists")
        with staged(root, name) as (tmp, final):
            started = time.perf_counter()
            embeddings = np.zeros((0, model.dimension), dtype=np.float32)
            np.save(tmp / layout.EMBEDDINGS_FILE, embeddings)
            if DocStoreWriter(tmp / layout.DOCS_FILE).close() != 0:
                raise RuntimeError("an empty build holds documents")
            params = {"factory": spec.index}
            info, lexical_info, files = finish_build(
                tmp, embeddings, "faiss", params, 0.95, lexical, analyser_name=spec.analyser
            )
            Manifest(
                name=name,
                build_id=layout.build_id_of(final),
                built_at=datetime.now(UTC),
                build_seconds=round(time.perf_counter() - started, 3),
                docs_per_s=0.0,
                count=0,
                model=model,
                index=info,
                source=SourceInfo(path="created empty", format="empty", sha256=""),
                files=files,
                lexical=lexical_info,
                spec=spec,
                # `auto` is resolved with the model's tokenizer when documents are written (the service's
                # splitter); GET /collections/{name} shows what it resolved to
                passages=passage_info_of(spec.passages if isinstance(spec.passages, PassageSpec) else None, 0, 0, 0),
                sequence=log_sequence(root, name),
            ).write(tmp)
        return publish(root, name, final)


def write_build(
    corpus_file: Path,
    fmt: CorpusFormat,
    count: int,
    model: ModelInfo,
    root: Path,
    name: str,
    vectors_for: Callable[[int, list[Document]], np.ndarray | Encoded],
    *,
    encode_seconds: Callable[[], float],
    other_seconds: float = 0.0,
    chunk_size: int,
    kind: str,
    params: dict[str, Any] | None,
    keep_builds: int,
    target_recall: float,
    lexical: bool,
    tuning_queries: np.ndarray | None,
    progress: bool,
    desc: str,
    spec: CollectionSpec | None = None,
    finish: Callable[[Path, Manifest], Manifest] | None = None,
    split_into: PassageSpec | None = None,
) -> Path:
    """What every build from a corpus does, wherever its vectors come from: under the build lock, in a
    staging folder, the documents (checked with ``scan_corpus`` beforehand: ``count`` of them) and their
    vectors (``vectors_for(position of the chunk's first document, chunk)``) chunk by chunk, then
    :func:`finish_build`, the manifest, the atomic publish and the pruning of old builds.
    ``encode_seconds()``: the encoding time so far (the manifest's ``docs_per_s``); ``other_seconds``: time
    spent before this call that belongs to the build (encoding done elsewhere)."""
    with build_lock(root, name):
        with staged(root, name) as (tmp, final):
            started = time.perf_counter()
            writer = DocStoreWriter(tmp / layout.DOCS_FILE)
            vectors = EmbeddingsWriter(tmp, model.dimension)
            spans: list[np.ndarray] = []
            over_window = split = cjk = tokens = 0
            done = 0
            with tqdm(total=count, unit="doc", desc=desc, disable=not progress) as bar:
                for chunk in _chunks(iter_documents(corpus_file, fmt), chunk_size):
                    got = vectors_for(done, chunk)
                    encoded = got if isinstance(got, Encoded) else Encoded(got)
                    if encoded.spans is not None:
                        spans.append(spans_array(range(done, done + len(chunk)), encoded.spans))
                        split += sum(len(s) > 1 for s in encoded.spans)
                    vectors.add(encoded.vectors)
                    over_window += encoded.over_window
                    tokens += encoded.tokens
                    cjk += sum(mostly_cjk(d.content()) for d in chunk)
                    writer.add(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            if done != count or writer.close() != count:
                raise RuntimeError(f"corpus {corpus_file} changed while it was being indexed")
            embeddings = vectors.close()
            passages = None
            if split:  # some document has more than one passage: record each vector's document and span
                passages = np.concatenate(spans)
                if len(passages) != len(embeddings):
                    raise RuntimeError(f"{len(embeddings)} vectors for {len(passages)} passages")
                np.save(tmp / layout.PASSAGES_FILE, passages, allow_pickle=False)
            passage_info = passage_info_of(split_into, len(embeddings), split, over_window)
            info, lexical_info, files = finish_build(
                tmp,
                embeddings,
                kind,
                params or {},
                target_recall,
                lexical,
                tuning_queries=tuning_queries,
                analyser_name=spec.analyser if spec is not None else "english",
                groups=passages[:, 0] if passages is not None else None,
            )
            if passages is not None:
                files[layout.PASSAGES_FILE] = file_sha256(tmp / layout.PASSAGES_FILE)
            del embeddings
            seconds = encode_seconds()
            manifest = Manifest(
                name=name,
                build_id=layout.build_id_of(final),
                built_at=datetime.now(UTC),
                build_seconds=round(time.perf_counter() - started + other_seconds, 3),
                docs_per_s=round(count / seconds, 2) if seconds > 0 else 0.0,
                tokens_per_s=round(tokens / seconds, 1) if seconds > 0 and tokens else None,
                count=count,
                model=model,
                index=info,
                source=SourceInfo(path=str(corpus_file), format=fmt, sha256=file_sha256(corpus_file)),
                files=files,
                lexical=lexical_info,
                spec=spec,
                passages=passage_info,
                scripts=ScriptInfo(documents=count, cjk=cjk),
                # a build from a corpus replaces the collection: the log's earlier writes are not replayed on it
                sequence=log_sequence(root, name),
            )
            manifest.write(tmp)
            if finish is not None:  # measured on the build itself, before anyone can see it
                finish(tmp, manifest).write(tmp)
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
    return link


def finish_build(
    tmp: Path,
    vectors: np.ndarray,
    kind: str,
    params: dict[str, Any],
    target_recall: float,
    lexical: bool,
    *,
    tuning_queries: np.ndarray | None = None,
    analyser_name: str = "english",
    groups: np.ndarray | None = None,
) -> tuple[IndexInfo, LexicalInfo | None, dict[str, str]]:
    """What every build does once its documents (``docs.sqlite``) and ``embeddings.npy`` are in ``tmp``: the
    ANN index (tuned, on ``tuning_queries`` when given: they are then kept as ``tuning_queries.npy``), the
    lexical index, and the checksums of every file for the manifest."""
    ann, info = index_vectors(vectors, kind, params, target_recall, tuning_queries, groups)
    written = [ann.save(tmp), tmp / layout.DOCS_FILE, tmp / layout.EMBEDDINGS_FILE]
    if tuning_queries is not None and len(tuning_queries):
        path = tmp / layout.TUNING_QUERIES_FILE
        np.save(path, np.asarray(tuning_queries, dtype=np.float32))
        written.append(path)
    lexical_info = None
    if lexical:
        store = DocStore(tmp / layout.DOCS_FILE)
        try:
            documents = ((p, d.content()) for p, d in store.iter_documents())
            stats = build_lexical(tmp / layout.LEXICAL_DIR, documents, analyser_name)
        finally:
            store.close()
        lexical_info = LexicalInfo(**stats)
        written += sorted(p for p in (tmp / layout.LEXICAL_DIR).iterdir() if p.is_file())
    return info, lexical_info, {p.relative_to(tmp).as_posix(): file_sha256(p) for p in written}


def log_sequence(root: Path, name: str) -> int:
    """The last batch in the collection's write log (0 without one), read without opening it for writing."""
    import sqlite3

    path = layout.write_log(root, name)
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM info WHERE key = 'last_seq'").fetchone()
    except sqlite3.OperationalError:
        row = None
    finally:
        conn.close()
    return int(row[0]) if row else 0


def index_vectors(
    vectors: np.ndarray,
    kind: str,
    params: dict[str, Any],
    target_recall: float,
    tuning_queries: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[AnnIndex, IndexInfo]:
    """An ANN index over ``vectors`` and its manifest entry. FAISS picks its type by size and tunes its
    search parameter to ``target_recall`` (simsearch.ann.tuning); other backends are exact or untuned."""
    if kind == "faiss":
        tuned, measured = build_tuned(
            vectors,
            params.get("factory", "auto"),
            target_recall=target_recall,
            query_vectors=tuning_queries,
            groups=groups,
        )
        return tuned, IndexInfo(
            type=kind,
            params=tuned.params(),
            requested=params.get("factory", "auto"),
            recall_at_10=measured["recall_at_10"],
            target_recall=measured.get("target_recall"),
            target_reached=measured.get("target_reached"),
            recall_measured_on=measured.get("recall_measured_on"),
        )
    ann = create_index(kind, vectors.shape[1], params)
    ann.add(vectors)
    return ann, IndexInfo(type=kind, params=ann.params(), recall_at_10=1.0 if kind == "exact" else None)
