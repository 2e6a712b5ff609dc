"""Fold-in of a new user into a trained iALS or BPR model (item side held fixed).

iALS (:func:`ials_fold_in`): the user's row of the iALS objective
(:mod:`mfjax.objectives.ials`) with Q fixed is quadratic in p, so its minimiser solves::

    (Σ_{i∈I} c_i q_i q_iᵀ + α0 QᵀQ + λ (|I| + α0 n_items)^ν I_k) p = Σ_{i∈I} c_i q_i    [k, k] [k] = [k]

with c_i = 1 + α v_i (repeated items merged, values summed), exactly the ALS user
half-step (:func:`mfjax.solvers.ials.solve.solve_users`, Cholesky). A training user folded in
from their own interactions gets back their trained vector, since ``fit``'s iALS
model holds P = argmin_P L(P, Q) (:mod:`mfjax.solvers.ials.solver`).

BPR (:func:`bpr_fold_in`): the user's part of the BPR objective with Q, b fixed, with
M negatives per positive drawn uniformly from the unseen items (a fixed seed, so the
result is deterministic; M is cut to max(1, ⌈2^16 / |I|⌉) for long histories, each
triple weighing 1/M, so a user with 150k items costs 150k triples, not 4.8M)::

    f(p) = Σ_{i∈I} (1/M) Σ_{m=1..M} −log σ(b_i − b_jm + <p, q_i − q_jm>) + ½ λ |I| ‖p‖²

(|I| triples per epoch in training, each with ½ λ ‖p‖²). f is convex; ``steps``
Newton steps from p = 0 minimise it (H = Σ w σ(x)σ(−x) d dᵀ + λ|I| I, d = q_i − q_j),
the triples streamed in chunks (:func:`mfjax.solvers.rows.bpr_rows`), so memory
is O(chunk·k²) whatever |I|.
Unlike iALS, a training user does not get their trained vector back: ``fit``'s BPR
stops after a few epochs of SGD-type updates, far from f's minimiser, so its vectors
are shorter (on a small random problem, folded-in norms were 25-30x larger and top-10
lists overlapped ~40 %). Compare a folded-in user's scores with other folded-in
users', not with trained users'.
"""
from __future__ import annotations


import jax.numpy as jnp
import numpy as np

from ..plumbing import check_index
from ..solvers import rows

__all__ = ["ials_fold_in", "bpr_fold_in"]


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
    items = np.asarray(items, np.int64).reshape(-1)
    p = rows.ials_rows(item_factors, np.zeros(items.shape, np.int64), items, values, 1,
                              alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu)
    return jnp.asarray(p[0])


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
    return jnp.asarray(rows.bpr_rows(item_factors, item_bias, np.zeros(items.size, np.int64),
                                            items, 1, reg=float(reg), n_neg=n_neg, steps=steps,
                                            seed=seed)[0])
