"""The layout's rules, checked on the source: who may import whom, and one owner per file name."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.common import ROOT

# package -> the first-party packages it may import (besides itself)
ALLOWED = {
    "simsearch": set(),
    "training": {"simsearch"},
    "service": {"simsearch"},
    "bench": {"simsearch", "training"},
}
FIRST_PARTY = {"simsearch", "training", "service", "bench", "tests"}
CORE_FORBIDDEN = {"fastapi", "starlette", "uvicorn", "argparse"}  # the core knows neither HTTP nor CLIs


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_back_edges_between_the_layers() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            used = imports(path)
            bad = (used & FIRST_PARTY) - allowed - {package}
            if package == "simsearch":
                bad |= used & CORE_FORBIDDEN
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not problems, "\n".join(problems)


def test_each_format_file_name_has_one_owner() -> None:
    names = ['"manifest.json"', '"docs.sqlite"', '"embeddings.npy"', '"index.faiss"', '"vectors.npy"']
    owners: dict[str, list[str]] = {n: [] for n in names}
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for n in names:
                if n in text:
                    owners[n].append(str(path.relative_to(ROOT)))
    assert all(len(files) == 1 for files in owners.values()), owners
