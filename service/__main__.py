"""Serve the API:  python -m service [--build-from CORPUS]

Loads the model and index before binding the port, so a bad configuration ends with one message and
exit code 2 instead of a traceback. ``--build-from`` builds the configured index from a corpus first
when it does not exist yet (the demo does this on its first start).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from service import logs
from service.app import create_app
from service.protocol import protocol_with
from simsearch.api.spec import CollectionSpec
from simsearch.cli import fail, settings_with
from simsearch.data.corpus import CorpusError
from simsearch.evaluation.fusion_fit import UnjudgedFit, fusion_at_build
from simsearch.index.build import build_index, splitter_for
from simsearch.models.registry import DEFAULT
from simsearch.search import DirectModels
from simsearch.serving.batching import on_passing_thread
from simsearch.serving.runtime import StartupError, load_runtime, registry_for
from simsearch.settings import Settings


def build_demo(settings: Settings, corpus: Path) -> None:
    """Build the missing index from a BEIR folder, and fit hybrid fusion when it has train judgements."""
    logging.getLogger("simsearch").warning("index %s is missing: building it from %s", settings.index_path, corpus)
    assert settings.index_name is not None
    model = registry_for(settings).bi(DEFAULT)
    spec = CollectionSpec(model=DEFAULT)
    build_index(
        corpus,
        model.model,
        settings.index_dir,
        settings.index_name,
        document_prefix=model.entry.document_prefix,
        model_name=DEFAULT,
        spec=spec,
        # a BEIR folder with train judgements: hybrid search's fusion is measured on them (about a minute)
        finish=fusion_at_build(
            corpus,
            DirectModels(model.model),
            query_prefix=model.entry.query_prefix,
            unjudged=UnjudgedFit(
                model.model.encode,
                splitter_for(model.model, spec, model.entry.document_prefix),
                model.entry.query_prefix,
                model.entry.document_prefix,
            ),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", help="default: SIMSEARCH_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, help="default: SIMSEARCH_PORT (8000)")
    p.add_argument("--index-name", help="default: SIMSEARCH_INDEX_NAME")
    p.add_argument(
        "--build-from", type=Path, metavar="CORPUS", help="build the index from this corpus first if it does not exist"
    )
    args = p.parse_args(argv)
    settings = settings_with(host=args.host, port=args.port, index_name=args.index_name)
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.build_from and settings.index_name and not settings.index_path.exists():
            on_passing_thread(build_demo, settings, args.build_from)  # its torch threads end with it
        runtime = load_runtime(settings) if settings.index_name else None
    except (StartupError, CorpusError, FileNotFoundError) as exc:
        fail(f"cannot start: {exc}")
    uvicorn.run(
        create_app(settings, runtime=runtime),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # service.logs configured the handlers
        access_log=False,  # the request middleware writes one JSON line per request
        timeout_keep_alive=settings.keep_alive_s,
        http=protocol_with(settings.header_timeout_s),  # idle sockets are closed, and never count as requests
        timeout_graceful_shutdown=int(settings.request_timeout_s),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
