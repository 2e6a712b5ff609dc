"""The exact explicit-rating solvers behind ``fit``: ``solver="als"`` and ``solver="gibbs"``.

Both lay the ratings out once (:func:`mfjax.solvers.als.sweep.make_layout`: sorted by user and by
item, each row padded to whole blocks) and take one jitted sweep per ``fit`` epoch.

``"als"`` (:class:`ALSSolver`): exact block-coordinate descent on :func:`mfjax.loss`
(users, then items, then μ; :func:`mfjax.solvers.als.sweep.als_sweep`), so the objective reported
in ``history`` never increases. The state is ``ALSState(params, sweep)``.

``"gibbs"`` (:class:`GibbsSolver`): Bayesian PMF with biases
(:func:`mfjax.solvers.gibbs.sampler.gibbs_sweep`); the regularization is learned (Normal-Wishart
hyperpriors) and ``reg``/``bias_reg`` are not used. A run is ``burn_in + samples``
sweeps (``fit``'s ``epochs`` is replaced by that count); the sweep numbered s draws
its normals from ``fold_in(PRNGKey(seed), s)`` and its few Gamma variates (τ and
the Bartlett χ²) on the host from ``default_rng([seed, s])``
(:func:`mfjax.solvers.gibbs.sampler.host_gammas`: ``jax.random.gamma`` would add ~2 s of compile). After burn-in every ``thin``-th sample is kept
in the state (on the device, so a checkpoint holds them and a resumed run ends
with the same samples). The model is their posterior mean as one rank k·S model,

    r̂(u, i) = (1/S) Σ_s r̂_s(u, i) = μ̄ + b̄_u + b̄_i + ⟨[p_u¹ … p_uˢ]/√S, [q_i¹ … q_iˢ]/√S⟩,

(:func:`mfjax.solvers.gibbs.sampler.average_params`, exact), and :meth:`GibbsSolver.posterior`
returns the per-sample biases, μ and noise precisions τ_s [S], with which
:meth:`mfjax.Model.predict` (``return_std=True``) recovers each sample's
prediction from block s of the concatenated factors.

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

from ...kernels import als as als_kernel
from .sweep import als_half_step, default_window, make_layout
from ...objectives.explicit import Params
from ...data import Ratings
from ..gibbs.sampler import GibbsState, gibbs_init, gibbs_sweep, host_gammas, rating_scale
from ...training.config import DEFAULTS
from ..base import register_solver, restore_leaves
from .. import finite, memory

__all__ = ["als_step", "ALSState", "ALSSolver", "GibbsFitState", "GibbsSolver", "SAMPLE_BUDGET_BYTES",
           "GIBBS_DEFAULTS", "SOLVER_DEFAULTS", "GIBBS_MAX_RATINGS", "explicit_defaults", "sample_plan"]

#: Device memory allowed for the kept Gibbs samples (and so for the returned model).
SAMPLE_BUDGET_BYTES = 1 << 30

#: Rows per ``lax.map`` step of a half-sweep (ML-1M rank 10 Gibbs sweep: 0.19-0.38 s at 256,
#: 0.10 s at 1024; the chunk's Gram matrices are 1024·(k+1)² numbers).
ROWS_PER_CHUNK = 1024

#: ``burn_in`` and ``samples`` when not given to ``fit``.
GIBBS_DEFAULTS = {"burn_in": 20, "samples": 80}


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _layout(train: Ratings):
    return make_layout(train.users, train.items, train.ratings, n_users=train.n_users,
                       n_items=train.n_items, dtype=_dtype(), rows_per_chunk=ROWS_PER_CHUNK)


def _init_params(train: Ratings, config, dtype) -> Params:
    """Factors i.i.d. N(0, init_scale²) from (seed, 0) on the host, biases 0, μ the mean."""
    rng = np.random.default_rng([config.seed, 0])
    f = lambda n: jnp.asarray(config.init_scale * rng.standard_normal((n, config.rank)), dtype)
    return Params(f(train.n_users), f(train.n_items), jnp.zeros(train.n_users, dtype),
                  jnp.zeros(train.n_items, dtype), jnp.asarray(float(train.mean), dtype))


class _Exact:
    """What both solvers share: no mesh, host placement, identity finalize."""

    OPTIONS: tuple[str, ...] = ()

    def __init__(self):
        self.seen = None

    def _setup(self, train: Ratings, config):
        if config.mesh is not None:
            raise ValueError(f"fit: solver={config.solver!r} runs on one device; pass mesh=None")
        config.members = 1  # one exact model; ``ensemble`` does not apply
        config.record["ensemble"] = 1
        self.config, self.n = config, len(train)
        self.layout = _layout(train)
        self.window = default_window(config.rank, itemsize=jnp.dtype(_dtype()).itemsize)

    def put(self, x):
        return jnp.asarray(x)

    def restore(self, state, leaves):
        return restore_leaves(state, leaves)

    def finalize(self, params: Params) -> Params:
        return params


@partial(jax.jit, static_argnames=("window", "kernel_threads"))
def als_step(p: Params, layout, reg, bias_reg, *, window: int, kernel_threads: int = 0):
    """:func:`mfjax.solvers.als.sweep.als_sweep` (users, items, μ) and :func:`mfjax.loss` per rating after it.

    The loss costs no extra pass: the item half-step also returns SSE = Σ w e², and
    the μ step μ += Δ with Δ = Σ w e / Σ w lowers it to SSE − (Σ w e)²/Σ w exactly;
    the penalty is Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + Σ_i c_i (…), c the per-row Σ w.

    ``kernel_threads`` > 0 takes both half-steps with the C++ kernel
    (:func:`mfjax.kernels.als.call`, same outputs) on that many threads; 0: XLA.
    """
    if kernel_threads:
        kern = partial(als_kernel.call, reg=reg, bias_reg=bias_reg, n_threads=kernel_threads)
        P, bu, _, _ = kern(layout.users, p.item_factors, p.item_bias, p.global_bias)
        Q, bi, resid, sse = kern(layout.items, P, bu, p.global_bias)
    else:
        kw = dict(reg=reg, bias_reg=bias_reg, window=window)
        P, bu, _ = als_half_step(layout.users, p.user_factors, p.user_bias, p.item_factors,
                                 p.item_bias, p.global_bias, **kw)
        Q, bi, resid, sse = als_half_step(layout.items, p.item_factors, p.item_bias, P, bu,
                                          p.global_bias, with_sse=True, **kw)
    total_w = jnp.sum(layout.items.weights.astype(P.dtype))
    delta = resid / total_w
    sse = sse - resid * delta

    def pen(side, F, b):
        c = jax.ops.segment_sum(side.weights.astype(F.dtype), side.keys, num_segments=side.n_rows)
        return jnp.sum(c * (reg * jnp.sum(F * F, 1) + bias_reg * b * b))

    loss = 0.5 * (sse + pen(layout.users, P, bu) + pen(layout.items, Q, bi)) / total_w
    return Params(P, Q, bu, bi, p.global_bias + delta), loss


class ALSState(NamedTuple):
    """``params``: the current model; ``sweep``: sweeps done."""

    params: Params
    sweep: int


class ALSSolver(_Exact):
    """``solver="als"``: one exact ALS sweep per epoch (see the module docstring).

    ``history[j]["loss"]`` is :func:`mfjax.loss` per rating after sweep j+1, non-increasing.
    """

    name = "als"

    def init(self, train: Ratings, config) -> ALSState:
        memory.check_fit(train, config, "als")  # refuse what cannot fit, with the figure
        self._setup(train, config)
        c = config
        self.reg = c.reg
        self.bias_reg = c.reg if c.bias_reg is None else c.bias_reg
        # The C++ half-step on a CPU backend when it builds (MFJAX_ALS_KERNEL=0: XLA).
        self.kernel_threads = als_kernel.threads() if als_kernel.usable_for(_dtype()) else 0
        c.record["als_kernel"] = bool(self.kernel_threads)
        return ALSState(_init_params(train, c, _dtype()), 0)

    def step(self, state: ALSState):
        p, loss = als_step(state.params, self.layout, self.reg, self.bias_reg, window=self.window,
                           kernel_threads=self.kernel_threads)
        finite.check_sweep("als", state.sweep + 1, float(loss), self.layout.users.ratings, self.reg)
        return ALSState(p, state.sweep + 1), {"loss": float(loss)}

    def params(self, state: ALSState) -> Params:
        return state.params


class GibbsFitState(NamedTuple):
    """The Gibbs solver's state.

    Attributes:
        chain: the Markov chain (:class:`mfjax.solvers.gibbs.sampler.GibbsState`).
        sweep: sweeps done.
        kept: samples kept so far.
        user_factors, item_factors: kept samples' factors [S, n, k] (zeros beyond ``kept``).
        user_bias, item_bias: [S, n]; global_bias, tau: [S].
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


@partial(jax.jit, donate_argnums=0)
def _keep(slots: tuple, chain: GibbsState, j):
    """Write the chain's sample into slot j of the kept arrays (updated in place)."""
    p = chain.params
    new = (p.user_factors, p.item_factors, p.user_bias, p.item_bias, p.global_bias, chain.tau)
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


class GibbsSolver(_Exact):
    """``solver="gibbs"``: Bayesian PMF by Gibbs sampling (see the module docstring).

    ``history[j]`` has ``loss`` = ½ Σ e²/n of sample j+1 (the data term, not averaged)
    and ``tau``, its noise precision.
    """

    name = "gibbs"
    OPTIONS = ("burn_in", "samples")

    def init(self, train: Ratings, config) -> GibbsFitState:
        memory.check_fit(train, config, "gibbs")  # refuse what cannot fit, with the figure
        self._setup(train, config)
        c = config
        opts = {**GIBBS_DEFAULTS, **c.options}
        self.burn_in = int(opts["burn_in"])
        samples = int(opts["samples"])
        if self.burn_in < 0 or samples < 1:
            raise ValueError(f"fit: burn_in must be >= 0 and samples >= 1, got "
                             f"{self.burn_in}, {samples}")
        dtype = _dtype()
        self.thin, n_keep = sample_plan(samples, train.n_users + train.n_items, c.rank,
                                        jnp.dtype(dtype).itemsize)
        c.epochs = self.burn_in + samples
        c.record.update(epochs=c.epochs, gibbs_thin=self.thin, gibbs_kept=n_keep)
        self.key = jax.random.PRNGKey(c.seed)
        self.n_eff = float(len(train))  # Σ w: fit's ratings are unweighted
        self.scale = rating_scale(train.ratings)  # priors scaled to the ratings' spread
        chain = gibbs_init(_init_params(train, c, dtype), self.layout, window=self.window,
                           scale=self.scale)
        z = lambda *s: jnp.zeros((n_keep,) + s, dtype)
        return GibbsFitState(chain, 0, 0, z(train.n_users, c.rank), z(train.n_items, c.rank),
                             z(train.n_users), z(train.n_items), z(), z())

    def step(self, state: GibbsFitState):
        gammas = host_gammas(np.random.default_rng([self.config.seed, state.sweep]), self.layout,
                             self.config.rank, n_eff=self.n_eff)
        chain = gibbs_sweep(state.chain, self.layout, self.key, state.sweep, window=self.window,
                            gammas=gammas, scale=self.scale)
        state = state._replace(chain=chain, sweep=state.sweep + 1)
        finite.check_sweep("gibbs", state.sweep, float(chain.sse), self.layout.users.ratings)
        j = state.sweep - 1 - self.burn_in
        if j >= 0 and j % self.thin == 0 and state.kept < state.tau.shape[0]:
            arrays = _keep(tuple(state[3:]), chain, state.kept)
            state = state._replace(kept=state.kept + 1, **dict(zip(GibbsFitState._fields[3:], arrays)))
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

    def finalize(self, params: Params) -> Params:
        """``params`` without trailing all-zero factor blocks (samples never drawn)."""
        k, S = self.config.rank, params.rank // self.config.rank
        if S <= 1:
            return params
        zero = np.asarray(jnp.all(params.user_factors.reshape(-1, S, k) == 0, axis=(0, 2))
                          & jnp.all(params.item_factors.reshape(-1, S, k) == 0, axis=(0, 2)))
        keep = S - int(np.argmin(zero[::-1])) if not zero.all() else S
        return params._replace(user_factors=params.user_factors[:, :keep * k],
                               item_factors=params.item_factors[:, :keep * k])

    def posterior(self, state: GibbsFitState, params: Params) -> dict | None:
        """The per-sample arrays behind ``params`` (for ``Model.predict(return_std=True)``).

        ``{"user_bias" [S, n_users], "item_bias" [S, n_items], "global_bias" [S], "tau" [S]}``
        with S = rank(params) / k, as host arrays; None when ``params`` is not an
        average of kept samples (e.g. early stopping picked a burn-in sweep).
        """
        S = params.rank // self.config.rank
        if state.kept == 0 or S > state.kept or params.rank % self.config.rank:
            return None
        if not np.allclose(np.asarray(params.user_bias), np.asarray(state.user_bias[:S].mean(0)),
                           rtol=1e-5, atol=1e-6):
            return None
        return {k: np.asarray(getattr(state, k)[:S])
                for k in ("user_bias", "item_bias", "global_bias", "tau")}


#: ``fit``'s rank, reg and epochs per explicit solver when not given (benchmarks/RESULTS.md,
#: "explicit solvers"); optax keeps the values it always had (mfjax.training.config.DEFAULTS).
SOLVER_DEFAULTS = {
    "optax": dict(rank=DEFAULTS["rank"], reg=DEFAULTS["reg"], epochs=DEFAULTS["epochs"]),
    "als": dict(rank=10, reg=0.08, epochs=6),
    "gibbs": dict(rank=10, reg=DEFAULTS["reg"], epochs=1),  # reg unused; epochs = burn_in + samples
}

#: ``solver="auto"`` for explicit ratings: Gibbs up to this many ratings (ML-100K, ML-1M: the most
#: accurate, in seconds), the Optax minibatch solver above (ML-10M/20M: a Gibbs run of 100 sweeps
#: would take minutes there, Optax's 25 epochs well under one).
GIBBS_MAX_RATINGS = 2_000_000


def explicit_defaults(n_ratings: int, solver: str, rank, reg, epochs, optax_args: bool = False):
    """``(solver, rank, reg, epochs)`` for ``fit(objective="explicit")`` with ``None`` filled in.

    ``solver="auto"`` is ``"gibbs"`` for at most :data:`GIBBS_MAX_RATINGS` ratings unless
    ``optax_args`` (the caller set an argument only the Optax solver uses), else
    ``"optax"``; each ``None`` takes that solver's :data:`SOLVER_DEFAULTS`.
    """
    if solver == "auto":
        solver = "gibbs" if n_ratings <= GIBBS_MAX_RATINGS and not optax_args else "optax"
    d = SOLVER_DEFAULTS.get(solver, SOLVER_DEFAULTS["optax"])
    pick = lambda v, k: d[k] if v is None else v
    return solver, pick(rank, "rank"), pick(reg, "reg"), pick(epochs, "epochs")


register_solver("explicit", "als", ALSSolver)
register_solver("explicit", "gibbs", GibbsSolver)
