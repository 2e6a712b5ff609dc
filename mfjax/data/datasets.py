"""Datasets, one namespace over the sources: MovieLens (:mod:`mfjax.data.movielens`, its side
information in :mod:`mfjax.data.movielens_features`) and synthetic.

This is what ``mfjax.datasets`` exposes. It only re-exports; to replace a
seam in tests, patch the module that defines it (e.g.
``mfjax.data.download.urlopen``), not this namespace.

Example:
    >>> from mfjax import datasets
    >>> ratings, truth = datasets.synthetic(100, 50, 2_000, seed=0)
    >>> sorted(datasets.VARIANTS)[:2]
    ['100k', '10m']
"""

from .movielens import (
    CHECKSUMS,
    GROUPLENS_URL,
    VARIANTS,
    WHEELS,
    ChecksumError,
    DatasetUnavailable,
    Variant,
    Wheel,
    data_home,
    movielens,
    movielens_items)
from .movielens_features import movielens_feature_frames, movielens_features
from .synthetic import planted_params, synthetic

__all__ = [
    "movielens", "movielens_items", "movielens_features", "movielens_feature_frames", "synthetic", "planted_params", "data_home", "VARIANTS",
    "CHECKSUMS", "WHEELS", "GROUPLENS_URL", "Variant", "Wheel", "ChecksumError", "DatasetUnavailable",
]
