"""simsearch core: encoders, corpora, document store, ANN backends, index folders, search and metrics.

Both faces of the project import this package: ``training/`` (offline jobs) and ``service/`` (the
HTTP API). It imports neither FastAPI nor argument parsing.
"""

__version__ = "0.1.0"
