"""The solver behind ``fit(train, mfjax.FM(...), features=F)``: Optax minibatches of ratings.

An epoch is one jitted ``lax.scan`` over the minibatches of a permutation of the
ratings drawn with NumPy from (seed, epoch) (so a resumed run repeats it). Each step
composes both sides' rows once (:func:`mfjax.models.fm.objective.compose`,
O(nnz(X) k)), takes the hand-written gradient of the minibatch's loss
(:func:`mfjax.models.fm.objective.manual_grad`) and applies the optimizer:

    g = ∂L_B/∂θ;   (updates, s) = optimizer.update(g, s, θ);   θ ← θ + updates

The last minibatch is padded with weight-0 ratings. On a mesh the minibatches are
split over the ``data`` axis and θ, the layout and the optimizer state are replicated
(XLA's SPMD partitioner inserts the gradient all-reduce); row-sharded tables are refused.

Feature rows (:func:`feature_layout`): the attribute rows of ``run.features`` for the
training IDs (:func:`mfjax.solvers.fm_blocks.attribute_block`) and, with
``implicit_features``, the implicit-feedback blocks of the training ratings
(:func:`mfjax.solvers.fm_blocks.implicit_block`). A side without columns gets one empty
column (an inert feature). A row with features and no training ratings has mask 0: it
is its features alone, so IDs known only from features are served from them.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp

from ...data import Ratings
from ...solvers.base import restore_leaves
from ...solvers.fm_blocks import attribute_block, implicit_block
from ...solvers.minibatch.epoch import host_init
from ...solvers.minibatch.optimizers import make_optimizer
from .objective import FMParams, Layout, compose, side_rows, value_and_manual_grad

__all__ = ["FMState", "FMSolver", "feature_layout", "fm_epoch"]


class FMState(NamedTuple):
    """θ, the optimizer's state, and the epochs done (they seed the next shuffle)."""

    params: FMParams
    opt_state: Any
    epoch: int


def feature_layout(train: Ratings, features, implicit: bool, dtype) -> tuple[Layout, dict]:
    """``(layout, facts)``: both sides' feature rows (module docstring) on the host, and
    the column counts ``{"feature_columns": [D_U, D_I]}`` (0: the side has none)."""
    sides, columns = [], []
    active_u = np.bincount(train.users, minlength=train.n_users) > 0
    active_i = np.bincount(train.items, minlength=train.n_items) > 0
    for side, ids, n, n_other, rows, others, active in (
            ("users", train.user_ids, train.n_users, train.n_items, train.users, train.items,
             active_u),
            ("items", train.item_ids, train.n_items, train.n_users, train.items, train.users,
             active_i)):
        table = None if features is None else features.table(side)
        blocks, known = [], np.zeros(n, bool)
        if table is not None and table.n_columns:
            X, _, _ = attribute_block(table, ids)
            blocks.append(X)
            known = np.diff(X.indptr) > 0
        if implicit:
            blocks.append(implicit_block(rows, others, n, n_other))
        X = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((n, 0))
        columns.append(int(X.shape[1]))
        if X.shape[1] == 0:
            X = sp.csr_matrix((n, 1))
        sides.append(side_rows(X, ~(known & ~active), dtype))
    return Layout(*sides), {"feature_columns": columns}


def fm_epoch(opt, batch_size: int, reg: float, bias_reg, theta, opt_state, layout, users,
             items, ratings, order):
    """One epoch (module docstring), jittable with the first four arguments static.

    Args:
        opt: the ``optax.GradientTransformation``.
        batch_size, reg, bias_reg: B, λ, λ_b.
        theta, opt_state: :class:`FMParams` and the optimizer's state.
        layout: the :class:`mfjax.models.fm.objective.Layout`.
        users, items, ratings: the training ratings [N].
        order: int32 [n_batches, B], the epoch's permutation padded with -1.

    Returns:
        ``(theta, opt_state, Σ of the minibatch losses)``.
    """
    kw = dict(reg=reg, bias_reg=bias_reg)

    def step(carry, idx):
        theta, opt_state = carry
        real = idx >= 0
        j = jnp.maximum(idx, 0)
        b = (users[j], items[j], ratings[j])
        w = real.astype(ratings.dtype)
        value, g = value_and_manual_grad(theta, layout, *b, weights=w, **kw)
        updates, opt_state = opt.update(g, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), value

    (theta, opt_state), values = jax.lax.scan(step, (theta, opt_state), order)
    return theta, opt_state, jnp.sum(values)


@functools.lru_cache(maxsize=8)
def cached_epoch(optimizer: str, learning_rate, batch_size: int, reg: float, bias_reg):
    """The optimizer and jitted epoch of a hashable configuration (repeated fits reuse it)."""
    opt = make_optimizer(optimizer, learning_rate)
    return opt, jax.jit(functools.partial(fm_epoch, opt, batch_size, reg, bias_reg),
                        donate_argnums=(0, 1))


def init_theta(train: Ratings, spec, seed: int, d_users: int, d_items: int, dtype) -> FMParams:
    """θ at the start: the ID part is MF's host draw (factors N(0, init_scale²), biases 0,
    μ the training mean), the feature factors N(0, init_scale²) from their own stream,
    the feature weights 0."""
    base = host_init(seed, train.n_users, train.n_items, spec.rank, 1, spec.init_scale,
                     float(train.mean))
    rng = np.random.default_rng([seed, 27])
    draw = lambda d: (spec.init_scale * rng.standard_normal((d, spec.rank))).astype(dtype)
    cast = lambda x: np.asarray(x).astype(dtype)
    return FMParams(*(cast(x) for x in base), draw(d_users), draw(d_items),
                    np.zeros(d_users, dtype), np.zeros(d_items, dtype))


#: :func:`mfjax.models.fm.objective.compose`, compiled (one program, not one per operation).
compose_jit = jax.jit(compose)


class FMSolver:
    """:class:`mfjax.FM`'s minibatch solver (module docstring)."""

    min_epochs = 1

    def __init__(self):
        self.seen, self.facts, self.mesh = None, {}, None

    def init(self, train: Ratings, spec, run) -> FMState:
        """Build the feature rows, draw θ, place everything, compile (or reuse) the epoch.

        Raises:
            ValueError: row-sharded tables on a mesh (FM replicates them).
        """
        if run.mesh is not None and run.table_sharding == "sharded":
            raise ValueError("fit: FM replicates its tables on a mesh (the minibatches are "
                             "split over 'data'); use table_sharding='replicated'")
        self.spec, self.seed, self.n = spec, run.seed, len(train)
        dtype = np.dtype(run.dtype)
        layout, self.facts = feature_layout(train, run.features, spec.implicit_features, dtype)
        du, di = (max(d, 1) for d in self.facts["feature_columns"])
        theta = init_theta(train, spec, run.seed, du, di, dtype)
        self.mesh = run.mesh if run.mesh is not None and run.mesh.size > 1 else None
        data_size = 1 if self.mesh is None else int(self.mesh.shape["data"])
        self.batch = -(-min(spec.batch_size, self.n) // data_size) * data_size
        self.n_batches = -(-self.n // self.batch)
        self.layout = self.put(layout)
        self.data = self.put((train.users.astype(np.int32), train.items.astype(np.int32),
                              np.asarray(train.ratings, dtype)))
        bias_reg = spec.reg if spec.bias_reg is None else spec.bias_reg
        if isinstance(spec.optimizer, str) and spec.schedule is None:
            opt, self.run_epoch = cached_epoch(spec.optimizer, spec.learning_rate, self.batch,
                                               spec.reg, bias_reg)
        else:
            opt = make_optimizer(spec.optimizer, spec.learning_rate, spec.schedule)
            self.run_epoch = jax.jit(functools.partial(fm_epoch, opt, self.batch, spec.reg,
                                                       bias_reg), donate_argnums=(0, 1))
        theta = self.put(theta)
        return FMState(theta, opt.init(theta), 0)

    def put(self, tree):
        """Host arrays placed beside θ (replicated on a mesh)."""
        if self.mesh is None:
            return jax.tree.map(jnp.asarray, tree)
        from ...distributed import put_global

        rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        return jax.tree.map(lambda x: put_global(np.asarray(x), rep), tree)

    def order(self, epoch: int):
        """The epoch's permutation [n_batches, B] (padded with -1), split over ``data`` on a mesh."""
        perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.n).astype(np.int32)
        order = np.full(self.n_batches * self.batch, -1, np.int32)
        order[:self.n] = perm
        order = order.reshape(self.n_batches, self.batch)
        if self.mesh is None:
            return jnp.asarray(order)
        from ...distributed import put_global

        spec = jax.sharding.PartitionSpec(None, "data")
        return put_global(order, jax.sharding.NamedSharding(self.mesh, spec))

    def step(self, state: FMState) -> tuple[FMState, dict]:
        """One epoch; ``loss``: the objective per rating."""
        theta, opt_state, total = self.run_epoch(state.params, state.opt_state, self.layout,
                                                 *self.data, self.order(state.epoch))
        return FMState(theta, opt_state, state.epoch + 1), {"loss": float(total) / self.n}

    def params(self, state: FMState):
        """The composed tables as a biased-MF :class:`mfjax.Params` (what the model serves)."""
        return compose_jit(state.params, self.layout)

    def restore(self, state: FMState, leaves: list) -> FMState:
        return restore_leaves(state, leaves, self.put)

    def finalize(self, state: FMState, params):
        """Host-gathered parameters on a mesh; unchanged on one device."""
        if self.mesh is None:
            return params
        from ...distributed import to_host

        return jax.tree.map(jnp.asarray, to_host(params))

    def posterior(self, state, params):
        return None

    def divergence_hint(self) -> str:
        return (f"try a smaller learning_rate (now {self.spec.learning_rate}) or a larger reg "
                f"(now {self.spec.reg})")
