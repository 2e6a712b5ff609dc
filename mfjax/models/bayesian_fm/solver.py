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
the solver also keeps (in the kept slots of the state, so checkpoints hold them) each side's ID prior's mean and precisions μˢ, λˢ [K] and, for a
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
from ...solvers.fm_blocks import attribute_block, implicit_block, side_blocks
from .sampler import FMHyper, fm_draws, fm_init, fm_sweep
from .serving import compose_rows, feature_theta_rows

__all__ = ["BayesianFMSolver", "feature_blocks", "group_shapes", "attribute_columns"]

_squared_error = jax.jit(squared_error)


def feature_blocks(train: Ratings, features, implicit: bool, dtype):
    """``(user_blocks, item_blocks, group_names)``: each side's relation blocks
    (:func:`mfjax.solvers.fm_blocks.side_blocks`, None when it has no column) and
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
        self.facts = {"gibbs_thin": self.thin, "gibbs_kept": n_keep,
                      "fm_groups": names["user"] + names["item"]}
        params = init_params(train, spec, run.seed, dtype)
        chain = fm_init(params, _squared_error(params, self.layout), self.user_blocks,
                        self.item_blocks)
        z = lambda *s: jax.device_put(np.zeros((n_keep,) + s, dtype))
        K, m = spec.rank + 1, {s: len(self.attributes.get(s, ((),))[0]) for s in ("user", "item")}
        return GibbsFitState(chain, 0, 0, z(train.n_users, spec.rank), z(train.n_items, spec.rank),
                             z(train.n_users), z(train.n_items), z(), z(),
                             z(K), z(1 + m["user"], K), z(K), z(1 + m["item"], K))

    def kept_values(self, chain) -> tuple:
        """One sample's arrays in the slots of :class:`GibbsFitState` (so checkpoints keep
        them): the parameters and τ, then per side the ID prior's mean μ [K] in the
        ``*_prior_mean`` slot and [λ; B of the attribute columns] [1 + m, K] in the
        ``*_prior_prec`` slot (a row's prior mean here is μ + Bᵀx: no one (μ, Λ) per side
        as Bayesian MF keeps; :meth:`posterior` gives them their own names)."""
        p = chain.params
        slot = lambda prec, coef, side: jax.numpy.concatenate(
            [prec[None], coef[jax.numpy.asarray(self.attributes[side][0])]], 0) \
            if side in self.attributes else prec[None]
        return (p.user_factors, p.item_factors, p.user_bias, p.item_bias, p.global_bias,
                chain.tau, chain.user_mean, slot(chain.user_prec, chain.user_coef, "user"),
                chain.item_mean, slot(chain.item_prec, chain.item_coef, "item"))

    def finalize(self, state, params):
        """:meth:`GibbsSolver.finalize`, then the rows without ratings that have features
        take their exact posterior mean (module docstring)."""
        params = super().finalize(state, params)
        S = params.rank // self.spec.rank
        self.cold_rows = {}
        if state.kept == 0:
            return params
        for side, (_, (rows, X)) in self.attributes.items():
            if len(rows) == 0 or S > state.kept:
                continue
            maps = self.maps(state, side, S)
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

    def maps(self, state: GibbsFitState, side: str, S: int) -> dict:
        """The first S kept samples' row priors (and attribute coefficients, for a side
        with attributes) of ``side`` (``"user"``/``"item"``), as posterior fields."""
        mean = np.asarray(getattr(state, f"{side}_prior_mean"))[:S]
        slot = np.asarray(getattr(state, f"{side}_prior_prec"))[:S]
        out = {f"{side}_row_mean": mean, f"{side}_row_prec": slot[:, 0]}
        if side in self.attributes:
            out[f"{side}_feature_coef"] = slot[:, 1:]
        return out

    def posterior(self, state: GibbsFitState, params) -> dict | None:
        """:meth:`GibbsSolver.posterior` with each side's row priors and feature maps
        under their own names (:mod:`mfjax.models.bayesian_fm.posterior`) and the cold
        rows' per-sample biases (module docstring)."""
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
            out.pop(f"{side}_prior_mean"), out.pop(f"{side}_prior_prec")
            out.update(self.maps(state, side, S))
        return out

    def sweep_chain(self, state: GibbsFitState):
        p = state.chain.params
        draws = fm_draws(np.random.default_rng([self.seed, state.sweep]), self.n,
                         p.user_factors.shape[0], p.item_factors.shape[0], self.spec.rank + 1,
                         *self.groups, self.hyper, self.dtype)
        return fm_sweep(state.chain, self.layout, self.user_blocks, self.item_blocks, draws,
                        hyper=self.hyper, window=self.window, kernel_threads=self.kernel_threads)
