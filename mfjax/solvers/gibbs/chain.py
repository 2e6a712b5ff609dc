"""A Gibbs chain run outside ``fit``, and the posterior mean of its samples.

:func:`gibbs_sample` runs sweeps of :func:`mfjax.solvers.gibbs.sampler.gibbs_sweep` and keeps
samples (on the host, or only running moments); :func:`average_params` turns S samples into
the one rank k·S model whose prediction is their mean; :func:`predictive_std` gives the
spread of the S predictions. The model, priors and memory trade are described in
:mod:`mfjax.solvers.gibbs.sampler`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...objectives.explicit import Params
from ..als.layout import Layout
from .sampler import GibbsState, gibbs_sweep
from .wishart import GibbsHyper

__all__ = ["gibbs_sample", "average_params", "predictive_std"]


def gibbs_sample(state: GibbsState, layout: Layout, key, *, n_sweeps: int, burn_in: int = 0,
                 thin: int = 1, first_sweep: int = 0, hyper: GibbsHyper = GibbsHyper(),
                 window: int | None = None, solver: str = "rowwise", keep: bool = True,
                 query=None, callback=None, scale=1.0):
    """Run ``n_sweeps`` sweeps; keep every ``thin``-th sample after ``burn_in``.

    Args:
        state, layout, key, hyper, window, solver: as in :func:`gibbs_sweep`.
        n_sweeps: sweeps to run (numbered first_sweep, first_sweep+1, …).
        burn_in: sweeps discarded first; thin: keep one sample in ``thin``.
        keep: keep the samples on the host (a stacked NumPy Params).
        query: optional (users, items): accumulate Welford moments of the
            kept samples' predictions at these pairs (device-resident).
        callback: optional ``callback(sweep, state)`` after each sweep.
        scale: the ratings' spread, as in :func:`gibbs_sweep`.

    Returns:
        ``(state, out)``, out a dict with ``"taus"`` [S] (the kept samples'
        τ), ``"samples"`` (stacked Params [S, ...] on the host, when keep),
        ``"average"`` (the averaged Params when keep, else the running mean of
        the biases and μ with factors of the last sample — see the module
        docstring), and with a query ``"query_mean"``/``"query_var"`` [n]
        (mean and population variance of the predictions across samples).
    """
    kept, taus = [], []
    n = 0
    sums = None
    qmean = qm2 = None
    if query is not None:
        qu, qi = (jnp.asarray(a) for a in query)
        pred = jax.jit(lambda prm: _predict(prm, qu, qi))
    for s in range(first_sweep, first_sweep + n_sweeps):
        state = gibbs_sweep(state, layout, key, s, hyper=hyper, window=window, solver=solver,
                            scale=scale)
        jax.block_until_ready(state.tau)
        if callback is not None:
            callback(s, state)
        j = s - first_sweep
        if j < burn_in or (j - burn_in) % thin:
            continue
        n += 1
        taus.append(float(state.tau))
        if keep:
            kept.append(jax.tree.map(np.asarray, state.params))
        else:
            b = (state.params.user_bias, state.params.item_bias, state.params.global_bias)
            sums = b if sums is None else tuple(a + c for a, c in zip(sums, b))
        if query is not None:
            x = pred(state.params)
            if qmean is None:
                qmean, qm2 = x, jnp.zeros_like(x)
            else:
                d = x - qmean
                qmean = qmean + d / n
                qm2 = qm2 + d * (x - qmean)
    out = {"taus": np.asarray(taus)}
    if keep and kept:
        out["samples"] = Params(*(np.stack(f) for f in zip(*kept)))
        out["average"] = average_params(out["samples"])
    elif sums is not None:
        out["average"] = state.params._replace(
            user_bias=sums[0] / n, item_bias=sums[1] / n, global_bias=sums[2] / n)
    if qmean is not None:
        out["query_mean"], out["query_var"] = qmean, qm2 / n
    return state, out


def _predict(p, users, items):
    return (p.global_bias + p.user_bias[users] + p.item_bias[items]
            + jnp.sum(p.user_factors[users] * p.item_factors[items], axis=-1))


def average_params(stacked: Params) -> Params:
    """The rank k·S model whose prediction is the mean of S samples' predictions.

    Args:
        stacked: Params with a leading sample axis: factors [S, n, k], biases
            [S, n], global bias [S] (NumPy or JAX).

    Returns:
        Params with factors [n, S·k] = the samples' factors side by side,
        scaled by 1/√S (so ⟨p, q⟩ = (1/S) Σ_s ⟨p_s, q_s⟩), and biases and μ
        averaged over samples. Exact, not an approximation.
    """
    xp = jnp if isinstance(stacked.user_factors, jax.Array) else np

    def cat(F):
        S_, n, k = F.shape
        return xp.transpose(F, (1, 0, 2)).reshape(n, S_ * k) / np.sqrt(S_)

    return Params(cat(stacked.user_factors), cat(stacked.item_factors),
                  stacked.user_bias.mean(0), stacked.item_bias.mean(0),
                  xp.asarray(stacked.global_bias).mean(0))


def predictive_std(stacked: Params, users, items, *, taus=None):
    """Per-rating standard deviation of the prediction across samples.

    Without ``taus``: the spread of the S predicted means r̂_s(u, i)
    (population std, ddof = 0): the posterior uncertainty of the mean rating.
    With ``taus`` [S]: the posterior predictive std of a *new* rating,
    sqrt(var_s r̂_s + mean_s 1/τ_s), which adds the observation noise.

    Computed on the host in NumPy, S samples × len(users) at a time.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    P, Q, bu, bi, mu = (np.asarray(a) for a in stacked)
    pred = (mu[:, None] + bu[:, users] + bi[:, items]
            + np.einsum("snk,snk->sn", P[:, users], Q[:, items]))
    var = pred.var(axis=0)
    if taus is not None:
        var = var + np.mean(1.0 / np.asarray(taus))
    return np.sqrt(var)
