"""The objective record of :class:`mfjax.BPR`: BPR's and WARP's losses (:mod:`mfjax.models.bpr.objective`, :mod:`mfjax.models.bpr.warp`).

The record is :data:`mfjax.models.bpr.objective.OBJECTIVE` whose gradient terms read one
more, optional hyperparameter, ``loss`` (the spec's field; absent: ``"bpr"``): BPR's
terms for ``loss="bpr"`` (unchanged) and WARP's (:mod:`mfjax.models.bpr.warp`) for
``loss="warp"``. :func:`gradient_hyperparameters` (the package's hook for
:func:`mfjax.verify_gradients`) passes the spec's ``loss``, so
``mfjax.verify_gradients(mfjax.BPR(loss="warp"), ratings)`` checks the hand-written WARP
gradient like every objective's. A gradient check has no sampler, so its WARP triples
take the negatives it is given and the rank weights of
:func:`mfjax.models.bpr.hybrid.default_rank_weights` (the gradient is linear in them).
"""
from __future__ import annotations

import dataclasses

from . import objective as bpr
from .hybrid import default_rank_weights, pair_terms

__all__ = ["OBJECTIVE", "gradient_terms", "gradient_hyperparameters"]


def gradient_terms(users, items, ratings, negatives, hyper):
    """``(loss(params), manual_grad(params))`` of the spec's pairwise loss (module docstring)."""
    loss = hyper.get("loss", "bpr")
    if loss == "bpr":
        return bpr.OBJECTIVE.gradient_terms(users, items, ratings, negatives, hyper)
    return pair_terms(loss, users, items, negatives, default_rank_weights(users.shape[0]),
                      reg=hyper["reg"], bias_reg=hyper.get("bias_reg"))


def gradient_hyperparameters(spec) -> dict:
    """λ, λ_b and the pairwise ``loss`` of a :class:`mfjax.BPR` spec, for the gradient check."""
    return {"reg": spec.reg, "bias_reg": spec.bias_reg, "loss": spec.loss}


#: BPR's record, its gradient terms following ``hyper["loss"]``.
OBJECTIVE = dataclasses.replace(bpr.OBJECTIVE, gradient_terms=gradient_terms)
