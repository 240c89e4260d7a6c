"""Prometheus metrics, one registry per app (so several apps in one process, as in tests, stay apart)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "simsearch_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "simsearch_request_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "simsearch_batch_size", "Items per batched model call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batches = Counter(
            "simsearch_batches",
            "Batched model calls by how they ran: alone on every thread, or shared (one of several streams)",
            ["model", "run"],
            registry=r,
        )
        self.model_seconds = Counter(
            "simsearch_model_seconds",
            "Seconds spent in batched model calls, summed over streams (divide its rate by the streams for the "
            "model's utilisation)",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge("simsearch_queue_depth", "Items waiting for a model", ["model"], registry=r)
        self.index_documents = Gauge(
            "simsearch_index_documents",
            "Documents the default collection holds now: its build's and the writes since",
            registry=r,
        )
        self.cross_calls = Counter("simsearch_cross_encoder_calls", "Cross-encoder calls made by searches", registry=r)
        self.reloads = Counter(
            "simsearch_index_reloads",
            "Swaps to a new build (a reload or a compaction) by collection and outcome",
            ["collection", "outcome"],
            registry=r,
        )
        # per collection
        self.documents = Gauge(
            "simsearch_collection_documents",
            "Documents a collection holds now (build and writes since)",
            ["collection"],
            registry=r,
        )
        self.build_documents = Gauge(
            "simsearch_collection_build_documents",
            "Documents in the build a collection serves",
            ["collection"],
            registry=r,
        )
        self.uncompacted = Gauge(
            "simsearch_collection_uncompacted",
            "Documents written since the build (until compaction folds them)",
            ["collection"],
            registry=r,
        )
        self.searches = Counter(
            "simsearch_collection_searches", "Searches by collection and mode", ["collection", "mode"], registry=r
        )
        self.search_seconds = Histogram(
            "simsearch_collection_search_seconds",
            "Search latency in the service by collection",
            ["collection"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.writes = Counter(
            "simsearch_collection_writes",
            "Documents written by collection and operation (upsert, delete)",
            ["collection", "op"],
            registry=r,
        )

    def batch_observer(self, model: str) -> Callable[[int, bool, float], None]:
        """The ``on_batch`` callback of a micro-batcher: batch size, how the batch ran, its model time."""
        sizes = self.batch_size.labels(model)
        runs = {True: self.batches.labels(model, "alone"), False: self.batches.labels(model, "shared")}
        busy = self.model_seconds.labels(model)

        def observe(size: int, alone: bool, seconds: float) -> None:
            sizes.observe(size)
            runs[alone].inc()
            busy.inc(seconds)

        return observe
