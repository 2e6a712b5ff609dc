"""Batched row solves against a fixed other side: many users (or items) at once.

The row solves that fold-in and partial fits use; each model package binds its own
(``row_solve`` in its ``parts``) as ``solve(other_factors [n, k], other_bias [n],
global_bias, rows, cols, vals, n_rows, hp) -> (factors [R, k], bias [R])`` (NumPy; ``hp``
from the package's ``row_hyperparameters``). Rows without a bias (iALS, BPR) get bias
0; a non-finite implicit solve is a ValueError naming ``reg``.

Every function takes the interactions of R rows as flat arrays ``rows`` [n]
(local row numbers in [0, R)), ``cols`` [n] (indices into the fixed side) and
``vals`` [n], and returns the R solved rows; a row without interactions comes
back 0. Shapes are padded to powers of two so a handful of compiled programs
serve any batch.

- :func:`ridge_rows`: explicit models (ALS, Optax, the posterior mean of Gibbs).
  Row x = [f; b] minimises ``½ Σ_j [(μ + b + b_j + <f, g_j> − r_j)² + λ‖f‖² + λ_b b²]``
  with the other side's (g_j, b_j) fixed, i.e. solves
  ``(Σ_j z_j z_jᵀ + n Λ) x = Σ_j (r_j − μ − b_j) z_j`` with z_j = [g_j; 1] and
  Λ = diag(λ, …, λ, λ_b): exactly the exact-ALS half-step
  (:func:`mfjax.solvers.als.sweep.als_half_step`, reused here).
- :func:`posterior_mean_rows`: Bayesian MF (Gibbs) rows, per kept sample s the mean of
  the row's conditional posterior given that sample's other side and hyperparameters,
  ``(Λˢ + τ_s Σ_j z_j z_jᵀ) x = Λˢ mˢ + τ_s Σ_j (r_j − μ_s − b_jˢ) z_j`` with
  z_j = [g_jˢ; 1]: the sampler's own draw (:func:`mfjax.solvers.gibbs.sampler.sample_side`)
  with its standard normals set to zero.
- :func:`ials_rows`: the exact iALS half-step
  ``(Σ_j c_j g_j g_jᵀ + α0 GᵀG + λ (n + α0 N)^ν I) f = Σ_j c_j g_j``, c_j = 1 + α v_j
  (:func:`mfjax.solvers.ials.solve.solve_users`, Cholesky; on a CPU backend by the
  C++ kernel that ``fit`` uses, :func:`mfjax.kernels.ials.solve_users`, the same
  solve when it is compiled; ``MFJAX_KERNELS=0``: XLA).
- :func:`bpr_rows`: Newton steps on each user's BPR objective with Q, b fixed
  (:mod:`mfjax.serving.fold_in`), every user of the batch at once, the triples
  streamed in blocks of one row each (one small matmul per block, as the iALS
  Cholesky build does), so memory is O(blocks·k² + R·k²) whatever the history length.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..data import interactions
from ..plumbing import power_of_two_at_least
from .als.layout import make_layout
from .als.sweep import als_half_step, default_window, solve_spd
from .gibbs.sampler import sample_side
from ..kernels import ials as ials_kernel
from .ials import solve as ia

__all__ = ["ridge_rows", "posterior_mean_rows", "ials_rows", "bpr_rows", "bpr_fold_in_reg",
           "BPR_REG_MULTIPLES", "BPR_MAX_TRIPLES", "ridge_row_solve", "ials_row_solve",
           "bpr_row_solve", "checked_rows", "ridge_hyperparameters"]

#: Per user, negatives per positive are cut so that |I_u| · M ≤ this (at least 1 each).
BPR_MAX_TRIPLES = 1 << 16
_TRIPLE_BLOCK = 32   # triples per block of one row (one [k, k] matmul each)
_BLOCKS = 32         # blocks per inner step


def _pad_rows(rows, cols, vals, n_rows):
    """Pad R to a power of two (≥ R + 1) and n to a power of two with weight-0
    entries on the last (padding) row; returns (rows, cols, vals, weights, R_pad)."""
    r_pad = power_of_two_at_least(n_rows + 1, 8)
    n = len(rows)
    extra = power_of_two_at_least(n + 1, 16) - n
    w = np.concatenate([np.ones(n), np.zeros(extra)])
    rows = np.concatenate([np.asarray(rows, np.int64), np.full(extra, r_pad - 1)])
    cols = np.concatenate([np.asarray(cols, np.int64), np.zeros(extra, np.int64)])
    vals = np.concatenate([np.asarray(vals, np.float64), np.zeros(extra)])
    return rows, cols, vals, w, r_pad


@partial(jax.jit, static_argnames=("window",))
def _ridge(side, other_factors, other_bias, mu, reg, bias_reg, *, window):
    own = jnp.zeros((side.n_rows, other_factors.shape[1]), other_factors.dtype)
    f, b, _ = als_half_step(side, own, own[:, 0], other_factors, other_bias, mu, reg=reg,
                            bias_reg=bias_reg, window=window)
    return f, b


def ridge_rows(other_factors, other_bias, global_bias, rows, cols, vals, n_rows, *, reg,
               bias_reg):
    """Explicit rows (module docstring): ``(factors [R, k], bias [R])``, NumPy.

    Raises:
        ValueError: a solved row is not finite (λ = 0 with too few ratings).
    """
    dtype = np.asarray(other_factors).dtype
    rows, cols, vals, w, r_pad = _pad_rows(rows, cols, vals, n_rows)
    layout = make_layout(rows, cols, vals, n_users=r_pad, n_items=other_factors.shape[0],
                         weights=w, dtype=dtype)
    window = default_window(other_factors.shape[1], itemsize=np.dtype(dtype).itemsize)
    f, b = _ridge(layout.users, jnp.asarray(other_factors), jnp.asarray(other_bias),
                  jnp.asarray(global_bias), float(reg), float(bias_reg), window=window)
    f, b = np.asarray(f)[:n_rows], np.asarray(b)[:n_rows]
    if not (np.isfinite(f).all() and np.isfinite(b).all()):
        raise ValueError(f"the ridge systems are singular (reg={reg}, bias_reg={bias_reg}); "
                         "use reg > 0")
    return f, b


@partial(jax.jit, static_argnames=("window",))
def _posterior_means(side, other_factors, other_bias, mu, tau, prior_mean, prior_prec, *,
                     window):
    zeros = jnp.zeros((side.n_rows, other_factors.shape[2] + 1), other_factors.dtype)

    def one(sample):  # the draw with ε = 0 is the conditional mean m = P⁻¹ rhs
        F, b, m, t, pm, pp = sample
        f, bias, _ = sample_side(None, side, F, b, m, t, pm, pp, window=window,
                                 solver="rowwise", with_sse=False, eps=zeros)
        return f, bias

    return lax.map(one, (other_factors, other_bias, mu, tau, prior_mean, prior_prec))


def posterior_mean_rows(other_factors, other_bias, global_bias, tau, prior_mean, prior_prec,
                        rows, cols, vals, n_rows):
    """Per-sample conditional posterior means of R rows (module docstring), NumPy.

    For each of S samples, row x = [f; b] (D = k+1) given the sample's other side
    (g_jˢ, b_jˢ), μ_s, τ_s and its row prior N(mˢ, (Λˢ)⁻¹) has the Gaussian conditional
    of :mod:`mfjax.solvers.gibbs.sampler`, whose mean is returned:

        xˢ = (Λˢ + τ_s Σ_j z_j z_jᵀ)⁻¹ (Λˢ mˢ + τ_s Σ_j (r_j − μ_s − b_jˢ) z_j),  z_j = [g_jˢ; 1].

    Args:
        other_factors: the other side's factors of each sample [S, n_other, k].
        other_bias: its biases [S, n_other].
        global_bias, tau: μ_s, τ_s [S].
        prior_mean, prior_prec: this side's mˢ [S, D] and Λˢ [S, D, D].
        rows, cols, vals, n_rows: the interactions, as in :func:`ridge_rows`.

    Returns:
        ``(factors [S, R, k], bias [S, R])``; a row without interactions comes back 0 (as
        in every row solve here: it scores like an unknown ID), not its prior mean.

    Raises:
        ValueError: a solved row is not finite.
    """
    dtype = np.asarray(other_factors).dtype
    rated = np.bincount(np.asarray(rows, np.int64), minlength=n_rows)[:n_rows] > 0
    rows, cols, vals, w, r_pad = _pad_rows(rows, cols, vals, n_rows)
    layout = make_layout(rows, cols, vals, n_users=r_pad, n_items=other_factors.shape[1],
                         weights=w, dtype=dtype)
    window = default_window(other_factors.shape[2], itemsize=np.dtype(dtype).itemsize)
    args = (other_factors, other_bias, global_bias, tau, prior_mean, prior_prec)
    f, b = _posterior_means(layout.users, *(jnp.asarray(a, dtype) for a in args), window=window)
    f = np.where(rated[None, :, None], np.asarray(f)[:, :n_rows], 0)
    b = np.where(rated[None], np.asarray(b)[:, :n_rows], 0)
    if not (np.isfinite(f).all() and np.isfinite(b).all()):
        raise ValueError("the per-sample posterior means are not finite (singular prior "
                         "precision or overflowing ratings)")
    return f, b


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


@partial(jax.jit, static_argnames=("steps", "block", "blocks"))
def _bpr_newton(Q, b, t_row, t_pos, t_neg, t_w, lam, *, steps, block, blocks):
    """Newton on every row's BPR objective; lam [R].

    The triples [T] come in blocks of ``block`` that each belong to one row (padded
    with weight 0), T a multiple of ``block * blocks``; ``blocks`` blocks are
    processed per inner step, each block's Hessian part ``Σ w s d dᵀ`` one small
    matmul, and only the per-block [k, k] results are summed into the rows.
    """
    R, k = lam.shape[0], Q.shape[1]
    chunk = block * blocks
    n_chunks = t_row.shape[0] // chunk
    eye = jnp.eye(k, dtype=Q.dtype)

    def stats(p):
        def body(c, acc):
            g, H = acc
            s = c * chunk
            r, i, j, w = (lax.dynamic_slice(a, (s,), (chunk,)) for a in (t_row, t_pos, t_neg, t_w))
            D = Q[i] - Q[j]
            x = jnp.sum(D * p[r], axis=1) + b[i] - b[j]
            g = g + jax.ops.segment_sum(D * (w * -jax.nn.sigmoid(-x))[:, None], r, R)
            s2 = w * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
            Db = D.reshape(blocks, block, k)
            Hb = jnp.einsum("blk,blm->bkm", Db * s2.reshape(blocks, block, 1), Db)
            H = H + jax.ops.segment_sum(Hb, r.reshape(blocks, block)[:, 0], R)
            return g, H
        return lax.fori_loop(0, n_chunks, body, (jnp.zeros((R, k), Q.dtype),
                                                 jnp.zeros((R, k, k), Q.dtype)))

    def step(_, p):
        g, H = stats(p)
        g = g + lam[:, None] * p
        H = H + (lam + 1e-9)[:, None, None] * eye[None]
        return p - solve_spd(H, g)

    return lax.fori_loop(0, steps, step, jnp.zeros((R, k), Q.dtype))


def bpr_triples(rows, cols, n_rows, n_items, *, n_neg, seed, max_triples=BPR_MAX_TRIPLES):
    """Host-side (row, positive, negative, weight) triples for :func:`bpr_rows`.

    Each distinct (row, positive) pair gets M_r = min(n_neg, max(1, ⌈max_triples / |I_r|⌉))
    negatives drawn uniformly from the items the row has not interacted with
    (rejection sampling of hashed draws keyed by (seed, positive, draw), so a
    row's triples do not depend on the other rows of the batch), each triple
    weighing 1 / M_r, so every
    positive weighs 1 whatever M_r. A row that has interacted with every item has
    no negatives (its triples weigh 0).
    """
    key = np.unique(np.asarray(rows, np.int64) * n_items + np.asarray(cols, np.int64))
    r, i = key // n_items, key % n_items
    count = np.bincount(r, minlength=n_rows)
    m = np.minimum(n_neg, np.maximum(1, -(-max_triples // np.maximum(count, 1))))[r]
    t_row, t_pos = np.repeat(r, m), np.repeat(i, m)
    t_w = np.repeat(1.0 / m, m)
    # The j-th draw for a positive depends only on (seed, positive, j, attempt), so a
    # user's negatives do not depend on which other users share the batch.
    j = np.arange(len(t_row)) - np.repeat(np.cumsum(m) - m, m)
    t_neg = _hash_draw(seed, t_pos, j, 0, n_items)
    full = count[t_row] >= n_items
    for attempt in range(1, 1000):
        bad = np.flatnonzero(~full & np.isin(t_row * n_items + t_neg, key))
        if bad.size == 0:
            break
        t_neg[bad] = _hash_draw(seed, t_pos[bad], j[bad], attempt, n_items)
    t_w[full] = 0.0
    t_neg[full] = 0
    return t_row, t_pos, t_neg, t_w, count


def _hash_draw(seed, a, b, c, n) -> np.ndarray:
    """Integers in [0, n) from a splitmix64 hash of (seed, a, b, c), elementwise."""
    with np.errstate(over="ignore"):
        x = (np.asarray(a, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(b, np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             + np.uint64(c) * np.uint64(0x94D049BB133111EB) + np.uint64(seed))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(n)).astype(np.int64)


def bpr_rows(item_factors, item_bias, rows, cols, n_rows, *, reg, n_neg=32, steps=8, seed=0):
    """BPR user rows [R, k] (module docstring, :mod:`mfjax.serving.fold_in`), NumPy.

    λ_r = reg · |I_r| (the per-triple penalty of training, one epoch's |I_r| triples);
    ``reg`` a number or one per row [R].
    """
    n_items = item_factors.shape[0]
    t_row, t_pos, t_neg, t_w, count = bpr_triples(rows, cols, n_rows, n_items, n_neg=n_neg,
                                                  seed=seed)
    r_pad = power_of_two_at_least(n_rows, 8)
    # Pad every row's triples to whole blocks (weight 0), then the total to whole chunks.
    L = _TRIPLE_BLOCK
    per_row = np.bincount(t_row, minlength=n_rows)
    padded = -(-per_row // L) * L
    start = np.concatenate([[0], np.cumsum(padded)])
    first = np.concatenate([[0], np.cumsum(per_row)])[:-1]
    dest = start[t_row] + (np.arange(len(t_row)) - first[t_row])
    chunk = L * _BLOCKS
    T = max(chunk, power_of_two_at_least(int(start[-1])))
    arrays = []
    dtype = np.asarray(item_factors).dtype
    for a, fill_rows in ((t_row, True), (t_pos, False), (t_neg, False), (t_w, False)):
        out = np.zeros(T, dtype if a is t_w else np.int32)
        if fill_rows:  # padding blocks belong to their row (weight 0 either way)
            out[: start[-1]] = np.repeat(np.arange(n_rows), padded)
        out[dest] = a
        arrays.append(jnp.asarray(out))
    lam = np.zeros(r_pad, dtype)
    lam[:n_rows] = np.asarray(reg, dtype) * count
    P = _bpr_newton(jnp.asarray(item_factors), jnp.asarray(item_bias), *arrays, jnp.asarray(lam),
                    steps=steps, block=L, blocks=_BLOCKS)
    return np.asarray(P)[:n_rows]


#: The multiples of the spec's ``reg`` that :func:`bpr_fold_in_reg` tries.
BPR_REG_MULTIPLES = tuple(2.0 ** e for e in range(13))


def bpr_fold_in_reg(item_factors, item_bias, user_factors, indptr, items, reg, *,
                    n_sample: int = 48, seed: int = 0) -> float:
    """The fold-in λ under which BPR's row solve gives back the trained user vectors.

    Minibatch training stops long before each user's row objective is minimised
    (Adam's few steps keep ‖p_u‖ small), so the converged Newton solve at the
    training ``reg`` re-solves an unchanged history into a vector several times
    longer (issue #30: norms ×10, NDCG@10 −23%). This picks the λ = m · ``reg`` that
    best reproduces training: up to ``n_sample`` seeded training users with
    interactions are solved at every m in :data:`BPR_REG_MULTIPLES` in one batched
    call (rows are independent), and m minimises ``‖P_m − P‖_F`` over them, refined
    by a parabola in log m through the squared errors of the best grid point and its
    neighbours.

    Args:
        item_factors, item_bias: the trained item side [n_items, k], [n_items].
        user_factors: the trained users [n_users, k].
        indptr, items: the training interactions, CSR by user (the model's seen index).
        reg: the spec's ``reg`` (λ per triple).

    Returns:
        λ for :func:`bpr_rows`; ``reg`` when no sampled user has a nonzero vector.
    """
    count = np.diff(np.asarray(indptr))
    users = np.flatnonzero((count > 0) & (np.linalg.norm(user_factors, axis=1) > 0))
    if users.size == 0 or reg == 0:
        return float(reg)
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(users, min(n_sample, users.size), replace=False))
    rows = np.repeat(np.arange(users.size), count[users])
    cols = np.concatenate([items[indptr[u]:indptr[u + 1]] for u in users])
    M, S = len(BPR_REG_MULTIPLES), users.size
    all_rows = (np.arange(M)[:, None] * S + rows[None, :]).reshape(-1)
    regs = np.repeat(np.asarray(BPR_REG_MULTIPLES) * reg, S)
    P = bpr_rows(item_factors, item_bias, all_rows, np.tile(cols, M), M * S, reg=regs)
    target = np.asarray(user_factors)[users]
    err = np.linalg.norm((P.reshape(M, S, -1) - target[None]).reshape(M, -1), axis=1)
    j = int(np.clip(np.argmin(err), 1, M - 2))
    x = np.log(np.asarray(BPR_REG_MULTIPLES[j - 1:j + 2]))
    a, b, _ = np.polyfit(x, err[j - 1:j + 2] ** 2, 2)
    best = -b / (2 * a) if a > 0 else x[int(np.argmin(err[j - 1:j + 2]))]
    return float(reg * np.exp(np.clip(best, x[0], x[2])))


def checked_rows(f, hp, vals):
    """``f``, or a ValueError naming the cause when an implicit row solve is not finite."""
    f = np.asarray(f)
    if not np.isfinite(f).all():
        top = float(np.max(vals, initial=0.0)) if vals is not None and np.size(vals) else 1.0
        raise ValueError(f"the solve gave a non-finite vector (reg={hp['reg']}, largest value "
                         f"{top:g}); use reg > 0 and smaller values")
    return f


def ridge_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    bias_reg = hp["reg"] if hp["bias_reg"] is None else hp["bias_reg"]
    return ridge_rows(other_f, other_b, mu, rows, cols, vals, n_rows, reg=hp["reg"],
                      bias_reg=bias_reg)


def ials_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    missing = [n for n in ("alpha", "unobserved_weight", "nu") if hp[n] is None]
    if missing:
        raise ValueError(f"the model's configuration records no {missing} for iALS")
    f = ials_rows(other_f, rows, cols, vals, n_rows, alpha=hp["alpha"],
                  unobserved_weight=hp["unobserved_weight"], reg=hp["reg"], nu=hp["nu"])
    return checked_rows(f, hp, vals), np.zeros(n_rows, np.asarray(other_f).dtype)


def bpr_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    f = bpr_rows(other_f, other_b, rows, cols, n_rows, reg=hp["reg"])
    return checked_rows(f, hp, vals), np.zeros(n_rows, np.asarray(other_f).dtype)


def ridge_hyperparameters(spec) -> dict:
    """λ, λ_b of a spec with ``reg``/``bias_reg`` (``bias_reg`` None: λ, as in training),
    the ``hp`` of :func:`ridge_row_solve` and :func:`bpr_row_solve`."""
    return {"reg": spec.reg, "bias_reg": spec.reg if spec.bias_reg is None else spec.bias_reg}
