"""Implicit-feedback MF by weighted ALS (iALS), as pure JAX functions (issue #12).

The model is the plain dot product ``ŝ(u, i) = <p_u, q_i>``: it reuses
:class:`mfjax.objectives.explicit.Params`, whose biases and global bias stay 0, so
``mfjax.predict``, top-N and saving work unchanged.

Objective (Hu, Koren & Volinsky 2008, with the frequency-scaled regularizer
of Rendle et al. 2021, "Revisiting the Performance of iALS ..."). Over the
observed interactions S = {(u, i, v_ui)} (v: counts or ratings) with
confidence ``c_ui = 1 + α v_ui``::

    L = Σ_(u,i)∈S c_ui (1 − <p_u, q_i>)²
        + α0 Σ_u Σ_i <p_u, q_i>²                              (ALL pairs)
        + λ [ Σ_u λ̃_u ‖p_u‖² + Σ_i λ̃_i ‖q_i‖² ]
    λ̃_u = (|I_u| + α0 n_items)^ν,   λ̃_i = (|U_i| + α0 n_users)^ν

α is ``alpha``, α0 ``unobserved_weight``, λ ``reg``, ν ``nu`` ∈ [0, 1];
|I_u| is the number of interactions of u passed in (with ``weights`` w:
Σ w). ν = 0 is the classic uniform λ, ν = 1 scales with the row's mass. The
all-pairs term includes the observed pairs, exactly as written; it is the
Gramian identity ``Σ_u Σ_i <p_u, q_i>² = <PᵀP, QᵀQ>_F`` (P [n_users, k],
Q [n_items, k]), so nothing of size n_users × n_items is ever formed.

Gradient (P, Q as above; G_P = PᵀP [k, k], G_Q = QᵀQ [k, k])::

    ∂L/∂p_u = Σ_{i∈I_u} −2 w c_ui (1 − <p_u,q_i>) q_i + 2 α0 (P G_Q)_u + 2 λ λ̃_u p_u
    ∂L/∂q_i = Σ_{u∈U_i} −2 w c_ui (1 − <p_u,q_i>) p_u + 2 α0 (Q G_P)_i + 2 λ λ̃_i q_i

and 0 for the three bias fields. :func:`manual_grad` writes the
per-interaction part for one interaction, vmaps it and ``segment_sum``-s it
into rows; no gradient flows through the counts in λ̃.

The exact ALS half-steps that minimise L one side at a time are in
:mod:`mfjax.solvers.ials.solve`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .explicit import Params

__all__ = ["ImplicitData", "build_implicit_data", "SideLayout", "bucket", "shared_layouts", "loss",
           "manual_grad", "row_reg"]


class ImplicitData(NamedTuple):
    """Interactions laid out for the ALS half-steps (a pytree of device arrays).

    The pairs are deduplicated (values of repeated pairs summed). ``user_*``
    holds them sorted by (user, item), ``item_*`` by (item, user); each view
    is CSR with ``*_indptr`` plus explicit segment ids. The user view's
    ``user_indptr``/``user_items`` are also the sorted seen-lists the BPR
    sampler needs.

    Attributes:
        user_indptr: [n_users + 1] int32; user u owns positions
            ``user_indptr[u]:user_indptr[u+1]``.
        user_rows: [nnz] int32, the user of each position (sorted).
        user_items: [nnz] int32, the item of each position (sorted within a user).
        user_values: [nnz] float, v_ui.
        item_indptr: [n_items + 1] int32.
        item_rows: [nnz] int32, the item of each position (sorted).
        item_users: [nnz] int32.
        item_values: [nnz] float.
    """

    user_indptr: jax.Array
    user_rows: jax.Array
    user_items: jax.Array
    user_values: jax.Array
    item_indptr: jax.Array
    item_rows: jax.Array
    item_users: jax.Array
    item_values: jax.Array

    @property
    def n_users(self) -> int:
        return self.user_indptr.shape[0] - 1

    @property
    def n_items(self) -> int:
        return self.item_indptr.shape[0] - 1


def build_implicit_data(users, items, values=None, *, n_users: int, n_items: int,
                        dtype=np.float32) -> ImplicitData:
    """Host-side layout of interactions for :func:`mfjax.solvers.ials.solve.solve_users`/``solve_items``.

    Args:
        users, items: indices [n] in [0, n_users) and [0, n_items).
        values: v_ui [n] (counts, ratings); ``None`` means all 1. Repeated
            (u, i) pairs are merged into one with the values summed.
        n_users, n_items: table sizes.
        dtype: dtype of the values.

    Returns:
        An :class:`ImplicitData`.
    """
    users = np.asarray(users, np.int64).reshape(-1)
    items = np.asarray(items, np.int64).reshape(-1)
    values = np.ones(users.shape, np.float64) if values is None else np.asarray(values, np.float64)
    if not (users.shape == items.shape == values.shape):
        raise ValueError("build_implicit_data: users, items and values must have one shape")
    if users.size and (users.min() < 0 or users.max() >= n_users
                       or items.min() < 0 or items.max() >= n_items):
        raise ValueError("build_implicit_data: an index is out of range")
    key = users * n_items + items
    uniq, inv = np.unique(key, return_inverse=True)  # sorted by (user, item)
    if uniq.size > np.iinfo(np.int32).max:
        raise ValueError(f"build_implicit_data: {uniq.size:,} distinct interactions; the "
                         "layouts index positions with int32 (at most 2,147,483,647)")
    vals = np.bincount(inv.reshape(-1), weights=values, minlength=uniq.size)
    u, i = uniq // n_items, uniq % n_items

    def csr(rows, cols, v, n, order):
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        if order is not None:
            rows, cols, v = rows[order], cols[order], v[order]
        # Converted on the host and placed with device_put: jnp.asarray(x, dtype) compiles
        # a small conversion (or, in jax 0.10, staging) program per array shape (~0.1 s
        # of a fresh fit in all).
        return tuple(jax.device_put(x) for x in (indptr.astype(np.int32), rows.astype(np.int32),
                                                 cols.astype(np.int32), v.astype(dtype)))

    # ``uniq`` is already in (user, item) order; the (item, user) order is one argsort of
    # the (distinct) transposed keys, ~4x faster than a lexsort on ML-1M.
    return ImplicitData(*csr(u, i, vals, n_users, None),
                        *csr(i, u, vals, n_items, np.argsort(i * n_users + u)))


# --------------------------------------------------------------------------- objective


class SideLayout(NamedTuple):
    """One side's CSR view, zero-padded to shared (bucketed) static shapes.

    Attributes:
        indptr: [n_pad + 1] int32; rows past the true count are empty (pointer nnz).
        cols: [nnz_pad] int32, the other side's index of each position (padding 0).
        vals: [nnz_pad] float, v (padding 0; never addressed by indptr).
        n_rows: () int32, the true row count of this side.
        n_other: () int32, the true row count of the other side.
    """

    indptr: jax.Array
    cols: jax.Array
    vals: jax.Array
    n_rows: jax.Array
    n_other: jax.Array


def bucket(n: int, quantum: int = 1) -> int:
    """``n`` rounded up to a multiple of ``quantum``, then to the next ``m · 2^e`` with
    8 <= m < 16 (at most 1/8 = 12.5 % above; ``quantum`` a power of two): nearby sizes
    share a shape, so one compiled program serves both sides and other data sets."""
    q = -(-max(int(n), 1) // quantum) * quantum
    step = max(quantum, 1 << max(0, q.bit_length() - 4))
    return -(-q // step) * step


def shared_layouts(data: ImplicitData, *, chunk_rows: int = 256) -> tuple[SideLayout, SideLayout]:
    """(users, items) views of ``data`` padded to ONE set of shapes for :func:`mfjax.solvers.ials.steps.half_step_exact`.

    Rows are padded to ``bucket(max(n_users, n_items), chunk_rows)`` and the positions to
    ``bucket(nnz)``, so the user and the item half-step (and any other data set whose
    sizes fall in the same buckets) run the same executable.
    """
    n_u, n_i = data.n_users, data.n_items
    nnz = int(data.user_items.shape[0])
    n_pad, nnz_pad = bucket(max(n_u, n_i), chunk_rows), bucket(nnz)

    def side(indptr, cols, vals, n, n_other):
        indptr = np.asarray(indptr)
        cols, vals = np.asarray(cols), np.asarray(vals)
        ip = np.full(n_pad + 1, nnz, np.int32)
        ip[:n + 1] = indptr
        c = np.zeros(nnz_pad, np.int32)
        c[:nnz] = cols
        v = np.zeros(nnz_pad, vals.dtype)
        v[:nnz] = vals
        return SideLayout(*jax.device_put((ip, c, v, np.int32(n), np.int32(n_other))))

    return (side(data.user_indptr, data.user_items, data.user_values, n_u, n_i),
            side(data.item_indptr, data.item_users, data.item_values, n_i, n_u))


def _counts(idx, w, n):
    return jax.ops.segment_sum(w, idx, num_segments=n)


def _sizes(P, Q, n_users, n_items):
    return (P.shape[0] if n_users is None else n_users, Q.shape[0] if n_items is None else n_items)


def row_reg(counts, n_other, unobserved_weight, nu):
    """λ̃ = (|I_u| + α0 n_other)^ν per row [n]."""
    return jnp.power(counts + unobserved_weight * n_other, nu)


def loss(params: Params, users, items, values, *, alpha, unobserved_weight, reg, nu,
         weights=None, n_users=None, n_items=None) -> jax.Array:
    """The iALS objective L of the module docstring.

    Args:
        params: :class:`Params`; only the factors are read.
        users, items: interaction indices [n] (one entry per pair; use the
            deduplicated arrays of :class:`ImplicitData` to match the solves).
        values: v_ui [n].
        alpha: α in c_ui = 1 + α v_ui.
        unobserved_weight: α0, the weight of the all-pairs term.
        reg: λ.
        nu: ν, the exponent of the frequency-scaled regularizer.
        weights: optional [n]; scales the interaction's term and its count in
            |I_u|, |U_i| (0 marks padding). ``None`` means all 1.
        n_users, n_items: the real row counts when the tables carry zero padding
            rows (a mesh); λ̃ uses them. ``None``: the tables' row counts.

    Returns:
        The scalar loss.
    """
    P, Q = params.user_factors, params.item_factors
    dtype = P.dtype
    w = jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)
    c = 1.0 + alpha * values.astype(dtype)
    s = jnp.sum(P[users] * Q[items], axis=-1)
    observed = jnp.sum(w * c * (1.0 - s) ** 2)
    gram = unobserved_weight * jnp.sum((P.T @ P) * (Q.T @ Q))
    n_u, n_i = _sizes(P, Q, n_users, n_items)
    ru = row_reg(_counts(users, w, P.shape[0]), n_i, unobserved_weight, nu)
    ri = row_reg(_counts(items, w, Q.shape[0]), n_u, unobserved_weight, nu)
    penalty = reg * (jnp.sum(ru * jnp.sum(P * P, axis=1)) + jnp.sum(ri * jnp.sum(Q * Q, axis=1)))
    return observed + gram + penalty


def _interaction_grad(p, q, c, w):
    """∂/∂p_u, ∂/∂q_i [k] of w c (1 − <p, q>)² for ONE interaction."""
    e = -2.0 * w * c * (1.0 - jnp.sum(p * q))
    return e * q, e * p


def manual_grad(params: Params, users, items, values, *, alpha, unobserved_weight, reg, nu,
                weights=None, n_users=None, n_items=None) -> Params:
    """The gradient of :func:`loss`, by hand (module docstring); biases get 0.

    Same arguments as :func:`loss`. Returns a :class:`Params` shaped like
    ``params``.
    """
    P, Q = params.user_factors, params.item_factors
    dtype = P.dtype
    nu_, ni = P.shape[0], Q.shape[0]
    w = jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)
    c = 1.0 + alpha * values.astype(dtype)
    dp, dq = jax.vmap(_interaction_grad)(P[users], Q[items], c, w)
    n_u, n_i = _sizes(P, Q, n_users, n_items)
    ru = row_reg(_counts(users, w, nu_), n_i, unobserved_weight, nu)
    ri = row_reg(_counts(items, w, ni), n_u, unobserved_weight, nu)
    gP = (jax.ops.segment_sum(dp, users, num_segments=nu_)
          + 2.0 * unobserved_weight * (P @ (Q.T @ Q)) + 2.0 * reg * ru[:, None] * P)
    gQ = (jax.ops.segment_sum(dq, items, num_segments=ni)
          + 2.0 * unobserved_weight * (Q @ (P.T @ P)) + 2.0 * reg * ri[:, None] * Q)
    return Params(gP, gQ, jnp.zeros_like(params.user_bias), jnp.zeros_like(params.item_bias),
                  jnp.zeros_like(params.global_bias))


# --------------------------------------------------------------------------- ALS solves
