"""The objective record of :class:`mfjax.BPR`: BPR's (:mod:`mfjax.objectives.bpr`), with WARP's.

The record is :data:`mfjax.objectives.bpr.OBJECTIVE` with one more hyperparameter,
``loss`` (the spec's field): its gradient terms are BPR's for ``loss="bpr"`` (unchanged)
and WARP's (:mod:`mfjax.models.bpr.warp`) for ``loss="warp"``, so
``mfjax.verify_gradients(mfjax.BPR(loss="warp"), ratings)`` checks the hand-written WARP
gradient like every objective's. A gradient check has no sampler, so its WARP triples
take the negatives it is given and the rank weights of
:func:`mfjax.models.bpr.hybrid.default_rank_weights` (the gradient is linear in them).
"""
from __future__ import annotations

import dataclasses

from ...objectives import bpr
from .hybrid import default_rank_weights, pair_terms

__all__ = ["OBJECTIVE", "gradient_terms"]


def gradient_terms(users, items, ratings, negatives, hyper):
    """``(loss(params), manual_grad(params))`` of the spec's pairwise loss (module docstring)."""
    loss = hyper.get("loss", "bpr")
    if loss == "bpr":
        return bpr.OBJECTIVE.gradient_terms(users, items, ratings, negatives, hyper)
    return pair_terms(loss, users, items, negatives, default_rank_weights(users.shape[0]),
                      reg=hyper["reg"], bias_reg=hyper.get("bias_reg"))


#: BPR's record, its gradient terms following ``loss``.
OBJECTIVE = dataclasses.replace(bpr.OBJECTIVE, gradient_terms=gradient_terms,
                                hyper=bpr.OBJECTIVE.hyper + ("loss",))
