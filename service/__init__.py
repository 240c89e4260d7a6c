"""The HTTP face of simsearch: ``service.app.create_app(settings)`` builds the FastAPI application.

Nothing is imported here: the container health check (``python -m service.healthcheck``) and the admin
command must start in milliseconds, without torch.

One environment default is set here, before anything can load torch (every way of starting the service,
``python -m service`` or ``uvicorn service.app:app``, imports this package first): ``GOMP_SPINCOUNT``.
libgomp, torch's OpenMP runtime, lets a worker that finished a parallel region spin 300,000 times before
it sleeps (milliseconds), so after a lone query's forward pass the worker keeps one of the two cores
while the HTTP work of the answer and of the next request waits for it. 10,000 spins still bridge the
gaps between the ~100 parallel regions of one forward pass. Measured on 2 cores, torch backend, c = 1
(docs/results/serving.md): p50 about 1.2 ms lower, faster in 7 of 7 alternations, with less CPU per
request. A value already in the environment wins.
"""

import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
