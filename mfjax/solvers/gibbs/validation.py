"""Validation predictions of the Gibbs posterior mean, kept up to date incrementally.

The model after S kept samples is their posterior mean, a rank k·S model
(:func:`mfjax.solvers.gibbs.chain.average_params`). Its prediction is linear in the
samples (the unknown-ID fallbacks of
:func:`mfjax.objectives.explicit.predict_with_fallback` too)::

    r̂(u, i) = (1/S) Σ_s r̂_s(u, i),

so scoring it on fixed validation pairs needs one rank-k prediction per NEW sample
added to a running sum, not a rank-k·S prediction every sweep (ML-100K,
100 sweeps: ``fit(..., validation=v)`` took 48 s against 5.6 s without, see
``benchmarks/RESULTS.md``). :class:`RunningPredictions` holds that sum.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ...objectives.explicit import Params, predict_with_fallback

__all__ = ["RunningPredictions"]


@jax.jit
def _add_sample(total, j, P, Q, bu, bi, mu, users, items):
    """``total`` plus kept sample j's predictions at (users, items)."""
    p = Params(P[j], Q[j], bu[j], bi[j], mu[j])
    return total + predict_with_fallback(p, users, items)


@jax.jit
def _predict(params: Params, users, items):
    return predict_with_fallback(params, users, items)


class RunningPredictions:
    """The running sum of kept samples' predictions on one set of (user, item) pairs.

    :meth:`__call__` adds the samples kept since the last call; a state with fewer kept
    samples than already summed (a restored checkpoint) restarts the sum.
    """

    def __init__(self):
        self.key, self.total, self.count = None, None, 0

    def __call__(self, state, users, items) -> jax.Array:
        """Predictions [n] of the model ``GibbsSolver.params(state)`` holds.

        Args:
            state: a :class:`mfjax.solvers.gibbs.solver.GibbsFitState`.
            users, items: device indices [n] (-1: unknown), the same arrays every call.
        """
        if state.kept == 0:  # burn-in: the current sample
            return _predict(state.chain.params, users, items)
        if self.key != (id(users), id(items)) or state.kept < self.count:
            self.key = (id(users), id(items))
            self.total, self.count = jnp.zeros(users.shape, state.tau.dtype), 0
        slots = (state.user_factors, state.item_factors, state.user_bias, state.item_bias,
                 state.global_bias)
        for j in range(self.count, state.kept):
            self.total = _add_sample(self.total, j, *slots, users, items)
        self.count = state.kept
        return self.total / state.kept
