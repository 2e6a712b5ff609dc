"""The Gibbs solver behind ``fit(train, mfjax.BayesianMF(...))``.

Bayesian PMF with biases
(:func:`mfjax.solvers.gibbs.sampler.gibbs_sweep`); the regularization is learned (Normal-Wishart
hyperpriors) and there is no ``reg``. A run is ``burn_in + samples``
sweeps; the sweep numbered s draws all its random numbers on the host from
``default_rng([seed, s])`` (:func:`mfjax.solvers.gibbs.sampler.host_draws`: no PRNG is
compiled into the sweep, and the kernel and XLA routes draw from the same numbers).
With ``kernel`` resolved to True the rows are drawn by the threaded C++ kernel
(:func:`mfjax.kernels.als.gibbs_call`). After burn-in every ``thin``-th sample is kept
in the state (on the device, so a checkpoint holds them and a resumed run ends
with the same samples). The model is their posterior mean as one rank k·S model,

    r̂(u, i) = (1/S) Σ_s r̂_s(u, i) = μ̄ + b̄_u + b̄_i + ⟨[p_u¹ … p_uˢ]/√S, [q_i¹ … q_iˢ]/√S⟩,

(:func:`mfjax.solvers.gibbs.chain.average_params`, exact), and :meth:`GibbsSolver.posterior`
returns the per-sample biases, μ and noise precisions τ_s [S], with which
:meth:`mfjax.Model.predict` (``return_std=True``) recovers each sample's
prediction from block s of the concatenated factors, and each sample's prior
hyperparameters (μ_U, Λ_U, μ_V, Λ_V of the sweep that drew it: [S, D], [S, D, D]
per side, D = k+1), with which a partial fit re-solves a row as its per-sample
conditional posterior mean (:func:`mfjax.solvers.rows.posterior_mean_rows`).

Memory bound. Kept samples cost S·(n_users + n_items)·(k+1) numbers (ML-20M,
k = 64, float32: 43 MB a sample; 100 samples would be 4.3 GB, and the returned
model as many). The solver keeps at most ``budget // bytes_per_sample`` samples
(:data:`SAMPLE_BUDGET_BYTES`, 1 GiB): when ``samples`` is larger it keeps every
``thin``-th with ``thin = ceil(samples / cap)`` (all sweeps are still run).
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...data import Ratings
from ...kernels import als as als_kernel
from ...objectives.explicit import Params
from ..als.solver import ExactBase, init_params
from .. import finite, memory
from .sampler import GibbsState, gibbs_init, gibbs_sweep, host_draws, rating_scale
from .validation import RunningPredictions

__all__ = ["GibbsFitState", "GibbsSolver", "KEPT_FIELDS", "SAMPLE_BUDGET_BYTES", "sample_plan"]

#: Device memory allowed for the kept Gibbs samples (and so for the returned model).
SAMPLE_BUDGET_BYTES = 1 << 30


class GibbsFitState(NamedTuple):
    """The Gibbs solver's state.

    Attributes:
        chain: the Markov chain (:class:`mfjax.solvers.gibbs.sampler.GibbsState`).
        sweep: sweeps done.
        kept: samples kept so far.
        user_factors, item_factors: kept samples' factors [S, n, k] (zeros beyond ``kept``).
        user_bias, item_bias: [S, n]; global_bias, tau: [S].
        user_prior_mean, item_prior_mean: μ_U, μ_V of each kept sample's sweep [S, D].
        user_prior_prec, item_prior_prec: Λ_U, Λ_V likewise [S, D, D] (D = k+1); None for a
            chain without one row prior per side, or a subclass's own per-sample prior
            arrays of other shapes (:meth:`GibbsSolver.kept_values`; checkpoints keep them).
    """

    chain: GibbsState
    sweep: int
    kept: int
    user_factors: jax.Array
    item_factors: jax.Array
    user_bias: jax.Array
    item_bias: jax.Array
    global_bias: jax.Array
    tau: jax.Array
    user_prior_mean: jax.Array | None = None
    user_prior_prec: jax.Array | None = None
    item_prior_mean: jax.Array | None = None
    item_prior_prec: jax.Array | None = None


#: The kept per-sample arrays of :class:`GibbsFitState` (after chain, sweep, kept), in order.
KEPT_FIELDS = GibbsFitState._fields[3:]


@partial(jax.jit, donate_argnums=0)
def _keep(slots: tuple, new: tuple, j):
    """Write one sample's arrays ``new`` into slot j of the kept arrays (in place)."""
    return tuple(jax.lax.dynamic_update_index_in_dim(a, x, j, 0) for a, x in zip(slots, new))


@jax.jit
def _average(P, Q, bu, bi, mu, kept):
    """average_params over the first ``kept`` of the [S_max, ...] slots (the rest are zero)."""
    S = kept.astype(P.dtype)
    cat = lambda F: jnp.transpose(F, (1, 0, 2)).reshape(F.shape[1], -1) / jnp.sqrt(S)
    return Params(cat(P), cat(Q), bu.sum(0) / S, bi.sum(0) / S, mu.sum(0) / S)


def sample_plan(samples: int, n_rows: int, rank: int, itemsize: int,
                budget: int = SAMPLE_BUDGET_BYTES) -> tuple[int, int]:
    """``(thin, n_keep)``: keep every thin-th of ``samples`` so n_keep samples fit ``budget``.

    A sample costs n_rows·(rank+1)·itemsize bytes (n_rows = users + items).
    """
    cap = max(1, budget // max(1, n_rows * (rank + 1) * itemsize))
    thin = max(1, math.ceil(samples / cap))
    return thin, math.ceil(samples / thin)


class GibbsSolver(ExactBase):
    """``solver="gibbs"``: Bayesian PMF by Gibbs sampling (see the module docstring).

    ``history[j]`` has ``loss`` = ½ Σ e²/n of sample j+1 (the data term, not averaged)
    and ``tau``, its noise precision.
    """

    def init(self, train: Ratings, spec, run) -> GibbsFitState:
        self._setup(train, spec, run)
        self.burn_in, dtype = spec.burn_in, self.dtype
        self.thin, n_keep = sample_plan(spec.samples, train.n_users + train.n_items, spec.rank,
                                        dtype.itemsize)
        self.facts = {"gibbs_thin": self.thin, "gibbs_kept": n_keep}
        # Early stopping compares posterior means: only from the first kept sample on.
        self.min_epochs = self.burn_in + 1
        self.n_eff = float(len(train))  # Σ w: fit's ratings are unweighted
        r = np.asarray(train.ratings, np.float64)
        self.rating_scale = float(np.max(np.abs(r))) if r.size else 0.0
        self.scale = rating_scale(train.ratings)  # priors scaled to the ratings' spread
        self.kernel_threads = als_kernel.threads() if spec.kernel else 0
        chain = gibbs_init(init_params(train, spec, run.seed, dtype), self.layout,
                           scale=self.scale)
        z = lambda *s: jax.device_put(np.zeros((n_keep,) + s, dtype))  # no program to compile
        d = spec.rank + 1
        return GibbsFitState(chain, 0, 0, z(train.n_users, spec.rank), z(train.n_items, spec.rank),
                             z(train.n_users), z(train.n_items), z(), z(), z(d), z(d, d), z(d),
                             z(d, d))

    def sweep_chain(self, state: GibbsFitState):
        """The chain after one more sweep (a subclass samples another model here; its
        chain has ``params``, ``tau`` and ``sse`` like :class:`GibbsState`)."""
        draws = host_draws(np.random.default_rng([self.seed, state.sweep]), self.layout,
                           self.spec.rank, n_eff=self.n_eff, dtype=self.dtype)
        return gibbs_sweep(state.chain, self.layout, None, state.sweep, window=self.window,
                           draws=draws, scale=self.scale, kernel_threads=self.kernel_threads)

    def kept_values(self, chain) -> tuple:
        """One sample's arrays, in :data:`KEPT_FIELDS` order: the parameters and τ, then
        the row priors (a subclass whose chain has none returns the first six)."""
        p = chain.params
        return (p.user_factors, p.item_factors, p.user_bias, p.item_bias, p.global_bias,
                chain.tau, chain.user_mean, chain.user_prec, chain.item_mean, chain.item_prec)

    def step(self, state: GibbsFitState):
        chain = self.sweep_chain(state)
        state = state._replace(chain=chain, sweep=state.sweep + 1)
        finite.check_sweep("gibbs", state.sweep, float(chain.sse), self.layout.users.ratings)
        j = state.sweep - 1 - self.burn_in
        if j >= 0 and j % self.thin == 0 and state.kept < state.tau.shape[0]:
            new = self.kept_values(chain)
            fields = KEPT_FIELDS[:len(new)]
            arrays = _keep(tuple(getattr(state, f) for f in fields), new, state.kept)
            state = state._replace(kept=state.kept + 1, **dict(zip(fields, arrays)))
        return state, {"loss": 0.5 * float(chain.sse) / self.n, "tau": float(chain.tau)}

    def params(self, state: GibbsFitState) -> Params:
        """The posterior mean of the kept samples (the current sample during burn-in).

        While sampling, the model has all n_keep blocks of factors (blocks not yet
        filled are zero, so the mean is exact); :meth:`finalize` drops them.
        """
        if state.kept == 0:
            return state.chain.params
        return _average(state.user_factors, state.item_factors, state.user_bias, state.item_bias,
                        state.global_bias, state.kept)

    def validation_predictions(self, state: GibbsFitState, users, items) -> jax.Array:
        """Predictions [n] of :meth:`params`'s model at (users, items), by a running sum
        of each kept sample's predictions (:mod:`mfjax.solvers.gibbs.validation`)."""
        if not hasattr(self, "_running"):
            self._running = RunningPredictions()
        return self._running(state, users, items)

    def finalize(self, state, params: Params) -> Params:
        """``params`` without trailing all-zero factor blocks (samples never drawn); the
        ``gibbs_kept`` fact becomes the samples the returned model averages."""
        k, S = self.spec.rank, params.rank // self.spec.rank
        keep = S
        if S > 1:
            P, Q = np.asarray(params.user_factors), np.asarray(params.item_factors)
            zero = (np.all(P.reshape(-1, S, k) == 0, axis=(0, 2))
                    & np.all(Q.reshape(-1, S, k) == 0, axis=(0, 2)))
            keep = S - int(np.argmin(zero[::-1])) if not zero.all() else S
            params = params._replace(user_factors=params.user_factors[:, :keep * k],
                                     item_factors=params.item_factors[:, :keep * k])
        self.facts["gibbs_kept"] = int(keep)
        return params

    def posterior(self, state: GibbsFitState, params: Params) -> dict | None:
        """The per-sample arrays behind ``params`` (for ``Model.predict(return_std=True)``).

        ``{"user_bias" [S, n_users], "item_bias" [S, n_items], "global_bias" [S], "tau" [S],
        "user_prior_mean" [S, D], "user_prior_prec" [S, D, D], "item_prior_mean",
        "item_prior_prec"}`` (:data:`mfjax.solvers.gibbs.posterior.POSTERIOR_FIELDS`)
        with S = rank(params) / k, as host arrays; None when ``params`` is not an
        average of kept samples (e.g. early stopping picked a burn-in sweep).
        """
        S = params.rank // self.spec.rank
        if state.kept == 0 or S > state.kept or params.rank % self.spec.rank:
            return None
        out = {k: np.asarray(getattr(state, k))[:S] for k in KEPT_FIELDS[2:]
               if getattr(state, k) is not None}
        if not np.allclose(np.asarray(params.user_bias), out["user_bias"].mean(0),
                           rtol=1e-5, atol=1e-6):
            return None
        return out

    def divergence_hint(self) -> str:
        return (f"the sampler overflowed: the ratings reach magnitude {self.rating_scale:g}; "
                "rescale them (e.g. to a 1-5 range)")
