"""Exact and conjugate-gradient ALS half-steps for the iALS objective of :mod:`mfjax.models.implicit_als.objective`.

Exact ALS half-step (users; items are symmetric). L is quadratic in p_u with
Q fixed; ∂L/∂p_u = 0 gives, after dividing by 2::

    (Σ_{i∈I_u} c_ui q_i q_iᵀ + α0 G_Q + λ λ̃_u I_k) p_u = Σ_{i∈I_u} c_ui q_i     [k, k] [k] = [k]

(−2 c (1 − qᵀp) q contributes c q qᵀ p on the left and c q on the right;
α0 <p, G_Q p> contributes α0 G_Q p.) Because the all-pairs term includes the
observed pairs, an observed pair's quadratic weight is c_ui + α0 (the
"c − α0" form of Hu et al. comes from summing α0 over the unobserved pairs
only, which is a different objective). :func:`solve_users` builds the
per-row k×k systems from the user-sorted interactions, in fixed-size row
chunks (``lax.map``); within a chunk each row's list is cut into blocks of
``block`` interactions whose Gram ``Σ c q qᵀ`` is one small matmul, and the
per-block [k, k] results are ``segment_sum``-ed into rows, a fixed number of
blocks per inner step. Memory is O((chunk_rows + chunk_nnz / block) k² +
chunk_nnz k), independent of n_users. The systems are solved by batched
Cholesky. ``method="cg"`` instead runs a few conjugate-gradient steps per
row, warm-started from the current factors, with the matvec
``α0 G_Q p + Σ_i c_ui q_i (q_iᵀ p) + λ λ̃_u p`` (no k×k per row), as
``implicit`` and ALX do. Rows without interactions get p_u = 0 (their
right-hand side is 0, so 0 is a minimiser). The systems are positive
definite when λ > 0 or α0 G_Q is; with λ = α0 = 0 a row may be singular.

Defaults: the standalone half-steps :func:`solve_users`/:func:`solve_items` are exact
(Cholesky; their name promises the minimiser, and they may have no warm start);
:func:`als_sweep`, which always warm-starts, uses 3-step CG (timings of both:
``benchmarks/bench_ials.py``, whose docstring has the measured sweeps).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...objectives.explicit import Params
from ...data.interactions import ImplicitData
from .objective import row_reg
from ...solvers.finite import NonFiniteError

__all__ = [
    "solve_users",
    "solve_items",
    "als_sweep",
    "cholesky_rows",
    "cg_rows",
    "METHODS",
    "check_finite",
    "checked_factors",
]

#: Accepted ``method`` values of the solves.
METHODS = ("cholesky", "cg")


def cholesky_rows(other, indptr, rows, cols, vals, *, alpha, unobserved_weight, reg, nu,
                  chunk_rows, chunk_nnz, block, with_loss=False, n_other=None, n_live=None,
                  rowwise=False, prior=None):
    """Exact row solves by batched Cholesky: x [n, k] for the rows of ``indptr`` [n + 1].

    ``other`` [n_other, k] is the fixed side; ``cols``/``vals`` [nnz] the other-side
    index and value of each position (``rows`` is unused: the pointers imply it).

    Rows go in chunks of R = ``chunk_rows`` (``lax.map``). Within a chunk each
    row's interaction list is cut into blocks of L = ``block`` positions (the
    last one padded with c = 0), and the blocks are processed ``chunk_nnz // L``
    at a time: a block's Gram ``Σ c q qᵀ`` is one small matmul [k, L] @ [L, k]
    and only the per-block [k, k] results are scatter-added into the chunk's
    rows (L times fewer scattered bytes than one outer product per
    interaction). Memory ~ (R + chunk_nnz / L) k² + chunk_nnz k.

    With ``with_loss`` it also returns the observed part of L at the solution,
    ``Σ_rows Σ_i c (1 − <x, q_i>)² = Σ_rows (Σ c − 2 xᵀb + xᵀ A_obs x)`` with
    A_obs = Σ c q qᵀ and b = Σ c q, both already built for the solve: an exact
    re-association of the sum (it does not assume x solves the system), at R k²
    per chunk instead of a pass over the interactions.

    ``rowwise`` factors one row's system per ``lax.map`` step instead of one batched
    LAPACK call per chunk: jaxlib 0.10's batched CPU LAPACK kernels block their pool
    thread on tasks of the same pool, so several devices of a CPU mesh factoring at
    once deadlock (benchmarks/RESULTS.md); unbatched calls are not split.

    ``n_other`` (traced) overrides ``other.shape[0]`` in λ̃ (``other`` zero-padded),
    and ``n_live`` (traced) makes only the first ``ceil(n_live / R)`` chunks run
    (rows past them come back 0): with both, one executable serves any row counts
    up to the padded shapes (:func:`half_step_exact`).

    ``prior`` [n, k] (or None: 0) is each row's prior mean m (a feature map's A f):
    the right-hand side gains ``λ λ̃ m``, so x minimises the row's loss plus
    ``λ λ̃ ‖x − m‖²`` instead of ``λ λ̃ ‖x‖²`` (rows without interactions stay 0).
    """
    del rows  # the row of each position is implied by indptr
    n, nnz = indptr.shape[0] - 1, cols.shape[0]
    k = other.shape[1]
    if n_other is None:
        n_other = other.shape[0]
    dtype = other.dtype
    R, L = max(1, min(chunk_rows, n)), max(1, block)
    Bc = max(1, chunk_nnz // L)
    n_chunks = -(-n // R)
    indptr_p = jnp.concatenate([indptr, jnp.broadcast_to(indptr[-1], (n_chunks * R - n,))])
    conf = 1.0 + alpha * vals.astype(dtype)
    if nnz == 0:  # keep the (fully masked) gathers in bounds
        cols, conf = jnp.zeros((1,), cols.dtype), jnp.zeros((1,), dtype)
    base = unobserved_weight * (other.T @ other)  # α0 G [k, k]
    eye = jnp.eye(k, dtype=dtype)
    lanes = jnp.arange(L, dtype=indptr.dtype)
    prior_p = None if prior is None else jnp.concatenate(
        [prior.astype(dtype), jnp.zeros((n_chunks * R - n, k), dtype)])

    def chunk(r0):
        ptr = lax.dynamic_slice(indptr_p, (r0,), (R + 1,))
        counts = ptr[1:] - ptr[:-1]
        bptr = jnp.concatenate([jnp.zeros((1,), indptr.dtype), jnp.cumsum((counts + L - 1) // L)])
        total = bptr[R]

        def body(j, carry):
            A, b, csum = carry
            blk = j * Bc + jnp.arange(Bc, dtype=indptr.dtype)
            live = blk < total
            row = jnp.clip(jnp.searchsorted(bptr, blk, side="right") - 1, 0, R - 1)
            at = (blk - bptr[row])[:, None] * L + lanes[None, :]           # [Bc, L] within row
            valid = live[:, None] & (at < counts[row][:, None])
            pos = jnp.where(valid, ptr[row][:, None] + at, 0)
            c = jnp.where(valid, conf[pos], 0.0)
            Y = other[cols[pos]]                                            # [Bc, L, k]
            cY = c[:, :, None] * Y
            seg = jnp.where(live, row, R)  # R: dropped
            A = A + jax.ops.segment_sum(jnp.einsum("blk,blm->bkm", cY, Y), seg, num_segments=R,
                                        indices_are_sorted=True)
            b = b + jax.ops.segment_sum(jnp.sum(cY, axis=1), seg, num_segments=R,
                                        indices_are_sorted=True)
            if with_loss:
                csum = csum + jax.ops.segment_sum(jnp.sum(c, axis=1), seg, num_segments=R,
                                                  indices_are_sorted=True)
            return A, b, csum

        A, b, csum = lax.fori_loop(0, (total + Bc - 1) // Bc, body,
                                   (jnp.zeros((R, k, k), dtype), jnp.zeros((R, k), dtype),
                                    jnp.zeros((R,), dtype)))
        A_obs = A
        lam = reg * row_reg(counts.astype(dtype), n_other, unobserved_weight, nu)
        A = A + base[None] + lam[:, None, None] * eye[None]
        empty = counts == 0
        A = jnp.where(empty[:, None, None], eye[None], A)  # keep the factorization finite
        # A is symmetric by construction and LAPACK reads only its lower triangle, so
        # skip jnp.linalg.cholesky's symmetrization pass over [R, k, k] (~3 % of a sweep).
        rhs = b if prior_p is None else b + lam[:, None] * lax.dynamic_slice(
            prior_p, (r0, jnp.zeros_like(r0)), (R, k))
        x = _solve_rows(A, rhs, rowwise, (reg > 0) | (unobserved_weight > 0))
        x = jnp.where(empty[:, None], 0.0, x)
        if not with_loss:
            return x
        obs = csum - 2.0 * jnp.sum(x * b, axis=1) + jnp.einsum("rk,rkm,rm->r", x, A_obs, x)
        return x, jnp.sum(obs)

    if n_live is None:
        out = lax.map(chunk, jnp.arange(n_chunks, dtype=indptr.dtype) * R)
        if not with_loss:
            return out.reshape(n_chunks * R, k)[:n]
        x, obs = out
        return x.reshape(n_chunks * R, k)[:n], jnp.sum(obs)

    def live_chunk(j, carry):
        X, total = carry
        r0 = (j * R).astype(indptr.dtype)
        x, obs = chunk(r0) if with_loss else (chunk(r0), 0.0)
        return lax.dynamic_update_slice(X, x, (r0, jnp.zeros_like(r0))), total + obs

    n_run = jnp.minimum((jnp.asarray(n_live, indptr.dtype) + R - 1) // R, n_chunks)
    X, obs = lax.fori_loop(0, n_run, live_chunk,
                           (jnp.zeros((n_chunks * R, k), dtype), jnp.zeros((), dtype)))
    X = X[:n]
    return (X, obs) if with_loss else X


def _factor_solve(Ab):
    """(x, p) for A [..., k, k] (lower triangle read) and b [..., k]: x = A⁻¹ b by
    Cholesky A = L Lᵀ, and p [...] the smallest pivot L_jj² (NaN when A is not positive
    definite)."""
    Lc = lax.linalg.cholesky(Ab[0], symmetrize_input=False)
    y = lax.linalg.triangular_solve(Lc, Ab[1][..., None], left_side=True, lower=True)
    x = lax.linalg.triangular_solve(Lc, y, left_side=True, lower=True, transpose_a=True)
    return x[..., 0], jnp.min(jnp.square(jnp.diagonal(Lc, axis1=-2, axis2=-1)), axis=-1)


#: A row's Cholesky counts as failed when a pivot L_jj² falls below this many eps of
#: max diag(A): the Gram's own rounding in the fit's dtype (the C++ kernel uses the same bound).
PIVOT_TOL_EPS = 64


def _solve_rows(A, b, rowwise, regularized=True):
    """x [R, k] = A⁻¹ b for A [R, k, k], b [R, k], retrying failed rows with A's diagonal loaded.

    A row fails when its smallest Cholesky pivot is below ``PIVOT_TOL_EPS`` eps max
    diag(A) or its x is not finite: in float32 the Gram's rounding can swamp A's
    smallest eigenvalues (c q qᵀ terms of 1e8 against λ 0.1 when α v is large), so
    Cholesky breaks down or returns rounding noise. Such a row is solved again with
    ``A + δ I``, δ = ``PIVOT_TOL_EPS`` eps max diag(A), the smallest shift its precision
    resolves (a larger ridge in the directions it cannot resolve). The C++ kernel instead
    re-sums such rows in float64 (:mod:`mfjax.kernels.ials`). The retry runs only when a
    row of the chunk failed (``lax.cond``); well-conditioned rows are untouched. Without
    any regularization (``regularized`` False: λ = α0 = 0) a failed row is genuinely
    singular and is not retried: its non-finite x reaches the caller, which raises (as
    the kernel's does).
    """
    k = A.shape[-1]
    solve = (lambda Ab: lax.map(_factor_solve, Ab)) if rowwise else _factor_solve
    x, pivot = solve((A, b))
    tol = PIVOT_TOL_EPS * jnp.finfo(A.dtype).eps * jnp.max(jnp.diagonal(A, axis1=1, axis2=2),
                                                           axis=1)
    bad = ~(pivot > tol) | ~jnp.all(jnp.isfinite(x), axis=1)

    def loaded(x):
        A2 = A + jnp.maximum(tol, 0.0)[:, None, None] * jnp.eye(k, dtype=A.dtype)[None]
        return jnp.where(bad[:, None], solve((A2, b))[0], x)

    return lax.cond(jnp.any(bad) & regularized, loaded, lambda x: x, x)


def cg_rows(other, indptr, rows, cols, vals, x0, *, alpha, unobserved_weight, reg, nu, steps,
            chunk_rows, chunk_nnz, n_other=None, prior=None):
    """``steps`` conjugate-gradient iterations per row from x0 [n, k].

    Arguments as in :func:`cholesky_rows` (``prior`` included: ``λ λ̃ m`` joins the
    right-hand side), plus ``rows`` [nnz], the row of each position.

    Rows go in chunks of R = ``chunk_rows`` (``lax.map``); each matvec
    ``α0 G x + Σ_i c q (qᵀ x) + λ λ̃ x`` walks the chunk's interactions
    ``chunk_nnz`` at a time, so memory is O((chunk_rows + chunk_nnz) k) and no
    k×k matrix per row is formed. ``n_other`` (traced) overrides
    ``other.shape[0]`` in λ̃ (``other`` zero-padded).
    """
    n = indptr.shape[0] - 1
    k = other.shape[1]
    if n_other is None:
        n_other = other.shape[0]
    dtype = other.dtype
    R, C = max(1, min(chunk_rows, n)), max(1, chunk_nnz)
    n_chunks = -(-n // R)
    G = unobserved_weight * (other.T @ other)
    indptr_p = jnp.concatenate([indptr, jnp.broadcast_to(indptr[-1], (n_chunks * R - n,))])
    rows_p = jnp.concatenate([rows, jnp.zeros((C,), rows.dtype)])
    cols_p = jnp.concatenate([cols, jnp.zeros((C,), cols.dtype)])
    conf_p = jnp.concatenate([1.0 + alpha * vals.astype(dtype), jnp.zeros((C,), dtype)])
    x0_p = jnp.concatenate([x0.astype(dtype), jnp.zeros((n_chunks * R - n, k), dtype)])
    prior_p = None if prior is None else jnp.concatenate(
        [prior.astype(dtype), jnp.zeros((n_chunks * R - n, k), dtype)])

    def chunk(r0):
        ptr = lax.dynamic_slice(indptr_p, (r0,), (R + 1,))
        start, end = ptr[0], ptr[R]
        counts = ptr[1:] - ptr[:-1]
        lam = reg * row_reg(counts.astype(dtype), n_other, unobserved_weight, nu)
        n_sub = (end - start + C - 1) // C

        def observed(x):
            """(Σ_i c q (qᵀ x_row), Σ_i c q) over the chunk's rows [R, k]; x None: only the 2nd."""
            def body(j, acc):
                s = start + j * C
                valid = s + jnp.arange(C) < end
                c = jnp.where(valid, lax.dynamic_slice(conf_p, (s,), (C,)), 0.0)
                local = jnp.where(valid, lax.dynamic_slice(rows_p, (s,), (C,)) - r0, 0)
                q = other[lax.dynamic_slice(cols_p, (s,), (C,))]
                seg = jnp.where(valid, local, R)  # R: dropped
                if x is None:
                    t = c[:, None] * q
                else:
                    t = (c * jnp.sum(q * x[local], axis=1))[:, None] * q
                return acc + jax.ops.segment_sum(t, seg, num_segments=R, indices_are_sorted=True)
            return lax.fori_loop(0, n_sub, body, jnp.zeros((R, k), dtype))

        def matvec(x):
            return x @ G + observed(x) + lam[:, None] * x

        b = observed(None)
        if prior_p is not None:
            b = b + lam[:, None] * lax.dynamic_slice(prior_p, (r0, jnp.zeros_like(r0)), (R, k))
        x = jnp.where((counts == 0)[:, None], 0.0, lax.dynamic_slice(x0_p, (r0, jnp.zeros_like(r0)), (R, k)))
        r = b - matvec(x)
        rs = jnp.sum(r * r, axis=1)

        def step(_, carry):
            x, r, p, rs = carry
            Ap = matvec(p)
            pAp = jnp.sum(p * Ap, axis=1)
            a = jnp.where(pAp > 0, rs / jnp.where(pAp > 0, pAp, 1.0), 0.0)
            x = x + a[:, None] * p
            r = r - a[:, None] * Ap
            rs_new = jnp.sum(r * r, axis=1)
            beta = jnp.where(rs > 0, rs_new / jnp.where(rs > 0, rs, 1.0), 0.0)
            return x, r, r + beta[:, None] * p, rs_new

        x, *_ = lax.fori_loop(0, steps, step, (x, r, r, rs))
        return x

    out = lax.map(chunk, jnp.arange(n_chunks, dtype=indptr.dtype) * R)
    return out.reshape(n_chunks * R, k)[:n]


_STATIC = ("method", "cg_steps", "chunk_rows", "chunk_nnz", "block")


def _solve(other, indptr, rows, cols, vals, init, *, alpha, unobserved_weight, reg, nu,
           method, cg_steps, chunk_rows, chunk_nnz, block):
    if method == "cholesky":
        return cholesky_rows(other, indptr, rows, cols, vals, alpha=alpha,
                             unobserved_weight=unobserved_weight, reg=reg, nu=nu,
                             chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, block=block)
    if method == "cg":
        if init is None:
            init = jnp.zeros((indptr.shape[0] - 1, other.shape[1]), other.dtype)
        return cg_rows(other, indptr, rows, cols, vals, init, alpha=alpha,
                       unobserved_weight=unobserved_weight, reg=reg, nu=nu, steps=cg_steps,
                       chunk_rows=chunk_rows, chunk_nnz=chunk_nnz)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


@functools.partial(jax.jit, static_argnames=_STATIC)
def solve_users(item_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
                method: str = "cholesky", init=None, cg_steps: int = 3,
                chunk_rows: int = 256, chunk_nnz: int = 2048, block: int = 32) -> jax.Array:
    """The ALS user half-step: argmin over P of L with Q = ``item_factors`` fixed.

    Row u solves ``(Σ_{i∈I_u} c_ui q_i q_iᵀ + α0 QᵀQ + λ λ̃_u I) p_u = Σ_{i∈I_u} c_ui q_i``
    (module docstring).

    Args:
        item_factors: Q [n_items, k].
        data: an :class:`ImplicitData`.
        alpha, unobserved_weight, reg, nu: as in :func:`loss`.
        method: ``"cholesky"`` (exact) or ``"cg"`` (``cg_steps`` conjugate-gradient
            steps from ``init``; exact after k steps in exact arithmetic).
        init: the current P [n_users, k], the CG warm start (``None``: zeros).
            Ignored by Cholesky.
        cg_steps: CG iterations.
        chunk_rows, chunk_nnz, block: chunking: rows per ``lax.map`` step and
            interactions per inner step (both methods), and Cholesky's block length
            L of one per-row Gram matmul (Cholesky memory ~ (chunk_rows + chunk_nnz /
            block) k² + chunk_nnz k; CG ~ (chunk_rows + chunk_nnz) k).

    Returns:
        P [n_users, k].
    """
    return _solve(item_factors, data.user_indptr, data.user_rows, data.user_items,
                  data.user_values, init, alpha=alpha, unobserved_weight=unobserved_weight,
                  reg=reg, nu=nu, method=method, cg_steps=cg_steps, chunk_rows=chunk_rows,
                  chunk_nnz=chunk_nnz, block=block)


@functools.partial(jax.jit, static_argnames=_STATIC)
def solve_items(user_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
                method: str = "cholesky", init=None, cg_steps: int = 3,
                chunk_rows: int = 256, chunk_nnz: int = 2048, block: int = 32) -> jax.Array:
    """The ALS item half-step, symmetric to :func:`solve_users`: returns Q [n_items, k]."""
    return _solve(user_factors, data.item_indptr, data.item_rows, data.item_users,
                  data.item_values, init, alpha=alpha, unobserved_weight=unobserved_weight,
                  reg=reg, nu=nu, method=method, cg_steps=cg_steps, chunk_rows=chunk_rows,
                  chunk_nnz=chunk_nnz, block=block)


@functools.partial(jax.jit, static_argnames=_STATIC)
def als_sweep(params: Params, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
              method: str = "cg", cg_steps: int = 3, chunk_rows: int = 256,
              chunk_nnz: int = 2048, block: int = 32) -> Params:
    """One ALS sweep: solve the users, then the items. Biases are returned unchanged.

    ``method`` defaults to ``"cg"`` warm-started from ``params`` (faster per
    unit of progress at k >= 128 on CPU, module docstring); ``"cholesky"``
    makes each half-step exact. Other arguments as in :func:`solve_users`.
    """
    kw = dict(alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu, method=method,
              cg_steps=cg_steps, chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, block=block)
    P = solve_users(params.item_factors, data, init=params.user_factors, **kw)
    Q = solve_items(P, data, init=params.item_factors, **kw)
    return params._replace(user_factors=P, item_factors=Q)


def check_finite(hp: dict, where: str, **values) -> None:
    """Raise :class:`~mfjax.solvers.finite.NonFiniteError` (a ValueError) naming the cause
    and the fix when one of ``values`` is not finite.

    Args:
        hp: the solve's ``alpha``, ``unobserved_weight``, ``reg`` (``nu``).
        where: what produced them, e.g. ``"sweep 3"`` or ``"the final user re-solve"``.
        **values: arrays (factor tables, loss values) by name.

    Raises:
        NonFiniteError: a value is NaN or infinite. With ``reg = 0`` a row's system
            ``Σ c q qᵀ + α0 QᵀQ`` is singular whenever those terms do not span all
            rank directions (fewer interactions and other-side rows than the rank, or
            ``unobserved_weight = 0``), so the fix is ``reg > 0``; otherwise the
            confidences overflow or swamp the ridge, so the fix is smaller values/alpha.
    """
    bad = [name for name, v in values.items() if not np.isfinite(np.asarray(v)).all()]
    if not bad:
        return
    reg, a0, alpha = (float(hp.get(k, np.nan)) for k in ("reg", "unobserved_weight", "alpha"))
    if reg == 0:
        cause = (f"with reg=0 (unobserved_weight={a0:g}) a row's system is singular when its "
                 "interactions and unobserved_weight * QᵀQ do not span every rank direction "
                 "(fewer interactions or other-side rows than the rank, or unobserved_weight=0)")
        fix = "use reg > 0"
    else:
        cause = (f"the row systems overflow or are too ill-conditioned to solve (confidences "
                 f"1 + alpha * value with alpha={alpha:g} against reg={reg:g})")
        fix = "scale the interaction values or alpha down, or raise reg"
    raise NonFiniteError(f"fit(objective='ials'): {where} gave non-finite {', '.join(bad)}: "
                     f"{cause}; {fix}")


def checked_factors(params: Params, hp: dict, where: str = "the final solve") -> Params:
    """``params`` after :func:`check_finite` of its user and item factors."""
    check_finite(hp, where, user_factors=params.user_factors,
                 item_factors=params.item_factors)
    return params
