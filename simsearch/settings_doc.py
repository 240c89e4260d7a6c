"""The configuration reference (``docs/configuration.md``), generated from :class:`~simsearch.settings.Settings`
so that it cannot drift from the code: ``python -m simsearch.settings_doc > docs/configuration.md``
(a test compares the two)."""

from __future__ import annotations

import sys
from typing import Any

from pydantic_core import PydanticUndefined

from simsearch.settings import Settings

# where each group starts, in the class's field order
GROUPS = {
    "bi_model": "Models",
    "data_dir": "Data and indexes",
    "host": "Serving",
    "log_level": "Security and operations",
}
# defaults that are computed, said in words
DEFAULT_WORDS = {
    "bi_model": "the packaged all-MiniLM-L6-v2",
    "torch_threads": "torch's default (the cores)",
    "model_streams": "2 (1 on one core)",
}

HEADER = """# Configuration

One `pydantic-settings` class, `simsearch/settings.py`: every value comes from an environment variable
with the prefix `SIMSEARCH_`, or from a `.env` file in the working directory. It is validated at start:
an invalid value stops the service (and every job) with one line naming it. Command-line options of the
jobs override it. `HF_HUB_OFFLINE=1` is set by the Makefile and the image: models load from local
folders only. Secret values (keys, tokens) are never printed. One variable outside the prefix: the
service sets `GOMP_SPINCOUNT=10000` (how long torch's idle OpenMP workers spin before they sleep) unless
it is already set; a lone torch request is faster with it on 2 cores (see `service/__init__.py`).

This page is generated from the class (`python -m simsearch.settings_doc > docs/configuration.md`);
a test keeps the two in step."""


def _default(name: str, field: Any) -> str:
    if name in DEFAULT_WORDS:
        return DEFAULT_WORDS[name]
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, list | tuple | dict) and not value:
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return "empty"
    return f"`{value}`"


def render() -> str:
    lines = [HEADER]
    for name, field in Settings.model_fields.items():
        if name in GROUPS:
            lines += ["", f"## {GROUPS[name]}", "", "| variable | default | meaning |", "| --- | --- | --- |"]
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `SIMSEARCH_{name.upper()}` | {_default(name, field)} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
