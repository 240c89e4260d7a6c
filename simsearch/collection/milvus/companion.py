"""The companion collection ``<name>__simsearch``: text records beside a Milvus collection (how it was
made, its write sequence, its CUR arrays), since milvus-lite keeps no collection properties."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np

META_SUFFIX = "__simsearch"


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text: str) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False))


class MetaStore:
    """Text records beside a collection, in ``<name>__simsearch`` (key, text in chunks of at most 16,000
    characters: VARCHAR holds 64 KB). Milvus wants a vector field in every collection: a 2-d zero vector."""

    CHUNK = 16_000

    def __init__(self, client: Any, collection: str) -> None:
        self.client = client
        self.name = collection + META_SUFFIX

    def create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="simsearch")
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("value", DataType.VARCHAR, max_length=65_535)
        schema.add_field("parts", DataType.INT64)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.name, schema=schema, index_params=index, consistency_level="Strong")

    def put(self, records: dict[str, str]) -> None:
        rows = []
        for key, text in records.items():
            chunks = [text[i : i + self.CHUNK] for i in range(0, len(text), self.CHUNK)] or [""]
            rows += [
                {"key": key if i == 0 else f"{key}#{i}", "value": c, "parts": len(chunks), "v": [0.0, 0.0]}
                for i, c in enumerate(chunks)
            ]
        self.client.upsert(self.name, rows)

    def get(self, key: str) -> str | None:
        rows = self.client.query(
            self.name, filter=f'key == "{key}"', output_fields=["value", "parts"], consistency_level="Strong"
        )
        if not rows:
            return None
        parts = int(rows[0]["parts"])
        if parts == 1:
            return str(rows[0]["value"])
        rest = [f"{key}#{i}" for i in range(1, parts)]
        found = self.client.query(
            self.name, filter=f"key in {json.dumps(rest)}", output_fields=["value"], consistency_level="Strong"
        )
        by_key = {r["key"]: r["value"] for r in found}
        return str(rows[0]["value"]) + "".join(by_key[k] for k in rest)
