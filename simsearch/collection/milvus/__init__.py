"""The Milvus collection, one module per job: ``expressions`` (filters), ``codec`` (ids and keys),
``companion`` (records beside a collection), ``schema`` (its manifest and fields), ``collection`` (writes),
``view`` (what a search reads).

The Milvus collection: the interface of simsearch.collection.base on a Milvus server, a cluster
(``MilvusClient(uri="http://host:19530", token=...)``) or milvus-lite in-process (``MilvusClient("x.db")``).

One Milvus collection ``<name>`` holds the documents, one row each: the primary key (the document id,
hex-encoded UTF-8), ``title``, ``content`` (title and text, what BM25 and the models read), ``metadata``,
the filter columns (below), ``vector`` (FLAT or IVF_FLAT, inner product), ``sparse`` (filled by Milvus's
BM25 function from ``content``, a sparse inverted index) and, with CUR arrays, ``cur`` (the document's
column of E, FLAT inner product) and ``has_cur``. The schema's
description holds the model's hash and dimension (milvus-lite keeps no collection properties). A small
companion collection ``<name>__simsearch`` holds the rest: how the data was made, the write sequence, the
CUR anchors, U and anchor texts.

Keys: the primary key is the document id (hex: pymilvus 2.5 quotes ids into expressions without escaping
them), so Milvus's upsert replaces a document by id in the same request and no id-to-key table has to be
kept in step across writers. The search pipeline wants small ints: each view numbers the ids it meets
(:class:`~simsearch.collection.milvus.codec.KeyTable`), so keys never leave the view that made them.

Consistency: every read asks for ``Strong``: it waits until the query nodes hold every write acknowledged
before it began, whichever process wrote it. A view is not a snapshot: Milvus has had no reads at a past
time since 2.3, so each call of a view reads the collection as it is then; one search's hits are read with
their scores (or, for a deep fused list, by id right after: a document deleted in between is left out
of the hits, as if the search had started after the delete). A batch is one Milvus request, visible to
readers entirely or not at all.
"""

from simsearch.collection.milvus.codec import KeyTable, content_of, doc_id_of, document_of, pk
from simsearch.collection.milvus.collection import MilvusCollection
from simsearch.collection.milvus.companion import META_SUFFIX, MetaStore
from simsearch.collection.milvus.expressions import filter_columns, milvus_expression
from simsearch.collection.milvus.schema import (
    ANALYZER,
    CurData,
    DocumentGoneError,
    IndexType,
    MilvusCollectionError,
    MilvusIndexInfo,
    MilvusInfo,
    create_collection,
)
from simsearch.collection.milvus.view import MilvusView

__all__ = [
    "ANALYZER",
    "META_SUFFIX",
    "CurData",
    "DocumentGoneError",
    "IndexType",
    "KeyTable",
    "MetaStore",
    "MilvusCollection",
    "MilvusCollectionError",
    "MilvusIndexInfo",
    "MilvusInfo",
    "MilvusView",
    "content_of",
    "create_collection",
    "doc_id_of",
    "document_of",
    "filter_columns",
    "milvus_expression",
    "pk",
]
