"""The per-row solves of one iALS half-step: exact (batched Cholesky) and conjugate gradient.

:func:`cholesky_rows` and :func:`cg_rows` solve the row systems of
:mod:`mfjax.models.implicit_als.solve` (whose docstring derives them) for the rows of one
CSR side, in fixed-size row chunks; :func:`mfjax.models.implicit_als.solve.solve_users`,
the XLA half-steps (:mod:`mfjax.models.implicit_als.steps`) and the mesh half-step
(:mod:`mfjax.models.implicit_als.mesh`) call them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .objective import row_reg

__all__ = ["cholesky_rows", "cg_rows", "PIVOT_TOL_EPS"]


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
