"""The naive baseline for bench.serve: one request, one encode, one FAISS search; no batching.

SIMSEARCH_INDEX_NAME=scifact uvicorn bench.naive_app:app --port 8001
"""

import faiss
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

from simsearch.ann import FaissIndex
from simsearch.models.files import default_bi_model
from simsearch.settings import Settings

settings = Settings()
model = SentenceTransformer(default_bi_model(), device="cpu")
index = faiss.read_index(str(settings.index_path / FaissIndex.filename))
app = FastAPI()


class Search(BaseModel):
    query: str
    k: int = 10


class Similarity(BaseModel):
    source: str
    targets: list[str]


@app.post("/search")
def search(body: Search) -> dict:
    scores, ids = index.search(model.encode([body.query], normalize_embeddings=True), body.k)
    return {"ids": ids[0].tolist(), "scores": scores[0].tolist()}


@app.post("/similarity")
def similarity(body: Similarity) -> dict:
    v = model.encode([body.source, *body.targets], normalize_embeddings=True)
    return {"scores": (v[1:] @ v[0]).tolist()}
