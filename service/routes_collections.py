"""Collections as resources: list, create (``PUT``, idempotent), describe, delete, compact; and the models a
collection may name (``GET /models``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response

from service.access import ADMIN, READ, READ_ANY, WRITE, Principal, caller
from service.deps import collection_of, engine
from service.errors import reject
from simsearch.api.schemas import (
    CollectionCreated,
    CollectionDeleted,
    CollectionInfo,
    CollectionList,
    CollectionState,
    CompactResponse,
    LiveCounts,
    ModelDescription,
    ModelList,
    PassagesInUse,
)
from simsearch.api.spec import CollectionSpec
from simsearch.collection.base import CompactionError
from simsearch.collection.embedded import ReadOnlyError
from simsearch.collection.manager import CollectionNotFoundError
from simsearch.models.files import display_name
from simsearch.serving.collection import CollectionEngine
from simsearch.serving.engine import Engine, SpecConflictError, SpecError

router = APIRouter()


def states(eng: Engine, principal: Principal | None = None, *, everything: bool = True) -> list[CollectionState]:
    """Every collection the caller may see, loaded or not, with its cached counts (no store is asked)."""
    out = []
    for name in eng.names():
        if not everything and principal is not None and not principal.sees(name):
            continue
        col = eng.collections.get(name)
        if col is None:
            out.append(CollectionState(name=name, state="unavailable", reason=eng.failed.get(name)))
            continue
        rt = col.runtime
        out.append(
            CollectionState(
                name=name,
                state="ready",
                documents=col.counts.documents,
                model=rt.spec.model,
                backend=rt.collection.backend,
            )
        )
    return out


def live(col: CollectionEngine) -> LiveCounts:
    c = col.counts
    return LiveCounts(sequence=c.sequence, documents=c.documents, build_documents=c.base, uncompacted=c.uncompacted)


def describe(col: CollectionEngine) -> CollectionInfo:
    rt = col.runtime
    manifest = rt.collection.describe()
    folder = str(manifest.pop("folder", rt.name))
    models = {"bi": {"name": rt.bi.name, "folder": rt.bi.display, "sha256": rt.bi.sha256}}
    if rt.cross_model is not None:
        models["cross"] = {
            "name": rt.cross_model.name,
            "folder": rt.cross_model.display,
            "sha256": rt.cross_model.sha256,
        }
    return CollectionInfo(
        name=rt.name,
        backend=rt.collection.backend,
        spec=rt.spec,
        passages=None
        if (used := rt.splitter.spec) is None
        else PassagesInUse(tokens=used.tokens, overlap=used.overlap),
        folder=folder,
        build_id=rt.build_id,
        manifest=manifest,
        live=live(col),
        models=models,
        warnings=col.warnings(),
    )


@router.get("/collections", response_model=CollectionList, tags=["collections"])
async def list_collections(
    eng: Annotated[Engine, Depends(engine)], principal: Annotated[Principal, Depends(caller)]
) -> CollectionList:
    """The collections this key may read: name, state, documents, model. Collections another process made
    appear within a few seconds (or at once after `POST /admin/reload`)."""
    everything = principal.anonymous or all(g.collections is None for g in principal.grants)
    return CollectionList(collections=states(eng, principal, everything=everything))


@router.put(
    "/collections/{name}",
    response_model=CollectionCreated,
    status_code=201,
    tags=["collections"],
    responses={
        200: {"model": CollectionCreated, "description": "It exists with this specification."},
        409: {"description": "It exists with another specification (the fields named), or the limit is reached."},
        422: {"description": "A bad name, or a model that is not configured (the field named)."},
    },
    dependencies=[WRITE],
)
async def create_collection(
    name: str,
    response: Response,
    eng: Annotated[Engine, Depends(engine)],
    spec: Annotated[CollectionSpec | None, Body()] = None,
) -> CollectionCreated:
    """Create an empty collection from its specification (every field has a default: `{}` is enough);
    writes fill it. The specification is fixed: the same `PUT` again is a 200, another one a 409."""
    spec = spec or CollectionSpec()
    try:
        col, created = await eng.create(name, spec)
    except SpecError as exc:
        reject(("path", "name") if exc.field == "name" else ("body", exc.field), str(exc), kind="invalid")
    except SpecConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    if not created:
        response.status_code = 200
    return CollectionCreated(name=name, created=created, spec=col.runtime.spec)


@router.get(
    "/collections/{name}",
    response_model=CollectionInfo,
    tags=["collections"],
    responses={404: {"description": "No such collection."}},
    dependencies=[READ],
)
async def get_collection(name: str, eng: Annotated[Engine, Depends(engine)]) -> CollectionInfo:
    """Its specification, what its build recorded (model, index type and measured recall, fusion, CUR),
    live counts, and warnings."""
    return describe(collection_of(eng, name))


@router.delete(
    "/collections/{name}",
    response_model=CollectionDeleted,
    tags=["collections"],
    responses={404: {"description": "No such collection."}, 409: {"description": "The default collection."}},
    dependencies=[ADMIN],
)
async def delete_collection(name: str, eng: Annotated[Engine, Depends(engine)]) -> CollectionDeleted:
    """Delete a collection (admin): searches in flight finish, later requests get 404, and its files are
    removed when the last request reading them is done."""
    try:
        await eng.drop(name)
    except CollectionNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except SpecConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    return CollectionDeleted(name=name)


async def _compact(eng: Engine, name: str | None) -> CompactResponse:
    col = collection_of(eng, name)
    try:
        done = await col.compact()
    except (CompactionError, ReadOnlyError) as exc:
        raise HTTPException(409, str(exc)) from None
    return CompactResponse(**done)


COMPACT_DOC = "Fold the writes since the build into a new build now, and swap to it (no request fails meanwhile)."


@router.post(
    "/collections/{name}/compact",
    response_model=CompactResponse,
    tags=["collections"],
    description=COMPACT_DOC,
    dependencies=[ADMIN],
)
async def compact_collection(name: str, eng: Annotated[Engine, Depends(engine)]) -> CompactResponse:
    return await _compact(eng, name)


@router.post(
    "/admin/compact", response_model=CompactResponse, tags=["operations"], description=COMPACT_DOC, dependencies=[ADMIN]
)
async def compact_now(eng: Annotated[Engine, Depends(engine)]) -> CompactResponse:
    return await _compact(eng, None)


@router.post(
    "/collections/{name}/fusion",
    tags=["collections"],
    dependencies=[ADMIN],
    responses={409: {"description": "Too few documents to measure on, or a read-only replica."}},
)
async def fit_collection_fusion(name: str, eng: Annotated[Engine, Depends(engine)]) -> dict[str, Any]:
    """Choose how `hybrid` fuses for this collection without judgments: the candidates (dense only, lexical
    only, RRF, convex α) are scored on self-supervised queries drawn from its documents; the choice and its
    figures are recorded with the collection and used at once. About a minute on 2 cores."""
    col = collection_of(eng, name)
    try:
        info = await col.fit_fusion()
    except ReadOnlyError as exc:
        raise HTTPException(409, str(exc)) from None
    if info is None:
        raise HTTPException(409, f"collection {name!r} has too few documents of several sentences to measure on")
    return info.model_dump(mode="json")


@router.get("/models", response_model=ModelList, tags=["collections"], dependencies=[READ_ANY])
async def models(request: Request, eng: Annotated[Engine, Depends(engine)]) -> ModelList:
    """The models collections and `/similarity` may name: kind, folder name, languages, prefixes."""
    loaded = {m.name for m in eng.registry.loaded()}
    return ModelList(
        models=[
            ModelDescription(
                name=name,
                kind=entry.kind,
                folder=display_name(entry.path),
                languages=entry.languages,
                query_prefix=entry.query_prefix,
                document_prefix=entry.document_prefix,
                loaded=name in loaded,
            )
            for name, entry in sorted(eng.registry.entries.items())
        ]
    )


# registered last (service.app): a path under /collections that no route above matched holds a name with
# a '/' (sent as %2F, or a "..") or is a route that does not exist: say which, never a bare 404
@router.api_route("/collections/{rest:path}", methods=["GET", "PUT", "POST", "DELETE"], include_in_schema=False)
async def no_such_route(rest: str) -> None:
    reject(("path", "name"), f"{rest!r} is not a collection name (1-64 ASCII letters, digits, '-' or '_')", rest)
