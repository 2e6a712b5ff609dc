"""iALS fold-in and partial-fit rows: users (or items) solved against the fixed other side.

iALS (:func:`ials_fold_in`): the user's row of the iALS objective
(:mod:`mfjax.models.implicit_als.objective`) with Q fixed is quadratic in p, so its minimiser solves::

    (Σ_{i∈I} c_i q_i q_iᵀ + α0 QᵀQ + λ (|I| + α0 n_items)^ν I_k) p = Σ_{i∈I} c_i q_i    [k, k] [k] = [k]

with c_i = 1 + α v_i (repeated items merged, values summed), exactly the ALS user
half-step (:func:`mfjax.models.implicit_als.solve.solve_users`, Cholesky). A training user folded in
from their own interactions gets back their trained vector, since ``fit``'s iALS
model holds P = argmin_P L(P, Q) (:mod:`mfjax.models.implicit_als.solver`).

:func:`ials_rows` solves R rows at once (the record's ``row_solve``,
:func:`ials_row_solve`); on a CPU backend by the C++ kernel that ``fit`` uses,
:func:`mfjax.kernels.ials.solve_users`, the same solve when it is compiled
(``MFJAX_KERNELS=0``: XLA).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...data import interactions
from ...kernels import ials as ials_kernel
from ...plumbing import power_of_two_at_least
from ...solvers.rows import checked_rows
from . import solve as ia

__all__ = ["ials_fold_in", "ials_rows", "ials_row_solve"]


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
    p = ials_rows(item_factors, np.zeros(items.shape, np.int64), items, values, 1,
                   alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu)
    return jnp.asarray(p[0])


def ials_rows(other_factors, rows, cols, vals, n_rows, *, alpha, unobserved_weight, reg, nu):
    """Exact iALS rows [R, k] (module docstring), NumPy; repeated pairs merge (values summed)."""
    dtype = np.asarray(other_factors).dtype
    r_pad = power_of_two_at_least(n_rows + 1, 8)
    n_other = other_factors.shape[0]
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    vals = np.ones(rows.shape) if vals is None else np.asarray(vals, np.float64)
    # Only the row view is needed (build_implicit_data would also sort the column view).
    key, inverse = np.unique(rows * n_other + cols, return_inverse=True)
    merged = np.bincount(inverse.reshape(-1), weights=vals, minlength=key.size)
    nnz = key.size
    pad = power_of_two_at_least(nnz + 1, 16) - nnz  # on the last row, which is padding
    indptr = np.zeros(r_pad + 1, np.int32)
    np.cumsum(np.bincount(key // n_other, minlength=r_pad), out=indptr[1:])
    indptr[-1] += pad
    u_rows = np.concatenate([key // n_other, np.full(pad, r_pad - 1)]).astype(np.int32)
    u_items = np.concatenate([key % n_other, np.zeros(pad, np.int64)]).astype(np.int32)
    u_vals = np.concatenate([merged, np.zeros(pad)]).astype(dtype)
    indptr, u_rows, u_items, u_vals = (jax.device_put(a) for a in (indptr, u_rows, u_items, u_vals))
    data = interactions.ImplicitData(indptr, u_rows, u_items, u_vals,
                                     indptr, u_rows, u_items, u_vals)
    hp = dict(alpha=float(alpha), unobserved_weight=float(unobserved_weight), reg=float(reg),
              nu=float(nu))
    if ials_kernel.usable_for(dtype):  # the same exact solve as fit's, in its C++ kernel
        P = ials_kernel.solve_users(jnp.asarray(other_factors), data, **hp)
    else:
        P = ia.solve_users(jnp.asarray(other_factors), data, method="cholesky", **hp)
    return np.asarray(P)[:n_rows]


def ials_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    missing = [n for n in ("alpha", "unobserved_weight", "nu") if hp[n] is None]
    if missing:
        raise ValueError(f"the model's configuration records no {missing} for iALS")
    f = ials_rows(other_f, rows, cols, vals, n_rows, alpha=hp["alpha"],
                  unobserved_weight=hp["unobserved_weight"], reg=hp["reg"], nu=hp["nu"])
    return checked_rows(f, hp, vals), np.zeros(n_rows, np.asarray(other_f).dtype)
