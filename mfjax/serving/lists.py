"""Model-level list helpers: which items a list may hold, and rows back to raw IDs.

:func:`raw_index` maps raw IDs to rows; :func:`candidate_items` turns ``recommend``'s ``items=`` allowlist and ``filter_items=``
blocklist into sorted item rows; :func:`ranked_ids` maps ranked rows to raw IDs (with the
documented filler for short lists); :func:`similar_rows` answers ``similar_items`` /
``similar_users``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..plumbing import check_positive_int
from .recommend import similar

__all__ = ["raw_index", "candidate_items", "ranked_ids", "similar_rows"]


def raw_index(model, side, raw, where, name, missing="raise"):
    """``model.index_users``/``index_items`` of raw IDs, with a TypeError naming the
    argument for unusable IDs (-1 for unknown ones with ``missing="ignore"``)."""
    lookup = model.index_users if side == "user" else model.index_items
    try:
        return lookup(raw, missing=missing)
    except KeyError as e:  # its "pass missing='ignore'" is advice for index_*, not for `where`
        text = str(e.args[0] if e.args else e).split("; pass missing=")[0]
        raise KeyError(f"{where}: {name}: {text}") from None
    except TypeError as e:
        raise TypeError(f"{where}: {name} must be raw {side} IDs (a hashable scalar or a "
                        f"1-D list), got {type(raw).__name__} ({e})") from None


def candidate_items(model, items, where, filter_items=None):
    """Sorted item rows [m] to rank among (``items`` allowlist minus ``filter_items``),
    or None for every item; unknown ``items`` raise KeyError."""
    if items is None and filter_items is None:
        return None
    if items is None:
        idx = np.arange(model.n_items)
    else:
        idx = np.atleast_1d(raw_index(model, "item", items, where, "items"))  # KeyError if unknown
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"{where}: items must be a non-empty 1-D list of raw item IDs")
    if filter_items is not None:
        if isinstance(filter_items, (list, tuple)):
            filter_items = np.array(filter_items, dtype=object)
        block = np.atleast_1d(raw_index(model, "item", filter_items, where, "filter_items",
                                          "ignore"))
        if block.ndim != 1:
            raise ValueError(f"{where}: filter_items must be a 1-D list of raw item IDs")
        idx = idx[~np.isin(idx, block)]
        if idx.size == 0:
            raise ValueError(f"{where}: filter_items leaves no candidate item")
    return np.unique(idx)  # sorted, so ties still go to the lower item index


def ranked_ids(model, idx, val, scalar):
    """Indices/scores from recommend_indices -> raw IDs; -1 -> the documented filler."""
    filler = -1 if np.issubdtype(np.asarray(model.item_ids).dtype, np.integer) else None
    ids = np.asarray(model.item_ids)[np.maximum(idx, 0)]
    if scalar:
        keep = idx[0] >= 0
        return ids[0][keep], val[0][keep]
    if (idx < 0).any():
        if filler is None and ids.dtype != object:
            ids = ids.astype(object)
        ids[idx < 0] = filler
    return ids, val


def similar_rows(factors, idx, n, ids, where):
    """The n rows most cosine-similar to row(s) ``idx`` of ``factors``, as ``ids``."""
    n = check_positive_int(n, f"{where}: n")
    if factors.shape[0] < 2:
        raise ValueError(f"{where}: the model has only one row; nothing to compare with")
    q = np.atleast_1d(idx)
    if q.ndim != 1:
        raise ValueError(f"{where}: pass one ID or a 1-D list of IDs")
    nn, sims = similar(factors, jnp.asarray(q), n=min(n, factors.shape[0] - 1))
    out_ids, sims = np.asarray(ids)[np.asarray(nn)], np.asarray(sims)
    return (out_ids[0], sims[0]) if np.ndim(idx) == 0 else (out_ids, sims)
