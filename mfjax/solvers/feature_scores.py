"""The rows a features model scores a raw-ID pair with: its own, else its features'.

Shared by the model packages' ``score_features`` hooks (:mod:`mfjax.models.record`): each
side of a pair takes the model's row (vector and bias) where it has one, else the vector
and bias its package derives from the ID's features, else zeros (the ID fallback).
"""
from __future__ import annotations

import numpy as np

__all__ = ["side_rows"]


def side_rows(table, bias, rows, raw, from_features):
    """Vectors [n, k] and biases [n] (float64) of one side of n pairs.

    Args:
        table: the model's factors of that side [n_rows, k].
        bias: its biases [n_rows].
        rows: the pairs' rows [n] (-1: the model has no row for that ID).
        raw: the pairs' raw IDs [n].
        from_features: ``raw_ids [m] -> (vectors [m, k], biases [m], known [m] bool)``, the
            package's vectors of IDs from their features (``known``: the ID has features).
    """
    table, bias = np.asarray(table, np.float64), np.asarray(bias, np.float64)
    rows = np.asarray(rows, np.int64)
    ok = rows >= 0
    vec = np.where(ok[:, None], table[np.clip(rows, 0, None)], 0.0)
    b = np.where(ok, bias[np.clip(rows, 0, None)], 0.0)
    if (~ok).any():
        v, bb, known = from_features(np.asarray(raw, object)[~ok])
        at = np.flatnonzero(~ok)[known]
        vec[at], b[at] = np.asarray(v)[known], np.asarray(bb)[known]
    return vec, b
