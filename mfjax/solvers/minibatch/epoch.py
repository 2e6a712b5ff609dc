"""The compiled epoch of the minibatch solver: one jitted ``lax.scan`` over minibatches.

Each step takes one minibatch B (one slot of every grid row, see
:mod:`mfjax.solvers.minibatch.layout`) and applies the optimizer to the gradient of the
minibatch's slice of the objective, from the chosen route
(:mod:`mfjax.solvers.minibatch.gradients`):

    (L_B, g) = route(θ, B)
    (updates, state) = optimizer.update(g, state, θ);   θ ← θ + updates

Data and parameters are arguments, not closed-over constants, so one compiled
epoch serves every call (and can be sharded); parameter and optimizer buffers are
donated. Epochs of hashable configurations are cached (:func:`cached_epoch`), so k
folds of one shape compile once. The per-epoch reshuffle (:func:`remix`) is drawn
with NumPy from (seed, epoch) alone, so a resumed run repeats it.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...objectives.explicit import Params
from .gradients import Batch, make_route
from .layout import Grid
from .optimizers import make_optimizer

__all__ = ["make_epoch", "cached_epoch", "remix", "host_init"]


def make_epoch(opt, grad_fn, n_rows: int, n_batches: int, compiler_options: dict | None = None):
    """The jitted epoch: params, opt_state, grid, order, offsets -> params, opt_state, loss sum.

    Batch ``order[t]`` is step t; row j gives it its slot
    ``(order[t] + offsets[j]) mod n_batches`` (see :func:`mfjax.solvers.minibatch.layout.build_grid`).

    Args:
        opt: the ``optax.GradientTransformation``.
        grad_fn: a route's ``(params, batch) -> (loss, grads)``.
        n_rows, n_batches: the grid's shape.
        compiler_options: XLA options (:class:`mfjax.training.config.Hardware`).
    """

    def epoch(params, opt_state, grid: Grid, order, offsets):
        rows = jnp.arange(n_rows, dtype=jnp.int32) * n_batches

        def step(carry, b):
            params, opt_state = carry
            idx = rows + (b + offsets) % n_batches
            r = grid.ratings[idx]
            real = ~jnp.isnan(r)  # padding has weight 0
            batch = Batch(grid.keys, grid.others[idx], jnp.where(real, r, 0.0),
                          real.astype(r.dtype), grid.blocks)
            value, grads = grad_fn(params, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.sum(losses)

    if compiler_options:
        return jax.jit(epoch, donate_argnums=(0, 1), compiler_options=compiler_options)
    return jax.jit(epoch, donate_argnums=(0, 1))


@functools.lru_cache(maxsize=8)
def cached_epoch(optimizer: str, learning_rate, gradient: str, reg: float, bias_reg,
                 sort_by: str, n_rows: int, n_batches: int, compiler_options=None):
    """The optimizer and jitted epoch for a hashable configuration.

    Reusing the jitted function lets JAX reuse its compiled executable when
    the shapes repeat (k-fold cross-validation, a second fit), saving the
    ~0.8 s compile of a small problem. ``compiler_options`` is a tuple of items.
    """
    opt = make_optimizer(optimizer, learning_rate)
    route = make_route(gradient, reg=reg, bias_reg=bias_reg, sort_by=sort_by)
    options = dict(compiler_options) if compiler_options else None
    return opt, make_epoch(opt, route.value_and_grad, n_rows, n_batches, options)


def remix(seed: int, epoch: int, n_rows: int, n_batches: int):
    """An epoch's batch order π [n_batches] and row offsets o [n_rows], from the host.

    Drawn with NumPy from (seed, epoch) alone, so a resumed run repeats them,
    and without a random-number program to compile into the epoch.
    """
    rng = np.random.default_rng([seed, 1, epoch])
    return (rng.permutation(n_batches).astype(np.int32),
            rng.integers(0, n_batches, n_rows, dtype=np.int32))


def host_init(seed: int, n_users: int, n_items: int, rank: int, members: int,
              init_scale: float, mean: float) -> Params:
    """Initial member parameters, drawn with NumPy on the host.

    Factors i.i.d. N(0, init_scale²), biases 0, μ the training mean (as
    :func:`mfjax.init_params`). A host draw needs no compiled program: the
    threefry kernels of ``jax.random`` take ~0.5 s to compile, a third of a
    small fit.
    """
    rng = np.random.default_rng([seed, 0])
    shape = lambda n: (n, rank) if members == 1 else (n, members, rank // members)
    bias = lambda n: np.zeros((n,) if members == 1 else (n, members), np.float32)
    factors = lambda n: (init_scale * rng.standard_normal(shape(n), dtype=np.float32)).astype(np.float32)
    mu = np.full(() if members == 1 else (members,), mean, np.float32)
    return Params(*(jnp.asarray(x) for x in (factors(n_users), factors(n_items), bias(n_users),
                                              bias(n_items), mu)))
