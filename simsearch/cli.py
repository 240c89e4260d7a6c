"""What every job's command line shares: settings with command-line overrides, and clean failures."""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from simsearch.settings import Settings


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def setting_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A settings error's location as the variable people set: ``SIMSEARCH_WRITE_KEYS``, then any part
    inside it (``SIMSEARCH_MODELS.e5.path``)."""
    if not loc:
        return "settings"
    head, *rest = (str(p) for p in loc)
    return ".".join([f"SIMSEARCH_{head.upper()}", *rest])


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{setting_name(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env``, with the command line's non-``None`` values on top."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail(f"invalid settings: {validation_message(exc)}")
