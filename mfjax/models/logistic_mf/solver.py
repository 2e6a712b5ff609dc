"""A first, untuned trainer for logistic MF: full-batch Adam on the dense objective.

Every step computes the exact gradient of :func:`~mfjax.models.logistic_mf.objective.loss`
over all n_users x n_items pairs (dense, O(n_users n_items k) time and O(n_users n_items)
memory per step); all ``spec.epochs`` steps run inside one jitted ``lax.scan``. Not yet
benchmarked or tuned; no ``Solver``-protocol class yet.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .objective import LogisticParams, loss, manual_grad

__all__ = ["train"]


@functools.partial(jax.jit, static_argnames=("steps", "learning_rate"))
def _run(params, confidence, reg, bias_reg, *, steps, learning_rate):
    opt = optax.adam(learning_rate)

    def step(carry, _):
        p, s = carry
        g = manual_grad(p, confidence, reg=reg, bias_reg=bias_reg)
        updates, s = opt.update(g, s, p)
        return (optax.apply_updates(p, updates), s), loss(p, confidence, reg=reg, bias_reg=bias_reg)

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, losses


def train(indptr, indices, values, n_users: int, n_items: int, spec, seed: int,
          learning_rate: float = 0.05):
    """(params, per-step losses) of logistic MF on a user x item CSR matrix.

    Args:
        indptr, indices, values: CSR of the interactions [n_users + 1], [nnz], [nnz].
        n_users, n_items: the matrix shape.
        spec: a :class:`~mfjax.models.logistic_mf.spec.LogisticMF`.
        seed: seeds the initial factors.
        learning_rate: Adam's step size.
    """
    indptr = np.asarray(indptr, np.int64)
    rows = np.repeat(np.arange(n_users), np.diff(indptr))
    conf = np.zeros((n_users, n_items))
    np.add.at(conf, (rows, np.asarray(indices, np.int64)), spec.alpha * np.asarray(values, float))
    rng = np.random.default_rng(seed)
    p = LogisticParams(jnp.asarray(spec.init_scale * rng.standard_normal((n_users, spec.rank))),
                       jnp.asarray(spec.init_scale * rng.standard_normal((n_items, spec.rank))),
                       jnp.zeros(n_users), jnp.zeros(n_items))
    return _run(p, jnp.asarray(conf), spec.reg, spec.bias_reg, steps=spec.epochs,
                learning_rate=learning_rate)
