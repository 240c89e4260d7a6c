"""Where collections live, as resources: list, create (empty), open and remove them, in the embedded store
(folders under ``SIMSEARCH_INDEX_DIR``) or in Milvus. No models and no asyncio here: the serving layer
(simsearch.serving) pairs an opened collection with its models.

Creating and removing are safe against ``kill -9`` at any point:

- **create** publishes an empty build through the same staged folder and atomic rename as every build
  (embedded), or writes the companion record last (Milvus): killed before, there is no collection and the
  leftovers are removed at the next start; after, a complete one.
- **remove** first moves the collection's published link into a trash folder ``.deleted-<name>@<id>/``
  (one rename: from then on the collection does not exist for anyone), then its builds and write log.
  The files are deleted by the finisher it returns, which the service calls once the last request reading
  them is done; a trash folder left by a killed process is emptied at the next start (:meth:`recover`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from simsearch.api.spec import CollectionSpec
from simsearch.atomic import fsync_dir
from simsearch.collection.base import Collection
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.index import layout
from simsearch.index.build import create_empty
from simsearch.index.manifest import ModelInfo
from simsearch.index.publish import build_lock

log = logging.getLogger(__name__)
TRASH_PREFIX = ".deleted-"


class CollectionExistsError(FileExistsError):
    """A create of a name that is taken."""


class CollectionNotFoundError(LookupError):
    """No collection of this name."""

    def __str__(self) -> str:
        return str(self.args[0])


class Store(Protocol):
    backend: str

    def names(self) -> list[str]:
        """The collections present now, sorted."""
        ...

    def exists(self, name: str) -> bool: ...

    def create(self, name: str, spec: CollectionSpec, model: ModelInfo) -> None:
        """An empty collection; :class:`CollectionExistsError` when the name is taken."""
        ...

    def open(self, name: str, *, writable: bool) -> Collection: ...

    def remove(self, name: str) -> Callable[[], None]:
        """Make the collection disappear now (atomically) and return what deletes its data for good."""
        ...

    def recover(self) -> list[str]:
        """Finish what killed processes left half-done (removals, creates); return what was cleaned."""
        ...


class EmbeddedStore:
    """Collections as build folders under one root (simsearch.index.layout)."""

    backend = "embedded"

    def __init__(self, root: Path, *, verify: bool = True) -> None:
        self.root = Path(root)
        self.verify = verify

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if "@" not in p.name and not p.name.startswith(".") and (p / layout.MANIFEST_FILE).is_file()
        )

    def exists(self, name: str) -> bool:
        link = self.root / name
        return link.exists() or link.is_symlink()

    def create(self, name: str, spec: CollectionSpec, model: ModelInfo) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._finish_trash(name)  # a removal of this name a killed process left half-done
        try:
            create_empty(self.root, name, model, spec)
        except FileExistsError:
            raise CollectionExistsError(f"collection {name!r} exists") from None

    def open(self, name: str, *, writable: bool) -> Collection:
        if not self.exists(name):
            raise CollectionNotFoundError(f"no collection named {name!r} in {self.root}")
        return EmbeddedCollection.open(self.root / name, verify=self.verify, writable=writable)

    def remove(self, name: str) -> Callable[[], None]:
        link = self.root / name
        with build_lock(self.root, name):
            if not (link.exists() or link.is_symlink()):
                raise CollectionNotFoundError(f"no collection named {name!r}")
            trash = self.root / f"{TRASH_PREFIX}{name}@{secrets.token_hex(4)}"
            trash.mkdir()
            os.replace(link, trash / name)  # the commit point: the collection is gone for every reader
            fsync_dir(self.root)
            self._move_into(trash, name)
        return lambda: shutil.rmtree(trash, ignore_errors=True)

    def _move_into(self, trash: Path, name: str) -> None:
        """The builds and the write log of ``name`` (which no longer has a link) into ``trash``."""
        log_file = layout.write_log(self.root, name)
        leftovers = [*layout.builds(self.root, name), *self.root.glob(f"{log_file.name}*")]
        for path in leftovers:
            os.replace(path, trash / path.name)
        fsync_dir(self.root)

    def _finish_trash(self, name: str | None = None) -> list[str]:
        done = []
        pattern = f"{TRASH_PREFIX}{name}@*" if name else f"{TRASH_PREFIX}*@*"
        for trash in sorted(self.root.glob(pattern)):
            gone = trash.name[len(TRASH_PREFIX) :].rsplit("@", 1)[0]
            if not self.exists(gone):  # builds a killed removal had not moved yet
                self._move_into(trash, gone)
            shutil.rmtree(trash, ignore_errors=True)
            done.append(gone)
        return done

    def recover(self) -> list[str]:
        if not self.root.is_dir():
            return []
        done = self._finish_trash()
        for name in done:
            log.warning("finished removing collection %s (a removal was interrupted)", name)
        return done


def milvus_name(name: str) -> str:
    """A collection's Milvus name: ``ss_`` then the name with ``_`` written ``_u`` and ``-`` written ``_h``
    (Milvus names hold letters, digits and ``_`` only). One-to-one, so ``a-b`` and ``a_b`` never meet, and
    never ``__``, so never a companion's ``__simsearch``."""
    return "ss_" + re.sub(r"[_-]", lambda m: "_u" if m.group() == "_" else "_h", name)


class MilvusStore:
    """Collections in one Milvus (a server, or milvus-lite's file), each with its companion records. A
    collection created here has the Milvus name :func:`milvus_name`; one copied in by ``training.to_milvus``
    keeps its own, and its API name is the one its records hold."""

    backend = "milvus"

    def __init__(self, client: Any, uri: str, *, fixed: dict[str, str] | None = None) -> None:
        self.client = client
        self.uri = uri
        self.fixed = dict(fixed or {})  # API name -> Milvus name, given by the settings (the default collection)

    def _table(self) -> dict[str, str]:
        """API name -> Milvus name of every collection with complete records."""
        from simsearch.collection.milvus import META_SUFFIX, MetaStore, MilvusInfo

        present = set(self.client.list_collections())
        out = {}
        for meta in sorted(c for c in present if c.endswith(META_SUFFIX)):
            milvus = meta[: -len(META_SUFFIX)]
            if milvus not in present:
                continue
            raw = MetaStore(self.client, milvus).get("info")
            if raw is None:
                continue
            info = MilvusInfo.model_validate_json(raw)
            if MetaStore(self.client, milvus).get("deleting") is not None:
                continue
            out[info.collection or milvus] = milvus
        for api, milvus in self.fixed.items():
            if milvus in present:
                out[api] = milvus
        return out

    def names(self) -> list[str]:
        return sorted(self._table())

    def exists(self, name: str) -> bool:
        return name in self._table() or self.client.has_collection(milvus_name(name))

    def create(self, name: str, spec: CollectionSpec, model: ModelInfo) -> None:
        from simsearch.collection.milvus import MilvusCollectionError, MilvusIndexInfo, MilvusInfo, create_collection

        if self.exists(name):
            raise CollectionExistsError(f"collection {name!r} exists")
        kinds = {"auto": "FLAT", "flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}
        index = MilvusIndexInfo(type=kinds[spec.index], nlist=128 if spec.index == "ivf" else None)
        info = MilvusInfo(name=milvus_name(name), model=model, index=index, spec=spec, collection=name)
        try:
            create_collection(self.client, info, uri=self.uri)  # the companion's info record is written last
        except MilvusCollectionError as exc:
            raise CollectionExistsError(str(exc)) from None

    def open(self, name: str, *, writable: bool) -> Collection:
        from simsearch.collection.milvus import MilvusCollection

        milvus = self._table().get(name)
        if milvus is None and name in self.fixed:
            raise CollectionNotFoundError(
                f"Milvus collection {self.fixed[name]!r} does not exist at {self.uri}: copy the index into it with "
                f"`python -m training.to_milvus --index {name} --collection {self.fixed[name]}` (setting "
                "SIMSEARCH_MILVUS_COLLECTION)"
            )
        if milvus is None:
            raise CollectionNotFoundError(f"no collection named {name!r}")
        return MilvusCollection(self.client, milvus, uri=self.uri, writable=writable, api_name=name)

    def remove(self, name: str) -> Callable[[], None]:
        from simsearch.collection.milvus import MetaStore

        milvus = self._table().get(name)
        if milvus is None:
            raise CollectionNotFoundError(f"no collection named {name!r}")
        MetaStore(self.client, milvus).put({"deleting": "1"})  # gone for readers; recover() finishes it

        def finish() -> None:
            self._drop(milvus)

        return finish

    def _drop(self, milvus: str) -> None:
        from simsearch.collection.milvus import META_SUFFIX

        for part in (milvus, milvus + META_SUFFIX):
            if self.client.has_collection(part):
                self.client.drop_collection(part)

    def recover(self) -> list[str]:
        """Drop collections whose removal was interrupted, and collections this store began to create
        (``ss_`` names) whose records were never completed."""
        from simsearch.collection.milvus import META_SUFFIX, MetaStore

        present = set(self.client.list_collections())
        done = []
        for name in sorted(present):
            if name.endswith(META_SUFFIX):
                continue
            meta = MetaStore(self.client, name)
            complete = name + META_SUFFIX in present and meta.get("info") is not None
            if (complete and meta.get("deleting") is not None) or (not complete and name.startswith("ss_")):
                self._drop(name)
                done.append(name)
        for name in sorted(present):  # a companion whose collection is gone
            if name.endswith(META_SUFFIX) and name[: -len(META_SUFFIX)] not in present:
                self.client.drop_collection(name)
        return done
