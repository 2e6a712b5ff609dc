"""The solver of :class:`mfjax.BPR` with WARP or with features (:mod:`mfjax.models.bpr.hybrid`).

Plain BPR (``loss="bpr"``, no ``features=``) keeps :class:`mfjax.models.bpr.solver.BPRSolver`
unchanged; :func:`make_solver` hands the other cases to :class:`HybridSolver`. Its epoch
is BPR's (every interaction once, in the order of ``fold_in(key(seed), epoch)``, one
jitted ``lax.scan`` over minibatches of ``batch_size``), with two changes:

- each minibatch composes the tables (V, b) = compose(θ) (O((n_users t_u + n_items t_i) k),
  t the most features of a row), takes the hand-written gradient of the pairwise loss
  on them and pulls it back to θ (:func:`mfjax.models.bpr.hybrid.pull_back`); without
  features θ is BPR's tables and the pull-back the identity;
- ``loss="warp"``: each minibatch draws ``max_sampled`` negatives per positive from the
  minibatch's own key and keeps the first violator with its rank weight
  (:func:`mfjax.models.bpr.warp.warp_negatives`, scored by the current tables).

``loss="bpr"`` with features draws the same orders and negatives as plain BPR, so
features that are all zero train exactly plain BPR's tables. One device only.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...data import interactions
from .objective import sample_negatives
from .solver import BPRSolver, BPRState, require_negatives
from ...data.interactions import implicit_values
from ...solvers.minibatch.epoch import host_init
from ...solvers.minibatch.optimizers import make_optimizer
from .hybrid import Layout, SideLayout, compose, init_hybrid, layout_of, pair_terms, pull_back
from .warp import warp_negatives

__all__ = ["HybridSolver", "make_solver", "hybrid_epoch", "identity_layout"]


def make_solver(spec):
    """A solver that picks at ``init``: :class:`BPRSolver` for plain BPR, else
    :class:`HybridSolver` (the choice needs ``run.features``)."""
    return _Dispatch()


class _Dispatch:
    """Delegates to the solver :func:`make_solver` picks once ``init`` sees the run."""

    min_epochs = 1

    def __init__(self):
        self.inner, self.seen, self.facts = None, None, {}

    def init(self, train, spec, run):
        plain = spec.loss == "bpr" and run.features is None
        self.inner = BPRSolver() if plain else HybridSolver()
        state = self.inner.init(train, spec, run)
        self.seen, self.facts = self.inner.seen, self.inner.facts
        return state

    # The Solver protocol's methods, spelled out so that ``solver.step`` may be looked up
    # before ``init`` has picked (``solver.step(solver.init(...))``); they forward at call time.
    def step(self, state):
        return self.inner.step(state)

    def params(self, state):
        return self.inner.params(state)

    def put(self, x):
        return self.inner.put(x)

    def restore(self, state, leaves):
        return self.inner.restore(state, leaves)

    def finalize(self, state, params):
        return self.inner.finalize(state, params)

    def posterior(self, state, params):
        return self.inner.posterior(state, params)

    def divergence_hint(self):
        return "" if self.inner is None else self.inner.divergence_hint()

    def __getattr__(self, name):
        if name == "inner" or self.__dict__.get("inner") is None:
            raise AttributeError(name)
        return getattr(self.inner, name)


def identity_layout(n_users: int, n_items: int, dtype=np.float32) -> tuple[Layout, tuple]:
    """The layout of a fit without features: every row its identity, G = 0 (d = 1)."""
    side = lambda n: SideLayout(np.zeros((n, 1), np.int32), np.zeros((n, 1), dtype),
                                np.ones(n, dtype))
    return Layout(side(n_users), side(n_items)), (1, 1)


def hybrid_epoch(opt, n_items: int, batch_size: int, reg: float, bias_reg: float, loss: str,
                 max_sampled: int, theta, opt_state, key, epoch, users, items, indptr, layout):
    """One epoch (module docstring), jittable with the first seven arguments static.

    Args:
        opt: an ``optax.GradientTransformation``.
        n_items, batch_size, reg, bias_reg: as :func:`mfjax.models.bpr.solver.bpr_epoch`.
        loss: ``"bpr"`` or ``"warp"``; max_sampled: M (WARP).
        theta, opt_state: :class:`mfjax.models.bpr.hybrid.HybridParams` and its optimizer state.
        key, epoch: the run's key and the epochs done (traced).
        users, items, indptr: the interactions [nnz] sorted by (user, item), their CSR.
        layout: the :class:`mfjax.models.bpr.hybrid.Layout`.

    Returns:
        ``(theta, opt_state, mean pairwise loss over the weighted triples)``.
    """
    nnz = users.shape[0]
    n_batches = -(-nnz // batch_size)
    kperm, kneg = jax.random.split(jax.random.fold_in(key, epoch))
    order = jax.random.permutation(kperm, nnz)
    pad = n_batches * batch_size - nnz
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)])
    real = (jnp.arange(n_batches * batch_size) < nnz).astype(theta.item_factors.dtype)
    u, i = users[order], items[order]
    if loss == "bpr":  # the negatives of plain BPR, drawn for the epoch
        j, valid = sample_negatives(kneg, u, indptr, items, n_items)
        real, j = real * valid.astype(real.dtype), jnp.maximum(j, 0)
        keys = jnp.zeros((n_batches,), jnp.uint32)
    else:
        j = jnp.zeros_like(u)
        keys = jax.random.key_data(jax.random.split(kneg, n_batches))
    shaped = [x.reshape(n_batches, batch_size) for x in (u, i, j, real)] + [keys]

    def step(carry, batch):
        theta, opt_state = carry
        bu, bi, bj, bw, bk = batch
        V = compose(theta, layout)
        r = None
        if loss == "warp":
            bj, r, found = warp_negatives(jax.random.wrap_key_data(bk), V, bu, bi, indptr,
                                          items, n_items, max_sampled)
            bw = bw * found.astype(bw.dtype)
        f, grad = pair_terms(loss, bu, bi, bj, r, reg=0.0, bias_reg=0.0, weights=bw)
        value = f(V)  # the pairwise part, unregularized, for the history
        _, grad = pair_terms(loss, bu, bi, bj, r, reg=reg, bias_reg=bias_reg, weights=bw)
        g = pull_back(grad(V), theta, layout)
        g = jax.tree.map(lambda x: x / batch_size, g)
        updates, opt_state = opt.update(g, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), (value, jnp.sum(bw))

    (theta, opt_state), (values, counts) = jax.lax.scan(step, (theta, opt_state), shaped)
    return theta, opt_state, jnp.sum(values) / jnp.maximum(jnp.sum(counts), 1.0)


@functools.lru_cache(maxsize=8)
def _cached(optimizer, learning_rate, n_items, batch_size, reg, bias_reg, loss, max_sampled):
    opt = make_optimizer(optimizer, learning_rate, None)
    return opt, jax.jit(functools.partial(hybrid_epoch, opt, n_items, batch_size, reg, bias_reg,
                                          loss, max_sampled), donate_argnums=(0, 1))


class HybridSolver(BPRSolver):
    """:class:`mfjax.BPR` with ``loss="warp"`` or ``features=`` (module docstring)."""

    def init(self, train, spec, run) -> BPRState:
        """Lay out the interactions and the features, draw θ, compile (or reuse) the epoch.

        Raises:
            ValueError: a mesh (this solver runs on one device).
        """
        if run.mesh is not None:
            raise ValueError("fit: BPR with loss='warp' or features= runs on one device; "
                             "drop mesh= (plain BPR takes it)")
        c = self.spec = spec
        implicit_values(train, "bpr")
        require_negatives(train.users, train.items, train.n_items)
        d = self.data = interactions.build_implicit_data(
            train.users, train.items, None, n_users=train.n_users, n_items=train.n_items)
        self.seen = (np.asarray(d.user_indptr, np.int64), np.asarray(d.user_items))
        bias_reg = c.reg if c.bias_reg is None else c.bias_reg
        batch = int(min(c.batch_size, d.user_items.shape[0]))
        base = host_init(run.seed, train.n_users, train.n_items, c.rank, 1, c.init_scale, 0.0)
        if run.features is None:
            layout, (du, di) = identity_layout(train.n_users, train.n_items)
        else:
            active_u = np.diff(self.seen[0]) > 0
            active_i = np.bincount(self.seen[1], minlength=train.n_items) > 0
            layout, (du, di) = layout_of(run.features, train.user_ids, train.item_ids,
                                         active_u, active_i, c.identity_features)
        self.layout = jax.tree.map(jnp.asarray, layout)
        theta = init_hybrid(base, du, di, c.init_scale, run.seed)
        self.place, self.key = None, jax.random.key(run.seed)
        self.arrays = (d.user_rows, d.user_items, d.user_indptr)
        if isinstance(c.optimizer, str) and c.schedule is None:
            opt, run_epoch = _cached(c.optimizer, c.learning_rate, train.n_items, batch, c.reg,
                                     bias_reg, c.loss, c.max_sampled or 1)
        else:
            opt = make_optimizer(c.optimizer, c.learning_rate, c.schedule)
            run_epoch = jax.jit(functools.partial(hybrid_epoch, opt, train.n_items, batch, c.reg,
                                                  bias_reg, c.loss, c.max_sampled or 1),
                                donate_argnums=(0, 1))
        self.run = lambda th, st, key, ep, *arrays: run_epoch(th, st, key, ep, *arrays,
                                                              self.layout) + (None,)
        self.facts = {"feature_columns": [int(du), int(di)]} if run.features is not None else {}
        return BPRState(theta, opt.init(theta), 0)

    def params(self, state: BPRState):
        """The composed tables (V, b) as BPR's :class:`mfjax.objectives.explicit.Params`."""
        return compose(state.params, self.layout)
