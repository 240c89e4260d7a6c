"""The Python client: one method per operation of the HTTP API, typed with the service's own wire schemas
(simsearch.api), on httpx. ``Client`` is synchronous, ``AsyncClient`` the same methods awaited.

    from simsearch.client import Client

    with Client("http://127.0.0.1:8000", key="...") as client:
        client.create_collection("notes", model="default")
        client.upsert("notes", [{"id": "n1", "text": "Volcanic ash over the valley", "metadata": {"year": 2024}}])
        for hit in client.search("notes", "ash cloud", k=3, mode="hybrid").hits:
            print(hit.id, hit.score)

Every refusal raises :class:`SimsearchError`: its ``status`` is the HTTP code and its message the
service's one-line ``message`` (the field and the problem). Only requests and responses travel: the
client imports no model, no index and no FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from simsearch.api.schemas import (
    CollectionCreated,
    CollectionDeleted,
    CollectionInfo,
    CollectionList,
    CollectionState,
    CompactResponse,
    DeleteRequest,
    DocumentIn,
    DocumentOut,
    ModelList,
    ReadyResponse,
    SearchRequest,
    SearchResponse,
    SimilarityRequest,
    SimilarityResponse,
    UpsertRequest,
    WriteResponse,
)
from simsearch.api.spec import CollectionSpec

M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"


class SimsearchError(Exception):
    """The service refused a request: ``status`` is the HTTP code, the message the service's ``message``."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class _Call:
    """One request, described once for both clients."""

    method: str
    path: str
    body: BaseModel | dict[str, Any] | None = None
    expect: type[BaseModel] | None = None


def _checked(build: Any, *args: Any) -> Any:
    """A request body built here, or the :class:`SimsearchError` (422) the service would have answered,
    worded the same way (``body.<field>: <problem>``): a bad request fails before it is sent."""
    try:
        return build(*args)
    except ValidationError as exc:
        parts = [
            f"body.{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise SimsearchError(422, "; ".join(parts), exc.errors(include_url=False)) from None


def _path(collection: str | None, rest: str) -> str:
    """``/collections/{name}<rest>``, or ``<rest>`` for the default collection (``None``)."""
    return rest if collection is None else f"/collections/{quote(collection, safe='')}{rest}"


def _documents(documents: Iterable[DocumentIn | Mapping[str, Any]]) -> UpsertRequest:
    rows = [d.model_dump(exclude_unset=True) if isinstance(d, DocumentIn) else dict(d) for d in documents]
    return UpsertRequest.model_validate({"documents": rows})


def _spec(spec: CollectionSpec | Mapping[str, Any] | None, fields: dict[str, Any]) -> CollectionSpec:
    if isinstance(spec, CollectionSpec):
        return spec.model_copy(update=fields) if fields else spec
    return CollectionSpec.model_validate({**dict(spec or {}), **fields})


def _search(query: str, params: dict[str, Any]) -> SearchRequest:
    return SearchRequest.model_validate({"query": query, **{k: v for k, v in params.items() if v is not None}})


def _result(response: httpx.Response, expect: type[M] | None) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            message, detail = str(body.get("message") or body.get("detail")), body.get("detail")
        except ValueError:
            message, detail = response.text or response.reason_phrase, None
        raise SimsearchError(response.status_code, message, detail)
    if expect is None:
        return response.json()
    return expect.model_validate(response.json())


def _payload(body: BaseModel | dict[str, Any] | None) -> Any:
    if body is None:
        return None
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_unset=True)
    return body


class _Operations:
    """The operations as :class:`_Call` descriptions (what each method sends and reads back)."""

    @staticmethod
    def create_collection(name: str, spec: CollectionSpec) -> _Call:
        return _Call("PUT", _path(name, ""), spec.model_dump(mode="json"), CollectionCreated)

    @staticmethod
    def list_collections() -> _Call:
        return _Call("GET", "/collections", None, CollectionList)

    @staticmethod
    def get_collection(name: str) -> _Call:
        return _Call("GET", _path(name, ""), None, CollectionInfo)

    @staticmethod
    def delete_collection(name: str) -> _Call:
        return _Call("DELETE", _path(name, ""), None, CollectionDeleted)

    @staticmethod
    def upsert(collection: str | None, body: UpsertRequest) -> _Call:
        return _Call("PUT", _path(collection, "/documents"), body, WriteResponse)

    @staticmethod
    def delete(collection: str | None, ids: Sequence[str]) -> _Call:
        return _Call("DELETE", _path(collection, "/documents"), DeleteRequest(ids=list(ids)), WriteResponse)

    @staticmethod
    def get(collection: str | None, doc_id: str) -> _Call:
        return _Call("GET", _path(collection, f"/documents/{quote(doc_id, safe='')}"), None, DocumentOut)

    @staticmethod
    def search(collection: str | None, body: SearchRequest) -> _Call:
        return _Call("POST", _path(collection, "/search"), body, SearchResponse)

    @staticmethod
    def similarity(body: SimilarityRequest) -> _Call:
        return _Call("POST", "/similarity", body, SimilarityResponse)

    @staticmethod
    def compact(collection: str | None) -> _Call:
        return _Call("POST", _path(collection, "/compact") if collection else "/admin/compact", None, CompactResponse)

    @staticmethod
    def models() -> _Call:
        return _Call("GET", "/models", None, ModelList)

    @staticmethod
    def ready() -> _Call:
        return _Call("GET", "/ready", None, ReadyResponse)


def _similarity(
    pairs: Sequence[tuple[str, str]] | None, source: str | None, targets: Sequence[str] | None, model: str
) -> SimilarityRequest:
    return SimilarityRequest(
        pairs=[list(p) for p in pairs] if pairs is not None else None,
        source=source,
        targets=list(targets) if targets is not None else None,
        model=model,
    )


def _headers(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


class Client:
    """A synchronous client. ``key``: the Bearer key (read, write or admin, as the call needs);
    ``http``: an ``httpx.Client``-like object to send through instead of a new one (Starlette's
    ``TestClient`` in tests; the key is then sent with each request)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str | None = None,
        timeout: float = 60.0,
        http: Any = None,
    ) -> None:
        self._headers = _headers(key)
        self._owned = http is None  # a client given to us is closed by whoever made it
        self._http = http if http is not None else httpx.Client(base_url=url, timeout=timeout)

    def _do(self, call: _Call) -> Any:
        response = self._http.request(call.method, call.path, json=_payload(call.body), headers=self._headers)
        return _result(response, call.expect)

    def create_collection(
        self, name: str, spec: CollectionSpec | Mapping[str, Any] | None = None, **fields: Any
    ) -> CollectionCreated:
        """Create an empty collection (``spec`` or fields such as ``model=``, ``cross=``); the same
        specification again returns ``created=False``, another raises :class:`SimsearchError` (409)."""
        return self._do(_Operations.create_collection(name, _checked(_spec, spec, fields)))

    def list_collections(self) -> list[CollectionState]:
        return self._do(_Operations.list_collections()).collections

    def get_collection(self, name: str) -> CollectionInfo:
        return self._do(_Operations.get_collection(name))

    def delete_collection(self, name: str) -> CollectionDeleted:
        return self._do(_Operations.delete_collection(name))

    def upsert(self, collection: str | None, documents: Iterable[DocumentIn | Mapping[str, Any]]) -> WriteResponse:
        """Insert or replace documents (``{"id", "text", "title", "metadata"}``) as one batch."""
        return self._do(_Operations.upsert(collection, _checked(_documents, documents)))

    def delete(self, collection: str | None, ids: Sequence[str]) -> WriteResponse:
        return self._do(_checked(_Operations.delete, collection, ids))

    def get(self, collection: str | None, doc_id: str) -> DocumentOut:
        """One document (a 404 :class:`SimsearchError` when there is none)."""
        return self._do(_Operations.get(collection, doc_id))

    def search(self, collection: str | None, query: str, **params: Any) -> SearchResponse:
        """``params``: ``k``, ``mode``, ``filter``, ``k_r``, ``candidates``, ``fusion``, ``rerank_weight``."""
        return self._do(_Operations.search(collection, _checked(_search, query, params)))

    def similarity(
        self,
        pairs: Sequence[tuple[str, str]] | None = None,
        *,
        source: str | None = None,
        targets: Sequence[str] | None = None,
        model: str = "bi",
    ) -> SimilarityResponse:
        return self._do(_Operations.similarity(_checked(_similarity, pairs, source, targets, model)))

    def compact(self, collection: str | None) -> CompactResponse:
        return self._do(_Operations.compact(collection))

    def models(self) -> ModelList:
        return self._do(_Operations.models())

    def ready(self) -> ReadyResponse:
        response = self._http.get("/ready", headers=self._headers)
        return ReadyResponse.model_validate(response.json())

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same operations as :class:`Client`, for asyncio."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str | None = None,
        timeout: float = 60.0,
        http: Any = None,
    ) -> None:
        self._headers = _headers(key)
        self._owned = http is None
        self._http = http if http is not None else httpx.AsyncClient(base_url=url, timeout=timeout)

    async def _do(self, call: _Call) -> Any:
        response = await self._http.request(call.method, call.path, json=_payload(call.body), headers=self._headers)
        return _result(response, call.expect)

    async def create_collection(
        self, name: str, spec: CollectionSpec | Mapping[str, Any] | None = None, **fields: Any
    ) -> CollectionCreated:
        return await self._do(_Operations.create_collection(name, _checked(_spec, spec, fields)))

    async def list_collections(self) -> list[CollectionState]:
        return (await self._do(_Operations.list_collections())).collections

    async def get_collection(self, name: str) -> CollectionInfo:
        return await self._do(_Operations.get_collection(name))

    async def delete_collection(self, name: str) -> CollectionDeleted:
        return await self._do(_Operations.delete_collection(name))

    async def upsert(
        self, collection: str | None, documents: Iterable[DocumentIn | Mapping[str, Any]]
    ) -> WriteResponse:
        return await self._do(_Operations.upsert(collection, _checked(_documents, documents)))

    async def delete(self, collection: str | None, ids: Sequence[str]) -> WriteResponse:
        return await self._do(_checked(_Operations.delete, collection, ids))

    async def get(self, collection: str | None, doc_id: str) -> DocumentOut:
        return await self._do(_Operations.get(collection, doc_id))

    async def search(self, collection: str | None, query: str, **params: Any) -> SearchResponse:
        return await self._do(_Operations.search(collection, _checked(_search, query, params)))

    async def similarity(
        self,
        pairs: Sequence[tuple[str, str]] | None = None,
        *,
        source: str | None = None,
        targets: Sequence[str] | None = None,
        model: str = "bi",
    ) -> SimilarityResponse:
        call = _Operations.similarity(_checked(_similarity, pairs, source, targets, model))
        return await self._do(call)

    async def compact(self, collection: str | None) -> CompactResponse:
        return await self._do(_Operations.compact(collection))

    async def models(self) -> ModelList:
        return await self._do(_Operations.models())

    async def ready(self) -> ReadyResponse:
        response = await self._http.get("/ready", headers=self._headers)
        return ReadyResponse.model_validate(response.json())

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
