"""Evaluation: ranking metrics (BEIR's definitions), retrieval through the pipeline, STS from vectors."""
