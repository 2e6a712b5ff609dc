"""The seed notebook's full-matrix form of MF, for people who start from it.

With a user matrix ``U`` [n_users, k], an item matrix ``M`` [n_items, k], a
rating matrix ``R`` [n_users, n_items] and an optional 0/1 ``mask`` of the same
shape (1 = observed):

    L(U, M) = ½ ‖mask ⊙ (U Mᵀ − R)‖²_F + λ/2 (‖U‖²_F + ‖M‖²_F)

    ∂L/∂U_a = Σ_j mask_aj (U Mᵀ − R)_aj M_j + λ U_a
    ∂L/∂M_j = Σ_a mask_aj (U Mᵀ − R)_aj U_a + λ M_j

The seed wrote the penalty as ``reg * np.sum(U) / 2``, a typo for the squared
norm (its gradient is not ``reg * U``), and its gradient ignored ``reg``. Here
the penalty is the squared Frobenius norm and the gradient includes it. Unlike
:func:`mfjax.loss`, the penalty is not weighted by rating counts: this is the
seed's objective, kept as the bridge from the notebook to the sparse core.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["loss", "manual_grad"]


def _residual(U, M, R, mask):
    diff = U @ M.T - R
    return diff if mask is None else diff * mask


def loss(U, M, R, reg=0.0, mask=None):
    """``½‖mask ⊙ (U Mᵀ − R)‖² + λ/2 (‖U‖² + ‖M‖²)``.

    Args:
        U: user factors [n_users, k].
        M: item factors [n_items, k].
        R: ratings [n_users, n_items].
        reg: λ.
        mask: optional weights [n_users, n_items]; 0 ignores an entry.

    Returns:
        The scalar loss.
    """
    diff = _residual(U, M, R, mask)
    return 0.5 * jnp.sum(diff * diff) + 0.5 * reg * (jnp.sum(U * U) + jnp.sum(M * M))


def manual_grad(U, M, R, reg=0.0, mask=None):
    """The seed's two gradient loops, each as a ``jax.vmap`` over rows.

    Args:
        U: user factors [n_users, k].
        M: item factors [n_items, k].
        R: ratings [n_users, n_items].
        reg: λ.
        mask: optional weights [n_users, n_items].

    Returns:
        ``(dU [n_users, k], dM [n_items, k])``.
    """
    diff = _residual(U, M, R, mask)
    # One user row: Σ_j diff[a, j] M_j  (the seed's first loop).
    d_u = jax.vmap(lambda d_row, u: jnp.sum(d_row[:, None] * M, axis=0) + reg * u)(diff, U)
    # One item row: Σ_a diff[a, j] U_a  (the seed's second loop).
    d_m = jax.vmap(lambda d_col, m: jnp.sum(d_col[:, None] * U, axis=0) + reg * m)(diff.T, M)
    return d_u, d_m
