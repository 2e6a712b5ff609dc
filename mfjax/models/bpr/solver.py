"""The BPR solver: ``fit(objective="bpr")`` with Optax over sampled triples.

Each epoch visits every training interaction (u, i) once, in an order drawn from
``jax.random.fold_in(key(seed), epoch)``, pairs it with a negative j drawn
uniformly from u's unseen items (:func:`mfjax.models.bpr.objective.sample_negatives`,
exact: j is never one of u's training items) and applies ``fit``'s optimizer to
each minibatch of ``batch_size`` triples. The whole epoch, sampling included, is
one jitted program (a ``lax.scan`` over minibatches); it is compiled once per
(shape, optimizer) and reused across fits. The minibatch objective is the mean
over its triples of :func:`mfjax.models.bpr.objective.bpr_loss`'s terms::

    ℓ(u, i, j) = −log σ(b_i − b_j + <p_u, q_i − q_j>)
                 + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²) + ½ λ_b (b_i² + b_j²)

(λ ``reg``, λ_b ``bias_reg``, None: λ). The history's ``loss`` is the epoch's mean ℓ.
The model has item biases b_i; user and global biases stay 0.

On a mesh (``fit(mesh=...)``) the tables are placed by ``table_sharding``
(:class:`mfjax.distributed.Placement`) and each minibatch's triples are split over the
``data`` axis; the triples are the same as on one device (``jax.random`` draws do not
depend on the sharding), so the result matches it to float tolerance.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import distributed
from ...data import interactions
from ...objectives.explicit import Params
from ...data import Ratings
from .objective import bpr_manual_grad, sample_negatives
from ...solvers.minibatch.epoch import host_init
from ...data.interactions import implicit_values
from ...solvers.minibatch.optimizers import make_optimizer
from ...solvers.base import restore_leaves

__all__ = ["BPRState", "BPRSolver", "bpr_epoch", "require_negatives"]


def require_negatives(users, items, n_items: int) -> None:
    """Raise ValueError when no user with interactions has an unseen item to sample.

    Only users with at least one interaction make triples; users of the ID table
    without any neither count for nor against. A user who has every item (but not all
    users) is fine: their triples get weight 0 (:func:`mfjax.models.bpr.objective.sample_negatives`).

    Args:
        users, items: the interactions' row indices [n] (repeats allowed).
        n_items: the number of items.
    """
    pairs = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
    per_user = np.bincount(pairs // n_items) if pairs.size else np.zeros(0, np.int64)
    active = per_user[per_user > 0]
    if active.size and (active == n_items).all():
        raise ValueError(f"fit(objective='bpr'): every user with interactions ({active.size}) has "
                         f"interacted with every item ({n_items}), so there are no negatives "
                         "to sample; BPR needs unseen items")


class BPRState(NamedTuple):
    """The BPR solver's state.

    Attributes:
        params: the model (user and global bias 0).
        opt_state: the optimizer's state.
        epoch: epochs done (with the seed, it keys the epoch's order and negatives).
    """

    params: Params
    opt_state: Any
    epoch: int


def bpr_epoch(opt, n_items: int, batch_size: int, reg: float, bias_reg: float, params, opt_state,
              key, epoch, users, items, indptr, *, sharding=None):
    """One BPR epoch (module docstring), jittable with the first five arguments static.

    Args:
        opt: an ``optax.GradientTransformation``.
        n_items: the number of items.
        batch_size: triples per minibatch B.
        reg, bias_reg: λ, λ_b.
        params, opt_state: the model and optimizer state.
        key: the run's PRNG key; the epoch uses ``fold_in(key, epoch)``.
        epoch: epochs done before this one (a traced int).
        users, items: the deduplicated interactions [nnz], sorted by (user, item).
        indptr: [n_users + 1], CSR pointers of ``items`` per user.
        sharding: a ``jax.sharding.Sharding`` for the minibatches [n_batches, B]
            (static; on a mesh, split over ``data``), or None.

    Returns:
        ``(params, opt_state, mean −log σ(x) over the triples, negatives [n_batches * B])``; padding
        slots of the last minibatch have negative −1.
    """
    nnz = users.shape[0]
    n_batches = -(-nnz // batch_size)
    kperm, kneg = jax.random.split(jax.random.fold_in(key, epoch))
    order = jax.random.permutation(kperm, nnz)
    pad = n_batches * batch_size - nnz
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)])
    real = jnp.arange(n_batches * batch_size) < nnz
    u, i = users[order], items[order]
    j, valid = sample_negatives(kneg, u, indptr, items, n_items)
    w = (real & valid).astype(params.item_factors.dtype)
    j = jnp.where(real, j, -1)
    shaped = [x.reshape(n_batches, batch_size) for x in (u, i, jnp.maximum(j, 0), w)]
    if sharding is not None:
        shaped = [jax.lax.with_sharding_constraint(x, sharding) for x in shaped]

    def step(carry, batch):
        params, opt_state = carry
        bu, bi, bj, bw = batch
        g = bpr_manual_grad(params, bu, bi, bj, reg=reg, bias_reg=bias_reg, weights=bw)
        g = jax.tree.map(lambda x: x / batch_size, g)
        x = (jnp.sum(params.user_factors[bu] * (params.item_factors[bi] - params.item_factors[bj]),
                     axis=1) + params.item_bias[bi] - params.item_bias[bj])
        value = jnp.sum(bw * jax.nn.softplus(-x))
        updates, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), values = jax.lax.scan(step, (params, opt_state), shaped)
    # The reported loss is the mean −log σ(x) part; the penalty acts through the gradient.
    return params, opt_state, jnp.sum(values) / jnp.maximum(jnp.sum(w), 1.0), j


@functools.lru_cache(maxsize=8)
def _cached(optimizer: str, learning_rate, n_items, batch_size, reg, bias_reg):
    opt = make_optimizer(optimizer, learning_rate, None)
    return opt, jax.jit(functools.partial(bpr_epoch, opt, n_items, batch_size, reg, bias_reg),
                        donate_argnums=(0, 1))


class BPRSolver:
    """:class:`mfjax.BPR`: minibatch BPR with any Optax optimizer."""

    min_epochs = 1

    def __init__(self):
        self.seen, self.facts = None, {}

    def init(self, train: Ratings, spec, run) -> BPRState:
        """Lay out the interactions, draw the initial factors, compile (or reuse) the epoch."""
        c = self.spec = spec
        implicit_values(train, "bpr")
        require_negatives(train.users, train.items, train.n_items)
        self.data = interactions.build_implicit_data(train.users, train.items, None,
                                                     n_users=train.n_users, n_items=train.n_items)
        self.seen = (np.asarray(self.data.user_indptr, np.int64), np.asarray(self.data.user_items))
        bias_reg = c.reg if c.bias_reg is None else c.bias_reg
        batch = int(min(c.batch_size, self.data.user_items.shape[0]))
        p = host_init(run.seed, train.n_users, train.n_items, c.rank, 1, c.init_scale, 0.0)
        d, self.place = self.data, None
        self.arrays = (d.user_rows, d.user_items, d.user_indptr)
        if run.mesh is None and isinstance(c.optimizer, str) and c.schedule is None:
            opt, self.run = _cached(c.optimizer, c.learning_rate, train.n_items, batch, c.reg, bias_reg)
        else:
            opt, sharding = make_optimizer(c.optimizer, c.learning_rate, c.schedule), None
            if run.mesh is not None:
                self.place = pl = distributed.Placement(run.mesh, train.n_users, train.n_items,
                                                        run.table_sharding == "sharded")
                p = pl.put_tree(pl.pad_params(p))
                self.arrays = tuple(pl.put_replicated(np.asarray(x)) for x in self.arrays)
                sharding = jax.sharding.NamedSharding(
                    run.mesh, jax.sharding.PartitionSpec(None, distributed.DATA))
            self.run = jax.jit(functools.partial(bpr_epoch, opt, train.n_items, batch, c.reg,
                                                 bias_reg, sharding=sharding),
                               donate_argnums=(0, 1))
        self.key = jax.random.key(run.seed)
        opt_state = opt.init(p)
        return BPRState(p, opt_state if self.place is None else self.place.put_tree(opt_state), 0)

    def put(self, x):
        """A host array beside the parameters (replicated on a mesh)."""
        return jnp.asarray(x) if self.place is None else self.place.put_replicated(x)

    def step(self, state: BPRState) -> tuple[BPRState, dict]:
        """One epoch: every interaction once, each with a fresh negative."""
        params, opt_state, value, _ = self.run(state.params, state.opt_state, self.key,
                                               state.epoch, *self.arrays)
        return BPRState(params, opt_state, state.epoch + 1), {"loss": float(value)}

    def params(self, state: BPRState) -> Params:
        """The model the state holds (mesh padding rows removed)."""
        return state.params if self.place is None else self.place.unpad_params(state.params)

    def restore(self, state: BPRState, leaves: list) -> BPRState:
        """The state from a checkpoint's host leaves, placed like ``state``."""
        return restore_leaves(state, leaves,
                              jnp.asarray if self.place is None else self.place.put_tree)

    def finalize(self, state, params: Params) -> Params:
        """Unchanged on one device; on a mesh, fetched to the host."""
        if self.place is None:
            return params
        return jax.tree.map(jnp.asarray, distributed.to_host(params))

    def posterior(self, state, params):
        return None

    def divergence_hint(self) -> str:
        return (f"try a smaller learning_rate (now {self.spec.learning_rate}) or a larger reg "
                f"(now {self.spec.reg})")
