"""Compaction: fold a collection's writes into a new build, published atomically like any build.

The new build holds the base's surviving documents (position order) followed by the live delta documents
(write order), their stored vectors (no re-encoding: the log kept them), a fresh ANN index of the type
asked for at the first build (``auto`` follows the new size) tuned again to the target recall, the lexical
index rebuilt, and the CUR arrays extended: a new document's column is ``E[:, j] = U · R[:, j]``, where
``R[:, j] = CE(anchor queries × document)`` costs ``k_q`` cross-encoder calls; this is where those calls
are made (not at write time, which would cost every upsert ``k_q`` calls). Until then, ``cur`` search finds
new documents through the dense retriever (simsearch.search.retrievers). The manifest records the last
write batch folded in (``sequence``); the log keeps what a kept build does not hold.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.collection.base import CompactionError, Score
from simsearch.collection.embedded import EmbeddedCollection, ReadOnlyError
from simsearch.index import layout
from simsearch.index.build import finish_build, passage_info_of, recorded_passages
from simsearch.index.cur_arrays import FILES as CUR_FILES
from simsearch.index.cur_arrays import save_cur_arrays
from simsearch.index.docstore import DocStoreWriter
from simsearch.index.manifest import CurInfo, Manifest, SourceInfo
from simsearch.index.publish import build_lock, prune_builds, publish, staged
from simsearch.models.files import file_sha256
from simsearch.text.passages import passage_input


def compact(
    collection: EmbeddedCollection,
    *,
    cross_score: Score | None = None,
    cross_sha256: str | None = None,
    keep_builds: int = 2,
    progress: bool = False,
) -> Path | None:
    """Publish a new build with every write up to now; ``None`` when there is nothing to fold.

    With CUR arrays, new documents need the cross-encoder they were fitted with (``cross_score``, and its
    weights' hash ``cross_sha256`` to check that it is that one)."""
    if not collection.writable:
        raise ReadOnlyError(f"collection {collection.name!r} is open read-only here: compact on the writer")
    view = collection.view()  # the writes folded in are exactly this state's
    state, base = view.state, view.base
    index, m = base.index, base.index.manifest
    if state.sequence == m.sequence:
        return None
    root, name = index.path.parent, m.name
    new_docs = [state.doc(int(k)) for k in state.live_delta_keys]
    if m.cur is not None and new_docs:
        if cross_score is None:
            raise CompactionError(
                f"index {name!r} has CUR arrays: compaction gives {len(new_docs)} new documents their columns with "
                f"the cross-encoder they were fitted with ({m.cur.cross_encoder.path}); set SIMSEARCH_CROSS_MODEL"
            )
        if cross_sha256 is not None and cross_sha256 != m.cur.cross_encoder.sha256:
            raise CompactionError(
                f"index {name!r} has CUR arrays fitted with cross-encoder {m.cur.cross_encoder.path}; the configured "
                "one differs: compact with that one, or fit CUR again"
            )
    started = time.perf_counter()
    with build_lock(root, name):
        if (root / name).resolve() != index.path:
            raise CompactionError(f"{root / name} no longer points at build {m.build_id}: reload, then compact")
        survivors = np.setdiff1d(np.arange(base.count), state.dead_base)
        count = len(survivors) + len(new_docs)  # 0 when every document was deleted: an empty build
        # each surviving document's vector rows (passages), in document order, and where each row belongs now
        base_rows, base_docs = _surviving_rows(base.passage_doc, survivors, base.count)
        delta_rows = state.live_rows
        moved_delta = np.searchsorted(state.live_delta_keys, state.row_doc[delta_rows]) + len(survivors)
        rows = len(base_rows) + len(delta_rows)
        with staged(root, name) as (tmp, final):
            vectors = np.lib.format.open_memmap(
                tmp / layout.EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(rows, m.model.dimension)
            )
            stored = base.embeddings()
            for start in range(0, len(base_rows), 8192):
                part = base_rows[start : start + 8192]
                vectors[start : start + len(part)] = stored[part]
            if len(delta_rows):
                vectors[len(base_rows) :] = state.vectors[delta_rows]
            writer = DocStoreWriter(tmp / layout.DOCS_FILE)
            for start in range(0, len(survivors), 2048):
                writer.add(index.store.get(survivors[start : start + 2048].tolist()))
            if new_docs:
                writer.add(new_docs)
            if writer.close() != count:
                raise RuntimeError("compaction wrote a different number of documents than it read")
            vectors.flush()
            split = rows > count  # some document has more than one passage: record every row's document and span
            spans = np.zeros((0, 3), dtype=np.int64)
            if split:
                spans = np.concatenate(
                    [
                        _base_spans(index.passages, base_rows, base_docs, index.store, survivors),
                        np.column_stack([moved_delta, state.row_span[delta_rows]]).astype(np.int64).reshape(-1, 3),
                    ]
                )
                np.save(tmp / layout.PASSAGES_FILE, spans, allow_pickle=False)
            # the type asked for carries over (auto follows the new size); search parameters are tuned again
            params = {"factory": m.index.requested or m.index.params.get("factory", "auto")}
            kept = index.path / layout.TUNING_QUERIES_FILE  # the queries the build was tuned on, if any
            info, lexical, files = finish_build(
                tmp,
                vectors,
                m.index.type,
                params,
                m.index.target_recall or 0.95,
                m.lexical is not None,
                tuning_queries=np.load(kept, allow_pickle=False) if kept.is_file() else None,
                analyser_name=m.lexical.analyser if m.lexical is not None else "english",
                groups=spans[:, 0] if split else None,
            )
            del vectors
            if split:
                files[layout.PASSAGES_FILE] = file_sha256(tmp / layout.PASSAGES_FILE)
            cur = None
            if m.cur is not None:
                # a column per passage: the surviving rows, then the new passages; else per document
                columns, new_items = survivors, [d.content() for d in new_docs]
                if m.cur.items == "passages":
                    columns = base_rows
                    new_items = [
                        passage_input(state.doc(int(d)), int(a), int(b))
                        for d, (a, b) in zip(state.row_doc[delta_rows], state.row_span[delta_rows], strict=True)
                    ]
                written, cur = _compact_cur(tmp, index.path, m.cur, columns, new_items, cross_score, progress)
                files.update(written)
            manifest = m.model_copy(
                update={
                    "build_id": layout.build_id_of(final),
                    "built_at": datetime.now(UTC),
                    "build_seconds": round(time.perf_counter() - started, 3),
                    "count": count,
                    "passages": passage_info_of(
                        recorded_passages(m),
                        rows,
                        int((np.bincount(spans[:, 0], minlength=count) > 1).sum()) if split else 0,
                        (m.passages.over_window if m.passages else 0),
                    ),
                    "index": info,
                    "lexical": lexical,
                    "cur": cur,
                    "files": files,
                    "sequence": state.sequence,
                    "compacted_from": m.build_id,
                    "source": SourceInfo(
                        path=f"{m.build_id} + write batches {m.sequence + 1}..{state.sequence}",
                        format="compaction",
                        sha256=m.source.sha256,
                    ),
                }
            )
            Manifest.model_validate(manifest.model_dump()).write(tmp)
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
        if collection.log is not None:  # batches that every kept build already holds
            collection.log.prune(min(Manifest.read(b).sequence for b in layout.builds(root, name)))
    return link


def _surviving_rows(passage_doc: np.ndarray | None, survivors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The base's vector rows of the surviving documents (in order) and each row's new document position."""
    if passage_doc is None:
        return survivors, np.arange(len(survivors), dtype=np.int64)
    new_position = np.full(count, -1, dtype=np.int64)
    new_position[survivors] = np.arange(len(survivors))
    rows = np.flatnonzero(new_position[passage_doc] >= 0)
    return rows, new_position[passage_doc[rows]]


def _base_spans(
    passages: np.ndarray | None, rows: np.ndarray, docs: np.ndarray, store: Any, survivors: np.ndarray
) -> np.ndarray:
    """``(new document position, start, end)`` of the surviving base rows (whole texts when not split)."""
    if passages is not None:
        return np.column_stack([docs, passages[rows, 1], passages[rows, 2]]).astype(np.int64)
    ends = [
        len(d.text)
        for start in range(0, len(survivors), 2048)
        for d in store.get(survivors[start : start + 2048].tolist())
    ]
    return np.column_stack([docs, np.zeros(len(docs), np.int64), np.asarray(ends, np.int64)]).reshape(-1, 3)


def _compact_cur(
    tmp: Path,
    old: Path,
    info: CurInfo,
    kept: np.ndarray,
    new_items: list[str],
    cross_score: Score | None,
    progress: bool,
) -> tuple[dict[str, str], CurInfo]:
    """E for the new build: the old columns ``kept`` (in their new order), then a column for each of
    ``new_items`` (U · the cross-encoder's scores against the anchor queries)."""
    folder = old / layout.CUR_DIR
    R_old = np.load(folder / CUR_FILES["R"], mmap_mode="r", allow_pickle=False)
    U = np.load(folder / CUR_FILES["U"], allow_pickle=False)
    anchors = np.load(folder / CUR_FILES["anchors"], allow_pickle=False)
    queries = json.loads((folder / CUR_FILES["queries"]).read_text(encoding="utf-8"))
    texts = json.loads((folder / CUR_FILES["texts"]).read_text(encoding="utf-8"))
    R_new = np.zeros((len(queries), len(new_items)), dtype=np.float32)
    if new_items:
        assert cross_score is not None
        for qi, q in enumerate(tqdm(queries, desc="CUR columns", unit="anchor query", disable=not progress)):
            R_new[qi] = cross_score([(q, t) for t in new_items])
    R = np.concatenate([np.asarray(R_old[:, kept], dtype=np.float32), R_new], axis=1)
    E = (U.astype(np.float64) @ R.astype(np.float64)).astype(np.float32)
    moved = np.full(int(R_old.shape[1]), -1, dtype=np.int64)
    moved[kept] = np.arange(len(kept))
    new_anchors = np.where(anchors >= 0, moved[np.maximum(anchors, 0)], -1)
    written = save_cur_arrays(tmp, new_anchors, U, E, R, queries, texts)
    calls = info.calls + len(queries) * len(new_items)
    return {rel: file_sha256(tmp / rel) for rel in written}, info.model_copy(update={"calls": calls})
