"""Rating data: the :class:`Ratings` container, file readers, dataset sources and splits.

Modules, one concept each:

- :mod:`~mfjax.data.ratings`: :class:`Ratings` (with :mod:`~mfjax.data.ids`
  for raw IDs and :mod:`~mfjax.data.columns` for column checks);
- :mod:`~mfjax.data.readers`: :func:`load_ratings` and format detection
  (with :mod:`~mfjax.data.parsing` for the parser and its error reports,
  and :mod:`~mfjax.data.streams` for sources, input guards and sniffing);
- :mod:`~mfjax.data.movielens` and :mod:`~mfjax.data.synthetic`: dataset
  sources, gathered in :mod:`~mfjax.data.datasets` (``mfjax.datasets``), with
  :mod:`~mfjax.data.download` for verified downloads and
  :mod:`~mfjax.data.items` for MovieLens title/genre files;
- :mod:`~mfjax.data.features`: :class:`Features`, user and item side information keyed
  by raw ID (with :mod:`~mfjax.data.feature_frames` for encoding DataFrames);
- :mod:`~mfjax.data.split`: train/test splits (``mfjax.split``);
- :mod:`~mfjax.data.conventions`: star ratings vs. interactions
  (:func:`looks_like_star_ratings`, ``Ratings.binarize``) and repeated pairs
  (``duplicates=``).

Example:
    >>> from mfjax.data import Ratings
    >>> Ratings.from_arrays([1, 2], ["a", "b"], [4.0, 3.0]).n_items
    2
"""

from . import datasets, split
from .ids import IdSpace
from .features import Features, FeatureTable
from .conventions import STAR_RATINGS_WARNING, looks_like_star_ratings
from .ratings import Ratings
from .readers import FORMATS, load_ratings

__all__ = ["Ratings", "IdSpace", "Features", "FeatureTable", "load_ratings", "FORMATS", "datasets", "split",
           "looks_like_star_ratings", "STAR_RATINGS_WARNING"]
