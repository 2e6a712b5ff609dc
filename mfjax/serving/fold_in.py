"""Fold-in of a new user into a trained iALS or BPR model (item side held fixed).

iALS (:func:`ials_fold_in`): the user's row of the iALS objective
(:mod:`mfjax.objectives.ials`) with Q fixed is quadratic in p, so its minimiser solves::

    (Σ_{i∈I} c_i q_i q_iᵀ + α0 QᵀQ + λ (|I| + α0 n_items)^ν I_k) p = Σ_{i∈I} c_i q_i    [k, k] [k] = [k]

with c_i = 1 + α v_i (repeated items merged, values summed), exactly the ALS user
half-step (:func:`mfjax.solvers.ials.solve.solve_users`, Cholesky). A training user folded in
from their own interactions gets back their trained vector, since ``fit``'s iALS
model holds P = argmin_P L(P, Q) (:mod:`mfjax.solvers.ials.solver`).

BPR (:func:`bpr_fold_in`): the user's part of the BPR objective with Q, b fixed, with
M negatives per positive drawn uniformly from the unseen items (a fixed key, so the
result is deterministic)::

    f(p) = Σ_{i∈I} (1/M) Σ_{m=1..M} −log σ(b_i − b_jm + <p, q_i − q_jm>) + ½ λ |I| ‖p‖²

(|I| triples per epoch in training, each with ½ λ ‖p‖²). f is convex; ``steps``
Newton steps from p = 0 minimise it (H = Σ w σ(x)σ(−x) d dᵀ + λ|I| I, d = q_i − q_j).
Unlike iALS, a training user does not get their trained vector back: ``fit``'s BPR
stops after a few epochs of SGD-type updates, far from f's minimiser, so its vectors
are shorter (on a small random problem, folded-in norms were 25-30x larger and top-10
lists overlapped ~40 %). Compare a folded-in user's scores with other folded-in
users', not with trained users'.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..data import interactions
from ..solvers.ials import solve as ia
from ..objectives.bpr import sample_negatives
from ..plumbing import check_index, power_of_two_at_least

__all__ = ["ials_fold_in", "bpr_fold_in", "fold_in_for"]


def fold_in_for(params, spec, items, values, reg=None):
    """The fold-in user vector [k] of a model trained with an implicit ``spec``.

    ``reg`` None: the spec's ``reg``; iALS' α, α0, ν come from the spec.
    """
    from ..specs import BPR, ImplicitALS

    reg = spec.reg if reg is None else reg
    if isinstance(spec, ImplicitALS):
        return ials_fold_in(params.item_factors, items, values, alpha=spec.alpha,
                            unobserved_weight=spec.unobserved_weight, reg=float(reg), nu=spec.nu)
    if isinstance(spec, BPR):
        return bpr_fold_in(params.item_factors, params.item_bias, items, reg=float(reg))
    raise ValueError(f"fold_in: no implicit fold-in for {type(spec).__name__}")


def ials_fold_in(item_factors, items, values=None, *, alpha, unobserved_weight, reg, nu):
    """The iALS user vector [k] of one new user (module docstring).

    Args:
        item_factors: Q [n_items, k].
        items: item indices [n] of the user's interactions (repeats merge).
        values: v [n] (``None``: all 1).
        alpha, unobserved_weight, reg, nu: the model's iALS hyperparameters.

    Returns:
        p [k] (zeros when ``items`` is empty).
    """
    n_items = item_factors.shape[0]
    items = np.asarray(items, np.int64).reshape(-1)
    d = interactions.build_implicit_data(np.zeros(items.shape, np.int64), items, values, n_users=1,
                               n_items=n_items, dtype=np.asarray(item_factors).dtype)
    nnz = int(d.user_items.shape[0])
    # A dummy second row takes the padding: few compiled shapes.
    pad = power_of_two_at_least(nnz + 1, 16) - nnz
    cat = lambda a, fill: jnp.concatenate([a, jnp.full((pad,), fill, a.dtype)])
    rows, its, vals = cat(d.user_rows, 1), cat(d.user_items, 0), cat(d.user_values, 0)
    indptr = jnp.asarray([0, nnz, nnz + pad], jnp.int32)
    data = interactions.ImplicitData(indptr, rows, its, vals, indptr, rows, its, vals)
    P = ia.solve_users(jnp.asarray(item_factors), data, alpha=alpha,
                       unobserved_weight=unobserved_weight, reg=reg, nu=nu, method="cholesky")
    return P[0]


@functools.partial(jax.jit, static_argnames=("n_neg", "steps"))
def _bpr_newton(Q, b, pos, w, key, reg, *, n_neg, steps):
    n_items, k = Q.shape
    T = pos.shape[0] * n_neg
    i = jnp.repeat(pos, n_neg)
    wt = jnp.repeat(w, n_neg) / n_neg
    indptr = jnp.stack([jnp.zeros((), jnp.int32), jnp.sum(w > 0).astype(jnp.int32)])
    j, valid = sample_negatives(key, jnp.zeros((T,), jnp.int32), indptr, pos, n_items)
    wt = wt * valid
    j = jnp.maximum(j, 0)
    D, db = Q[i] - Q[j], b[i] - b[j]
    lam = reg * jnp.sum(w)

    def step(_, p):
        x = D @ p + db
        g = D.T @ (wt * -jax.nn.sigmoid(-x)) + lam * p
        s = jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
        H = (D * (wt * s)[:, None]).T @ D + (lam + 1e-9) * jnp.eye(k, dtype=Q.dtype)
        return p - jnp.linalg.solve(H, g)

    return jax.lax.fori_loop(0, steps, step, jnp.zeros((k,), Q.dtype))


def bpr_fold_in(item_factors, item_bias, items, *, reg, n_neg: int = 32, steps: int = 8,
                seed: int = 0):
    """The BPR user vector [k] of one new user (module docstring).

    Args:
        item_factors, item_bias: Q [n_items, k], b [n_items].
        items: item indices [n] in [0, n_items) of the user's positives (repeats merge).
        reg: λ (> 0 keeps the Newton system definite).
        n_neg: M, negatives per positive.
        steps: Newton steps.
        seed: key of the negatives.

    Returns:
        p [k] (zeros when ``items`` is empty).

    Raises:
        ValueError: an entry of ``items`` is not an integer index in [0, n_items).
    """
    # Checked here: inside the jitted Newton steps an out-of-range index would be clamped
    # (or wrapped) by the gathers and silently score another item.
    items = np.asarray(items).reshape(-1)
    items = np.unique(check_index(items, item_factors.shape[0], name="items",
                                  where="bpr_fold_in").astype(np.int64))
    k = item_factors.shape[1]
    if items.size == 0:
        return jnp.zeros((k,), item_factors.dtype)
    n = power_of_two_at_least(items.size, 16)
    pos = np.zeros(n, np.int32)
    pos[: items.size] = items  # also the sorted seen list; padding lies past its segment
    w = np.zeros(n, np.float32)
    w[: items.size] = 1.0
    return _bpr_newton(jnp.asarray(item_factors), jnp.asarray(item_bias), jnp.asarray(pos),
                       jnp.asarray(w, item_factors.dtype), jax.random.key(seed), float(reg), n_neg=n_neg, steps=steps)
