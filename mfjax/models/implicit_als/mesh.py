"""iALS ALS half-steps split by rows over every device of a mesh (``fit(objective="ials", mesh=)``).

An ALS half-step solves each row of one side independently (module docstring of
:mod:`mfjax.models.implicit_als.solve`)::

    (Σ_{i∈I_u} c_ui q_i q_iᵀ + α0 QᵀQ + λ λ̃_u I) p_u = Σ_{i∈I_u} c_ui q_i

so the rows are split over all D devices of the ``data x model`` mesh (both axes,
flattened) and each device solves its own with the single-device code
(:func:`mfjax.models.implicit_als.row_solves.cholesky_rows` / :func:`~mfjax.models.implicit_als.row_solves.cg_rows`). Row r
goes to device ``r mod D`` (round-robin, so rows sorted by ID or popularity spread
their interactions evenly), at local slot ``r div D``. Each device then needs:

- its rows' interactions: a local CSR block, zero-padded to the largest block so all
  devices have one shape (:class:`MeshSide`, built once on the host by
  :func:`mesh_layouts`; each process places only its own devices' blocks);
- the whole other side's table: an ``all_gather`` of the other side's row shards
  inside the half-step (memory ≈ (n_users + n_items) · k per device, as a
  replicated model needs anyway), whose Gramian G = QᵀQ each device forms itself.

The objective value needs three sums over devices (``psum``): the observed part at the
solution, ``xᵀx`` for ``α0 <PᵀP, QᵀQ>``, and the penalty. Between half-steps the
factors stay row-sharded in this device-major layout (``[D · R, k]``, R = rows per
device); :func:`to_natural` and :func:`from_natural` convert to and from the table in
row order. The half-steps compute what the one-device solver computes, so results
match it to float tolerance.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ...distributed import DATA, MODEL, put_global
from ...data.interactions import ImplicitData
from .objective import row_reg
from .row_solves import cg_rows, cholesky_rows
from .solve import METHODS
from .steps import observed_sum

__all__ = ["MeshSide", "mesh_layouts", "mesh_half_step", "to_natural", "from_natural"]

#: The rows are split over both mesh axes.
AXES = (DATA, MODEL)


class MeshSide(NamedTuple):
    """One side's interactions, split by rows over D devices (leading axis sharded).

    Attributes:
        indptr: [D, R + 1] int32, each device's local CSR pointers over its R row slots.
        rows: [D, Z] int32, the local row slot of each position (0 past the block's end).
        cols: [D, Z] int32, the other side's row in ITS device-major layout.
        vals: [D, Z] float, v (0 past the block's end; never addressed by ``indptr``).
        n_live: [D] int32, each device's real rows (a prefix of its slots).
        n_other: () int32, the other side's real row count (λ̃ uses it).
        to_rows: [n] int32 (replicated): row r's slot in the device-major layout
            (``(r mod D) · R + r div D``), the gather of :func:`to_natural`.
        to_slots: [D · R] int32 (replicated): the row of each slot, n for padding
            slots, the gather of :func:`from_natural`.
    """

    indptr: jax.Array
    rows: jax.Array
    cols: jax.Array
    vals: jax.Array
    n_live: jax.Array
    n_other: jax.Array
    to_rows: jax.Array
    to_slots: jax.Array


def _positions(n: int, d: int) -> tuple[np.ndarray, int]:
    per = max(1, -(-n // d))
    r = np.arange(n, dtype=np.int64)
    return (r % d) * per + r // d, per


def mesh_layouts(data: ImplicitData, mesh: Mesh) -> tuple[MeshSide, MeshSide]:
    """The (users, items) views of ``data`` split over every device of ``mesh``.

    Args:
        data: the interactions (:func:`mfjax.data.interactions.build_implicit_data`).
        mesh: a ``data x model`` mesh (:func:`mfjax.distributed.make_mesh`).

    Returns:
        ``(users, items)`` :class:`MeshSide` s, placed on the mesh.
    """
    d = mesh.size
    n_u, n_i = data.n_users, data.n_items
    pos_u, per_u = _positions(n_u, d)
    pos_i, per_i = _positions(n_i, d)
    sharded = NamedSharding(mesh, P(AXES))

    def side(indptr, cols, vals, n, per, pos_other, n_other, position):
        indptr, cols, vals = np.asarray(indptr, np.int64), np.asarray(cols), np.asarray(vals)
        counts = np.diff(indptr)
        blocks = []
        for dev in range(d):
            mine = np.arange(dev, n, d)  # this device's rows, in slot order
            c = counts[mine]
            take = (np.repeat(indptr[mine] - np.concatenate([[0], np.cumsum(c)[:-1]]), c)
                    + np.arange(int(c.sum()))) if mine.size else np.zeros(0, np.int64)
            blocks.append((mine.size, c, take))
        z = max(1, max(int(b[1].sum()) for b in blocks))
        ip = np.zeros((d, per + 1), np.int32)
        rw = np.zeros((d, z), np.int32)
        cl = np.zeros((d, z), np.int32)
        vl = np.zeros((d, z), vals.dtype)
        live = np.zeros(d, np.int32)
        for dev, (m, c, take) in enumerate(blocks):
            nnz = take.size
            ip[dev, 1:m + 1] = np.cumsum(c)
            ip[dev, m + 1:] = nnz
            rw[dev, :nnz] = np.repeat(np.arange(m), c)
            cl[dev, :nnz] = pos_other[cols[take]]
            vl[dev, :nnz] = vals[take]
            live[dev] = m
        put = lambda x: put_global(x, sharded)  # noqa: E731
        replicate = lambda x: put_global(x, NamedSharding(mesh, P()))  # noqa: E731
        slots = np.full(d * per, n, np.int32)  # padding slots: past the end, gathered as 0
        slots[position] = np.arange(n)
        return MeshSide(put(ip), put(rw), put(cl), put(vl), put(live), replicate(np.int32(n_other)),
                        replicate(position.astype(np.int32)), replicate(slots))

    users = side(data.user_indptr, data.user_items, data.user_values, n_u, per_u, pos_i, n_i, pos_u)
    items = side(data.item_indptr, data.item_users, data.item_values, n_i, per_i, pos_u, n_u, pos_i)
    return users, items


@functools.lru_cache(maxsize=16)
def _half_step(mesh: Mesh, method: str, cg_steps: int, chunk_rows: int, chunk_nnz: int,
               block: int):
    """The jitted sharded half-step for one mesh and static configuration."""
    rows_spec = P(AXES)
    # CPU devices factor row by row: concurrent batched LAPACK calls deadlock in jaxlib
    # 0.10 (see mfjax.models.implicit_als.row_solves.cholesky_rows).
    rowwise = mesh.devices.flat[0].platform == "cpu"

    def body(other_shard, x0, indptr, rows, cols, vals, n_live, n_other, hp):
        other = lax.all_gather(other_shard, AXES, tiled=True)  # the whole other table
        dtype = other.dtype
        n_other = n_other.astype(dtype)
        kw = dict(alpha=hp["alpha"], unobserved_weight=hp["unobserved_weight"], reg=hp["reg"],
                  nu=hp["nu"], chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, n_other=n_other)
        ip, rw, cl, vl = indptr[0], rows[0], cols[0], vals[0]
        if method == "cholesky":
            x, observed = cholesky_rows(other, ip, rw, cl, vl, block=block, with_loss=True,
                                        n_live=n_live[0], rowwise=rowwise, **kw)
        else:
            x = cg_rows(other, ip, rw, cl, vl, x0, steps=cg_steps, **kw)
            observed = observed_sum(x, other, ip, rw, cl, vl, hp["alpha"])
        lam = row_reg(jnp.diff(ip).astype(dtype), n_other, hp["unobserved_weight"], hp["nu"])
        penalty = lax.psum(hp["reg"] * jnp.sum(lam * jnp.sum(x * x, axis=1)), AXES)
        gram = lax.psum(x.T @ x, AXES)
        value = (lax.psum(observed, AXES)
                 + hp["unobserved_weight"] * jnp.sum(gram * (other.T @ other)) + penalty)
        return x, value, penalty

    sharded = jax.shard_map(body, mesh=mesh,
                            in_specs=(rows_spec, rows_spec, rows_spec, rows_spec, rows_spec,
                                      rows_spec, rows_spec, P(), P()),
                            out_specs=(rows_spec, P(), P()),
                            # the single-device solves' loop carries start replicated
                            check_vma=False)
    return jax.jit(sharded)


def mesh_half_step(other, side: MeshSide, mesh: Mesh, *, alpha, unobserved_weight, reg, nu,
                   method: str = "cholesky", x0=None, cg_steps: int = 3, chunk_rows: int = 256,
                   chunk_nnz: int = 2048, block: int = 64):
    """One ALS half-step for ``side``'s rows, each device solving its own.

    Args:
        other: the other side's factors in device-major layout [D · R_other, k], row-sharded.
        side: this side's :class:`MeshSide` (from :func:`mesh_layouts`).
        mesh: the mesh ``side`` was placed on.
        alpha, unobserved_weight, reg, nu: as in :func:`mfjax.models.implicit_als.objective.loss`.
        method: ``"cholesky"`` (exact) or ``"cg"`` (``cg_steps`` conjugate-gradient
            steps from ``x0``, this side's current factors in device-major layout).
        chunk_rows, chunk_nnz, block: as in :func:`mfjax.models.implicit_als.solve.solve_users`.

    Returns:
        ``(x, value, penalty)`` as :func:`mfjax.models.implicit_als.steps.half_step_exact` returns
        them, x in device-major layout [D · R, k] (padding slots 0).
    """
    if method not in METHODS:
        raise ValueError(f"mesh_half_step: method must be one of {METHODS}, got {method!r}")
    d, per = side.indptr.shape[0], side.indptr.shape[1] - 1
    if x0 is None:
        x0 = jnp.zeros((d * per, other.shape[1]), other.dtype,
                       device=NamedSharding(mesh, P(AXES)))
    hp = dict(alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu)
    hp = {k: jnp.asarray(v, other.dtype) for k, v in hp.items()}
    run = _half_step(mesh, method, int(cg_steps), int(chunk_rows), int(chunk_nnz), int(block))
    return run(other, x0, side.indptr, side.rows, side.cols, side.vals, side.n_live,
               side.n_other, hp)


@functools.lru_cache(maxsize=16)
def _gather(mesh: Mesh, spec: P):
    """A jitted ``x[index]`` (indices past the end give 0 rows), laid out as ``spec``."""
    return jax.jit(lambda x, index: jnp.take(x, index, axis=0, mode="fill", fill_value=0),
                   out_shardings=NamedSharding(mesh, spec))


def to_natural(x, side: MeshSide, mesh: Mesh):
    """The table in row order [n, k], replicated, from device-major ``x`` [D · R, k]."""
    return _gather(mesh, P())(x, side.to_rows)


def from_natural(x, side: MeshSide, mesh: Mesh):
    """Device-major ``[D · R, k]`` (row-sharded, padding slots 0) from the table ``x`` [n, k]
    in row order (a global array on ``mesh``)."""
    return _gather(mesh, P(AXES))(x, side.to_slots)
