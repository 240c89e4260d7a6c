"""Offline jobs: one entry point per job (``python -m training.<job>``), each a recipe over the core."""
