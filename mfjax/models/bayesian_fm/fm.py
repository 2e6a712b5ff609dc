"""The factorization machine's prediction: by design rows, pairwise, and by relation blocks.

For a design row x [D] with global bias w0, linear weights w [D] and factors V [D, k],

    ŷ(x) = w0 + Σ_j w_j x_j + Σ_{j<l} ⟨v_j, v_l⟩ x_j x_l
         = w0 + Σ_j w_j x_j + ½ Σ_f [(Σ_j v_jf x_j)² − Σ_j v_jf² x_j²]

(Rendle 2010; the second form costs O(nnz(x)·k), :func:`fm_predict`; the first is
:func:`fm_predict_pairwise`). With relation blocks (Rendle 2013) a rating's row is the
concatenation of its user's row x_u and its item's row x_i (each with its ID one-hot),
and the prediction splits into per-row terms and one cross term:

    ŷ = w0 + b_u + b_i + ⟨P_u, Q_i⟩,   P_u = Σ_{j∈u} v_j x_j,
    b_u = Σ_{j∈u} w_j x_j + c_u,   c_u = ½ (‖P_u‖² − Σ_{j∈u} ‖v_j‖² x_j²),

so each distinct user and item row is computed once and gathered per rating
(:func:`block_predict`). c_u, the pairs inside one side, depends on the row only: the
sampler (:mod:`mfjax.models.bayesian_fm.sampler`) leaves those pairs out
(``within=False`` here) and the row's free bias b_u plays their part.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["fm_predict", "fm_predict_pairwise", "block_rows", "block_predict"]


def fm_predict(X, w0, w, V):
    """ŷ [n] of design rows X [n, D] by the O(nk) identity (module docstring)."""
    XV = X @ V
    return w0 + X @ w + 0.5 * jnp.sum(XV * XV - (X * X) @ (V * V), axis=1)


def fm_predict_pairwise(X, w0, w, V, pairs=None):
    """ŷ [n] by the explicit sum over pairs j < l (O(n D² k); for tests). ``pairs``: an
    optional bool [D, D] mask of the pairs that interact (default: all)."""
    X, V = np.asarray(X, np.float64), np.asarray(V, np.float64)
    D = X.shape[1]
    out = float(w0) + X @ np.asarray(w, np.float64)
    for j in range(D):
        for l in range(j + 1, D):
            if pairs is None or pairs[j, l]:
                out = out + (V[j] @ V[l]) * X[:, j] * X[:, l]
    return out


def block_rows(indptr, indices, values, w, V, *, within: bool = True):
    """Per-row terms of one side's CSR rows [n_rows, D_side]: ``(P [n_rows, k], b [n_rows])``
    with P = Σ v_j x_j and b = Σ w_j x_j (+ c, the within-row pairs, when ``within``)."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    x = jnp.asarray(values)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    n = len(indptr) - 1
    seg = lambda a: jnp.zeros((n,) + a.shape[1:], a.dtype).at[rows].add(a)
    P = seg(x[:, None] * V[indices])
    b = seg(x * w[indices])
    if within:
        b = b + 0.5 * (jnp.sum(P * P, 1) - seg(x * x * jnp.sum(V[indices] ** 2, 1)))
    return P, b


def block_predict(user_rows, item_rows, users, items, w0, *, within: bool = True):
    """ŷ [n] of ratings (users [n], items [n]) from :func:`block_rows` of each side:
    w0 + b_u + b_i + ⟨P_u, Q_i⟩, each distinct row computed once and gathered."""
    (P, bu), (Q, bi) = user_rows, item_rows
    return w0 + bu[users] + bi[items] + jnp.sum(P[users] * Q[items], 1)
