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


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env``, with the command line's non-``None`` values on top."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail(f"invalid settings: {validation_message(exc)}")
