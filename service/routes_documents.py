"""Documents: insert or replace, delete, read one; under ``/collections/{name}`` and, for the default
collection, at ``/documents``. A document's id may hold any character but controls (``/``, ``?``, ``#``,
``%``, spaces, non-ASCII): the read route takes the rest of the path, percent-decoded, as the id."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from service.access import READ, WRITE
from service.deps import check_lengths, collection_of, engine
from service.errors import reject
from simsearch.api.schemas import DeleteRequest, DocumentOut, UpsertRequest, WriteResponse
from simsearch.collection.delta import WriteResult
from simsearch.collection.embedded import ReadOnlyError
from simsearch.data.corpus import Document
from simsearch.serving.engine import Engine

router = APIRouter()
WRITE_RESPONSES: dict[int | str, dict[str, str]] = {
    403: {"description": "Writes are off, or the key may not write here."},
    404: {"description": "No such collection."},
    409: {"description": "Read-only."},
}


def _write_response(result: WriteResult, started: float) -> WriteResponse:
    return WriteResponse(
        sequence=result.sequence,
        inserted=result.inserted,
        replaced=result.replaced,
        deleted=result.deleted,
        not_found=result.not_found,
        took_ms=round(1000 * (time.perf_counter() - started), 3),
    )


def _check_batch(eng: Engine, field: str, ids: Sequence[str]) -> None:
    limit = eng.settings.max_write_batch
    if len(ids) > limit:
        reject(("body", field), f"{len(ids)} items; the limit is {limit} (SIMSEARCH_MAX_WRITE_BATCH)", kind="too_long")
    first: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if doc_id in first:
            where = ("body", field, i, "id") if field == "documents" else ("body", field, i)
            reject(where, f"duplicate id {doc_id!r} (also item {first[doc_id]}): a batch names each id once")
        first[doc_id] = i


async def _upsert(body: UpsertRequest, request: Request, eng: Engine, name: str | None) -> WriteResponse:
    col = collection_of(eng, name)
    started = time.perf_counter()
    _check_batch(eng, "documents", [d.id for d in body.documents])
    check_lengths(eng.settings, [(("body", "documents", i, "text"), d.text) for i, d in enumerate(body.documents)])
    docs = [Document(id=d.id, text=d.text, title=d.title, metadata=d.metadata) for d in body.documents]
    try:
        result = await col.upsert(docs)
    except ReadOnlyError as exc:
        raise HTTPException(409, str(exc)) from None
    request.app.state.metrics.writes.labels(col.name, "upsert").inc(len(docs))
    eng.after_write(col)
    return _write_response(result, started)


async def _delete(body: DeleteRequest, request: Request, eng: Engine, name: str | None) -> WriteResponse:
    col = collection_of(eng, name)
    started = time.perf_counter()
    _check_batch(eng, "ids", body.ids)
    try:
        result = await col.delete(body.ids)
    except ReadOnlyError as exc:
        raise HTTPException(409, str(exc)) from None
    request.app.state.metrics.writes.labels(col.name, "delete").inc(len(result.deleted))
    eng.after_write(col)
    return _write_response(result, started)


async def _get(doc_id: str, eng: Engine, name: str | None) -> DocumentOut:
    col = collection_of(eng, name)
    doc = await col.get(doc_id)
    if doc is None:
        raise HTTPException(404, f"no document with id {doc_id!r} in collection {col.name!r}")
    return DocumentOut(id=doc.id, title=doc.title, text=doc.text, metadata=doc.metadata)


UPSERT_DOC = """Insert documents, or replace them by id, as one batch: all of them or none (a bad item is a 422
naming it). Durable and visible to the next search when answered."""
DELETE_DOC = "Delete documents by id as one batch; ids that are not there are listed in `not_found`."
GET_DOC = "One document by id, as the next search would see it (percent-encode `/`, `?`, `#`, `%` in the id)."
GET_RESPONSES: dict[int | str, dict[str, str]] = {404: {"description": "No such document, or no such collection."}}


@router.put(
    "/collections/{name}/documents",
    response_model=WriteResponse,
    tags=["documents"],
    responses=WRITE_RESPONSES,
    description=UPSERT_DOC,
    dependencies=[WRITE],
)
async def upsert_in(
    name: str, body: UpsertRequest, request: Request, eng: Annotated[Engine, Depends(engine)]
) -> WriteResponse:
    return await _upsert(body, request, eng, name)


@router.put(
    "/documents",
    response_model=WriteResponse,
    tags=["documents"],
    responses=WRITE_RESPONSES,
    description=UPSERT_DOC,
    dependencies=[WRITE],
)
async def upsert_documents(
    body: UpsertRequest, request: Request, eng: Annotated[Engine, Depends(engine)]
) -> WriteResponse:
    return await _upsert(body, request, eng, None)


@router.delete(
    "/collections/{name}/documents",
    response_model=WriteResponse,
    tags=["documents"],
    responses=WRITE_RESPONSES,
    description=DELETE_DOC,
    dependencies=[WRITE],
)
async def delete_in(
    name: str, body: DeleteRequest, request: Request, eng: Annotated[Engine, Depends(engine)]
) -> WriteResponse:
    return await _delete(body, request, eng, name)


@router.delete(
    "/documents",
    response_model=WriteResponse,
    tags=["documents"],
    responses=WRITE_RESPONSES,
    description=DELETE_DOC,
    dependencies=[WRITE],
)
async def delete_documents(
    body: DeleteRequest, request: Request, eng: Annotated[Engine, Depends(engine)]
) -> WriteResponse:
    return await _delete(body, request, eng, None)


@router.get(
    "/collections/{name}/documents/{doc_id:path}",
    response_model=DocumentOut,
    tags=["documents"],
    responses=GET_RESPONSES,
    description=GET_DOC,
    dependencies=[READ],
)
async def get_in(name: str, doc_id: str, eng: Annotated[Engine, Depends(engine)]) -> DocumentOut:
    return await _get(doc_id, eng, name)


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentOut,
    tags=["documents"],
    responses=GET_RESPONSES,
    description=GET_DOC,
    dependencies=[READ],
)
async def get_document(doc_id: str, eng: Annotated[Engine, Depends(engine)]) -> DocumentOut:
    return await _get(doc_id, eng, None)
