"""Everything the service holds in memory, loaded from settings in one call.

Start-up problems (a missing model, a missing, corrupt or mismatched index) become one
:class:`StartupError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from simsearch.cross import CrossScorer
from simsearch.encoders import BiEncoder, ModelLoadError
from simsearch.index_folder import IndexLoadError, LoadedIndex, open_index
from simsearch.search import Searcher
from simsearch.settings import Settings

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot start with these settings."""


@dataclass(frozen=True)
class Threads:
    """How the models use the cores: ``alone`` intra-op threads for a batch that has the machine to itself,
    ``shared`` for each of ``streams`` batches running at once (see simsearch.batching)."""

    alone: int
    shared: int
    streams: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        alone = settings.torch_threads or cores
        streams = settings.model_streams or (2 if alone >= 2 else 1)
        return cls(alone=alone, shared=max(1, alone // streams), streams=streams)

    def count(self, alone: bool) -> int:
        """Intra-op threads for a batch that runs alone, or as one of the streams."""
        return self.alone if alone else self.shared


@dataclass
class Runtime:
    settings: Settings
    encoder: BiEncoder
    index: LoadedIndex
    searcher: Searcher
    cross: CrossScorer | None = None
    threads: Threads = Threads(alone=1, shared=1, streams=1)

    def close(self) -> None:
        self.index.close()


def load_encoder(settings: Settings) -> BiEncoder:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    try:
        return BiEncoder.load(
            settings.bi_model,
            device=settings.device,
            batch_size=settings.encode_batch_size,
            backend=settings.backend,
            threads=Threads.from_settings(settings).alone,  # the default session is the one a lone batch uses
        )
    except ModelLoadError as exc:
        raise StartupError(f"{exc} (setting SIMSEARCH_BI_MODEL)") from None


def load_cross(settings: Settings) -> CrossScorer | None:
    if not settings.cross_model:
        return None
    try:
        return CrossScorer.load(
            settings.cross_model,
            device=settings.device,
            batch_size=settings.encode_batch_size,
            backend=settings.backend,
            threads=Threads.from_settings(settings).alone,
        )
    except ModelLoadError as exc:
        raise StartupError(f"{exc} (setting SIMSEARCH_CROSS_MODEL)") from None


def load_runtime(settings: Settings) -> Runtime:
    """Open the index first (cheap, and the likelier thing to be wrong), then the model."""
    try:
        index = open_index(settings.index_path, verify=settings.verify_checksums)
    except IndexLoadError as exc:
        raise StartupError(str(exc)) from None
    try:
        encoder = load_encoder(settings)
        cross = load_cross(settings)
        searcher = Searcher(encoder, index, query_prefix=settings.query_prefix, cross=cross)
    except (StartupError, IndexLoadError) as exc:
        index.close()
        raise StartupError(str(exc)) from None
    threads = Threads.from_settings(settings)
    # the first forward pass is slow (and an ONNX session per thread count is made on first use): pay it
    # before the first request, for both ways a batch can run
    searcher.search(["warm-up"], 1)
    for n in sorted({threads.shared, threads.alone}):  # alone last: the calling thread keeps all threads
        encoder.encode(["warm-up"], threads=n)
        if cross is not None:
            cross.score([("warm-up", "warm-up")], threads=n)
    log.info(
        "loaded index %s (%d documents, %s) and model %s",
        index.name,
        index.manifest.count,
        index.manifest.index.type,
        encoder.path,
    )
    return Runtime(settings=settings, encoder=encoder, index=index, searcher=searcher, cross=cross, threads=threads)
