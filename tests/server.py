"""The real server as a subprocess, for tests: the benchmarks' launcher (bench/server.py)."""

from bench.common import ROOT, free_port
from bench.server import Server, running_server, server_env

__all__ = ["ROOT", "Server", "free_port", "running_server", "server_env"]
