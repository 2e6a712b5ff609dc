"""The solver behind ``fit(train, mfjax.BayesianFM(...), features=F)``.

A :class:`mfjax.solvers.gibbs.solver.GibbsSolver` whose chain is the factorization
machine of :mod:`mfjax.models.bayesian_fm.sampler`: it keeps, averages and returns the
samples the same way (every ``thin``-th after burn-in; the model is their posterior
mean as one rank k·S biased MF, with the per-sample biases and τ for
``predict(return_std=True)``). A sample's θ rows already hold the feature terms
(θ_u = v_u + B_Uᵀx_u), so the returned model scores the training users and items
without the features.

The relation blocks are built in :meth:`BayesianFMSolver.init` from ``run.features``
(``Features.users`` / ``.items``, FeatureTables read with ``rows_for`` in the order of
the training IDs) and, with ``spec.implicit_features``, from the training ratings only.

Serving from features (:mod:`mfjax.models.bayesian_fm.serving`): for each kept sample s
the solver also keeps each side's ID prior's mean and precisions μˢ, λˢ [K] and, for a
side with an attribute table, the attribute columns' coefficients Bˢ [m, K] (the
table's m columns in its order; the implicit columns are left out: a row without
ratings has none), as ``Model.posterior`` fields (:data:`mfjax.models.bayesian_fm.posterior.FEATURE_FIELDS`).
A row of the training tables without ratings (an ID known only from features, which
``fit`` appends: the record's ``feature_ids``) gets its exact posterior mean
E[θˢ] = μˢ + Bˢᵀx in every sample instead of the average of its prior draws.
"""
from __future__ import annotations

import jax
import numpy as np

from ...data import Ratings
from ...kernels import als as als_kernel
from ...solvers.als.layout import squared_error
from ...solvers.als.solver import init_params
from ...solvers.gibbs.solver import GibbsFitState, GibbsSolver, sample_plan
from .blocks import attribute_block, implicit_block, side_blocks
from .sampler import FMHyper, fm_draws, fm_init, fm_sweep
from .serving import compose_rows, feature_theta_rows

__all__ = ["BayesianFMSolver", "feature_blocks", "group_shapes", "attribute_columns"]

_squared_error = jax.jit(squared_error)


def feature_blocks(train: Ratings, features, implicit: bool, dtype):
    """``(user_blocks, item_blocks, group_names)``: each side's relation blocks
    (:func:`mfjax.models.bayesian_fm.blocks.side_blocks`, None when it has no column) and
    the names of their groups (``"user:age"``, ``"item:implicit"``, ...).

    Args:
        train: the training ratings (the implicit blocks come from them only).
        features: None, or an object with ``users`` / ``items`` FeatureTables (or None).
        implicit: add the "flipped SVD++" blocks.
    """
    out, names = [], {}
    for side, ids, n, n_other, rows, others in (
            ("user", train.user_ids, train.n_users, train.n_items, train.users, train.items),
            ("item", train.item_ids, train.n_items, train.n_users, train.items, train.users)):
        table = None if features is None else getattr(features, side + "s", None)
        blocks, labels = [], []
        if table is not None and table.n_columns:
            X, groups, gnames = attribute_block(table, ids)
            blocks.append((X, groups))
            labels += [f"{side}:{g}" for g in gnames]
        if implicit:
            blocks.append((implicit_block(rows, others, n, n_other),
                           np.full(n_other, len(labels), np.int64)))
            labels.append(f"{side}:implicit")
        out.append(side_blocks(blocks, n, dtype))
        names[side] = labels
    return out[0], out[1], names


def attribute_columns(train: Ratings, features, blocks) -> dict:
    """Per side with an attribute table: ``(columns [m], (cold rows [c], X [c, m] csr))``:
    the padded columns of the table's m columns in its order, and the training rows
    without ratings that have features, with their attribute rows."""
    out = {}
    for side, blk, ids, rows, n in (("user", blocks[0], train.user_ids, train.users, train.n_users),
                                    ("item", blocks[1], train.item_ids, train.items, train.n_items)):
        table = None if features is None else getattr(features, side + "s", None)
        if table is None or not table.n_columns or blk is None:
            continue
        X, _, _ = attribute_block(table, ids)
        _, _, _, known = table.rows_for(ids)
        cold = np.flatnonzero((np.bincount(np.asarray(rows), minlength=n)[:n] == 0)
                              & np.asarray(known, bool))
        out[side] = (np.asarray(blk.columns)[:table.n_columns], (cold, X[cold]))
    return out


def group_shapes(blocks) -> tuple:
    """``(sizes [G], D)`` of one side's blocks for :func:`~mfjax.models.bayesian_fm.sampler.fm_draws`."""
    return ((np.zeros(0, np.int64), 0) if blocks is None
            else (blocks.group_sizes(), blocks.n_columns))


class BayesianFMSolver(GibbsSolver):
    """``BayesianFM``'s Gibbs solver (module docstring). ``history[j]`` has ``loss`` =
    ½ Σ e²/n of sample j+1 and ``tau``."""

    def init(self, train: Ratings, spec, run) -> GibbsFitState:
        self._setup(train, spec, run)
        self.burn_in, dtype = spec.burn_in, self.dtype
        self.thin, n_keep = sample_plan(spec.samples, train.n_users + train.n_items, spec.rank,
                                        dtype.itemsize)
        self.min_epochs = self.burn_in + 1
        self.n_eff = float(len(train))
        r = np.asarray(train.ratings, np.float64)
        self.rating_scale = float(np.max(np.abs(r))) if r.size else 0.0
        self.kernel_threads = als_kernel.threads() if spec.kernel else 0
        self.hyper = FMHyper()
        self.user_blocks, self.item_blocks, names = feature_blocks(
            train, getattr(run, "features", None), spec.implicit_features, dtype)
        self.groups = (group_shapes(self.user_blocks), group_shapes(self.item_blocks))
        self.attributes = attribute_columns(train, getattr(run, "features", None),
                                            (self.user_blocks, self.item_blocks))
        self.feature_kept = {"user": [], "item": []}
        self.facts = {"gibbs_thin": self.thin, "gibbs_kept": n_keep,
                      "fm_groups": names["user"] + names["item"]}
        params = init_params(train, spec, run.seed, dtype)
        chain = fm_init(params, _squared_error(params, self.layout), self.user_blocks,
                        self.item_blocks)
        z = lambda *s: jax.device_put(np.zeros((n_keep,) + s, dtype))
        return GibbsFitState(chain, 0, 0, z(train.n_users, spec.rank), z(train.n_items, spec.rank),
                             z(train.n_users), z(train.n_items), z(), z())

    def kept_values(self, chain) -> tuple:
        """The parameters and τ (a row's prior mean here depends on its features: the
        priors are kept by :meth:`step` as the FM's own posterior fields)."""
        p = chain.params
        return (p.user_factors, p.item_factors, p.user_bias, p.item_bias, p.global_bias,
                chain.tau)

    def step(self, state: GibbsFitState):
        """One sweep (:meth:`GibbsSolver.step`); a kept sample also keeps each side's ID
        prior (μ, λ) and attribute coefficients (module docstring)."""
        kept = state.kept
        state, info = super().step(state)
        if state.kept > kept:
            c = state.chain
            for side, mean, prec, coef in (("user", c.user_mean, c.user_prec, c.user_coef),
                                           ("item", c.item_mean, c.item_prec, c.item_coef)):
                cols = self.attributes.get(side, (None,))[0]
                self.feature_kept[side].append(
                    (np.asarray(mean), np.asarray(prec),
                     None if cols is None else np.asarray(coef)[cols]))
        return state, info

    def finalize(self, state, params):
        """:meth:`GibbsSolver.finalize`, then the rows without ratings that have features
        take their exact posterior mean (module docstring)."""
        params = super().finalize(state, params)
        S = params.rank // self.spec.rank
        self.cold_rows = {}
        if state.kept == 0:
            return params
        for side, (_, (rows, X)) in self.attributes.items():
            if len(rows) == 0 or len(self.feature_kept[side]) < S:
                continue
            maps = self.maps(side, S)
            theta = feature_theta_rows(X, maps[f"{side}_row_mean"],
                                       maps[f"{side}_feature_coef"])
            vec, bias, sample_bias = compose_rows(theta, self.spec.rank)
            self.cold_rows[side] = (rows, sample_bias)
            f, b = ("user_factors", "user_bias") if side == "user" else ("item_factors",
                                                                           "item_bias")
            dt = np.asarray(getattr(params, f)).dtype
            params = params._replace(**{
                f: jax.numpy.asarray(getattr(params, f)).at[rows].set(vec.astype(dt)),
                b: jax.numpy.asarray(getattr(params, b)).at[rows].set(bias.astype(dt))})
        return params

    def maps(self, side: str, S: int) -> dict:
        """The first S kept samples' row priors (and attribute coefficients, for a side
        with attributes) of ``side`` (``"user"``/``"item"``), as posterior fields."""
        mean, prec, coef = zip(*self.feature_kept[side][:S])
        out = {f"{side}_row_mean": np.stack(mean), f"{side}_row_prec": np.stack(prec)}
        if coef[0] is not None:
            out[f"{side}_feature_coef"] = np.stack(coef)
        return out

    def posterior(self, state: GibbsFitState, params) -> dict | None:
        """:meth:`GibbsSolver.posterior` with the sides' feature maps and the cold rows'
        per-sample biases (module docstring)."""
        S = params.rank // self.spec.rank
        for side, (rows, sample_bias) in getattr(self, "cold_rows", {}).items():
            key = f"{side}_bias"
            arr = np.asarray(getattr(state, key)).copy()
            arr[:S, rows] = sample_bias
            state = state._replace(**{key: arr})
        out = super().posterior(state, params)
        if out is None:
            return None
        for side in ("user", "item"):
            if len(self.feature_kept[side]) >= S:
                out.update(self.maps(side, S))
        return out

    def sweep_chain(self, state: GibbsFitState):
        p = state.chain.params
        draws = fm_draws(np.random.default_rng([self.seed, state.sweep]), self.n,
                         p.user_factors.shape[0], p.item_factors.shape[0], self.spec.rank + 1,
                         *self.groups, self.hyper, self.dtype)
        return fm_sweep(state.chain, self.layout, self.user_blocks, self.item_blocks, draws,
                        hyper=self.hyper, window=self.window, kernel_threads=self.kernel_threads)
