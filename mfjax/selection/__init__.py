"""Model selection: :func:`cross_validate` and :func:`search` (grid/random, with trials
that differ only in continuous hyperparameters trained as one vmapped program).

- :mod:`.cross_validate`: k-fold (or given folds) fit-and-score, Surprise-style summary;
- :mod:`.search`: :func:`search`; :mod:`.result`: its :class:`SearchResult` (table, best, plot);
- :mod:`.vectorized`: the vmapped trial groups (ImplicitALS, ALS);
- :mod:`.metrics`: metric names, directions and scoring;
- :mod:`.cli`: ``cv`` and ``search`` command lines (``main(argv)``).
"""
from .cross_validate import cross_validate
from .result import SearchResult
from .search import search

__all__ = ["cross_validate", "search", "SearchResult"]
