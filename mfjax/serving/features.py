"""Serving with side information: the seam between the shared layers and a features model.

A model whose record takes features (:attr:`mfjax.models.ModelRecord.features`) keeps
its :class:`mfjax.Features` in ``Model.features``. How it scores an ID that has features
but no training ratings is the model's own math, so it lives in its package, as
``parts.score_features(model, features, raw_users, raw_items, users, items) -> scores``
(documented in :mod:`mfjax.models.record`). :func:`feature_scores` is where
:meth:`mfjax.Model.predict` and :func:`mfjax.evaluate` call it; a model without that
function scores by its ID parameters and the fallbacks of :mod:`mfjax.serving.fallback`,
as every model did before features.
"""
from __future__ import annotations

import numpy as np

from .. import models

__all__ = ["features_for", "feature_scores"]


def features_for(model, features, where: str):
    """The features a serving call uses: ``features`` when given (checked against the
    model's record: refused, naming the model, for one that takes none), else the model's.

    Raises:
        TypeError: ``features`` is not an :class:`mfjax.Features`.
        ValueError: ``features`` given to a model that does not use side information.
    """
    if features is None:
        return model.features
    models.check_features(model.record, features, where)
    return features


def feature_scores(model, features, raw_users, raw_items, users, items, where: str):
    """Unclipped scores [n] of the pairs from the model's ``score_features``, or None when
    there is nothing to score with (no features, or a package without the function).

    Args:
        model: the :class:`mfjax.Model`.
        features: the call's ``features=`` (None: the model's own).
        raw_users, raw_items: the pairs' raw IDs (scalars or [n]).
        users, items: their model rows after the fallback, int32 [n] (-1: no training rows).
        where: the caller, for messages.
    """
    features = features_for(model, features, where)
    hook = model.record.score_features
    if features is None or hook is None:
        return None
    n = len(users)
    scores = np.asarray(hook(model, features, _ids(raw_users, n), _ids(raw_items, n), users,
                             items), np.float64)
    if scores.shape != (n,):
        raise ValueError(f"{where}: {model.record.name}'s score_features returned shape "
                         f"{scores.shape} for {n} pairs")
    return scores


def _ids(raw, n: int) -> np.ndarray:
    """Raw IDs as a 1-D array [n] (a scalar repeated), each ID keeping its own type."""
    if isinstance(raw, (list, tuple)):
        a = np.empty(len(raw), dtype=object)
        a[:] = list(raw)
        return a
    a = np.asarray(raw)
    return np.broadcast_to(a, (n,)) if a.ndim == 0 else a.ravel()
