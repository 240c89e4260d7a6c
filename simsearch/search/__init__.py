"""The search pipeline and its stages: model inputs, retrievers, re-scoring, hits."""

from simsearch.search.fusion import Fusion
from simsearch.search.models import DirectModels, Models, run_sync
from simsearch.search.pipeline import PLANS, Plan, SearchPipeline
from simsearch.search.types import MODES, Hit, Mode, ModeUnavailableError, SearchParams, SearchResult
from simsearch.search.view import IndexView, SearchView

__all__ = [
    "MODES",
    "PLANS",
    "DirectModels",
    "Fusion",
    "Hit",
    "IndexView",
    "Mode",
    "ModeUnavailableError",
    "Models",
    "Plan",
    "SearchParams",
    "SearchPipeline",
    "SearchResult",
    "SearchView",
    "run_sync",
]
