"""Search algorithms: the Searcher interface, grid/random search, limiting.

The search-space constructors (``uniform``, ``grid_search``...) live in
``tune_client.search.sample``; ``tune_client`` re-exports them as ``tune.*``.
"""

from tune_client.search.basic_variant import BasicVariantGenerator
from tune_client.search.searcher import ConcurrencyLimiter, Searcher

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Searcher"]
