"""The LogisticMF solver: alternating Newton half-steps on the dense logistic objective.

The objective is :func:`mfjax.models.logistic_mf.objective.loss` (every pair counts, the
interactions with confidence c = α v). Given the items, each user's row z_u = [p_u; b_u]
is an independent convex problem (and the same for items given the users), with
f_i = [q_i; 1], x_ui = <z_u, f_i> + b_i + μ and Λ = diag(λ, …, λ, λ_b):

    g_u = Σ_i σ(x_ui) f_i − Σ_(i∈I_u) c_ui σ(−x_ui) f_i + Λ z_u
    ∇²_u = Σ_i (1 + c_ui) σ(x_ui) σ(−x_ui) f_i f_iᵀ + Λ

One half-step moves every row by z_u ← z_u − δ_u with H̃_u δ_u = g_u solved by
``cg_steps`` conjugate-gradient steps from δ = 0, where H̃_u is ∇²_u with the curvature
of the pairs without interaction, σ(x)σ(−x), replaced by its bound ¼:

    H̃_u = ¼ G + Σ_(i∈I_u) [(1 + c_ui) σ(x_ui) σ(−x_ui) − ¼] f_i f_iᵀ + Λ,   G = Σ_i f_i f_iᵀ

(H̃_u ⪰ ∇²_u on the pairs without interaction, exact on the interactions, positive
definite; a product H̃_u v costs O(k² + |I_u| k), so no row system is formed; the
interactions sit in fixed-width :class:`Chunks`, so these products are dense einsums
plus a segment sum over a row's few chunks). The dense part, X = Z Fᵀ [n_rows, n_other]
and σ(X) F, is two matrix products per half-step, O(n_users n_items k) time, computed by
blocks of :data:`BLOCK` rows (:func:`dense_terms`: O(BLOCK n_other) memory). A sweep (one
``fit`` epoch) solves the items, then the users, in one jitted program (compiled once
per shape and ``cg_steps``; α, λ, λ_b are traced, so a search over them reuses it);
the data go to the device once, in :meth:`LogisticMFSolver.init`. The history's
``loss`` is L / |S| (S the distinct interactions) at the point between the two
half-steps, from the user half-step's own pass. Nothing is random after the initial
factors (N(0, init_scale²) drawn from ``run.seed``; biases and μ 0).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...data import Ratings, interactions
from ...objectives.explicit import Params
from ...solvers.base import restore_leaves
from ...data.interactions import implicit_values
from ...solvers.minibatch.epoch import host_init

__all__ = ["LogisticMFState", "LogisticMFSolver", "Chunks", "chunks", "half_step", "sweep",
           "CHUNK", "BLOCK", "dense_terms"]

#: Slots per chunk of a row's interactions (:class:`Chunks`).
CHUNK = 32
#: Rows per block of the dense pass (:func:`dense_terms`).
BLOCK = 256


class LogisticMFState(NamedTuple):
    """The solver's state.

    Attributes:
        params: the model (μ stays 0).
        epoch: sweeps done.
    """

    params: Params
    epoch: int


def _cg(hv, g, steps: int):
    """δ [n, k1] with H̃ δ ≈ g row by row: ``steps`` CG steps from 0 (``hv(v)``: H̃ v)."""
    x, r = jnp.zeros_like(g), g
    p, rs = r, jnp.sum(r * r, axis=1)
    tiny = jnp.finfo(g.dtype).tiny
    for _ in range(steps):
        hp = hv(p)
        a = rs / jnp.maximum(jnp.sum(p * hp, axis=1), tiny)
        x, r = x + a[:, None] * p, r - a[:, None] * hp
        rs_new = jnp.sum(r * r, axis=1)
        p, rs = r + (rs_new / jnp.maximum(rs, tiny))[:, None] * p, rs_new
    return x


class Chunks(NamedTuple):
    """One side's interactions cut into chunks of ``width`` (a pytree of device arrays).

    Row r's interactions fill ``ceil(|I_r| / width)`` chunks (the last zero-padded), so
    a row's sums over its interactions are dense sums over its chunks' slots plus a
    segment sum over its few chunks.

    Attributes:
        row: [n_chunks] int32, the row of each chunk (sorted).
        cols: [n_chunks, width] int32, the other side's index per slot (padding 0).
        vals: [n_chunks, width] float, v per slot (padding 0).
        valid: [n_chunks, width] bool, whether the slot holds an interaction.
    """

    row: jax.Array
    cols: jax.Array
    vals: jax.Array
    valid: jax.Array


def chunks(indptr, cols, vals, width: int = CHUNK) -> Chunks:
    """The :class:`Chunks` of one CSR view (``indptr`` [n + 1], ``cols``/``vals`` [nnz])."""
    indptr = np.asarray(indptr, np.int64)
    counts = np.diff(indptr)
    per_row = -(-counts // width)
    row = np.repeat(np.arange(len(counts)), per_row)
    first = np.concatenate([[0], np.cumsum(per_row)])[:-1]  # each row's first chunk
    pos = np.arange(int(indptr[-1])) - np.repeat(indptr[:-1], counts)  # slot in its row
    slot = np.repeat(first, counts) * width + pos
    n = max(len(row), 1)
    c, v, ok = np.zeros(n * width, np.int32), np.zeros(n * width, np.float32), np.zeros(n * width, bool)
    c[slot], v[slot], ok[slot] = np.asarray(cols), np.asarray(vals), True
    row = row if len(row) else np.zeros(1, np.int64)
    return Chunks(*(jnp.asarray(x) for x in (row.astype(np.int32), c.reshape(n, width),
                                             v.reshape(n, width), ok.reshape(n, width))))


def dense_terms(z, F, offset, *, want_loss: bool, block: int = BLOCK):
    """σ(X) F [n, k1] and Σ softplus(X) (0 unless ``want_loss``) of X = z Fᵀ + offset,
    by blocks of ``block`` rows (``lax.map``), so X is never whole in memory and each
    block's X stays in cache between its two products.

    Args:
        z: [n, k1]; F: [m, k1]; offset: [m] (added to every row of X).
        want_loss: whether to sum softplus(X) too.
        block: rows per block (static).
    """
    n, k1 = z.shape
    nb = -(-n // block)
    zp = jnp.pad(z, ((0, nb * block - n), (0, 0))).reshape(nb, block, k1)
    real = (jnp.arange(nb * block) < n).reshape(nb, block)

    def one(args):
        zb, rb = args
        X = zb @ F.T + offset[None, :]
        S = jax.nn.sigmoid(X)
        if not want_loss:
            return S @ F, jnp.zeros((), z.dtype)
        # softplus(x) = max(x, 0) − log σ(|x|): one log per pair beside σ's exp.
        sp = jnp.maximum(X, 0.0) - jnp.log(jnp.where(X > 0, S, 1.0 - S))
        return S @ F, jnp.sum(jnp.where(rb[:, None], sp, 0.0))

    g, values = jax.lax.map(one, (zp, real))
    return g.reshape(nb * block, k1)[:n], jnp.sum(values)


def half_step(own_f, own_b, other_f, other_b, mu, side: Chunks, alpha, reg, bias_reg, *,
              cg_steps: int, want_loss: bool):
    """One side's rows solved against the fixed other side (module docstring).

    Args:
        own_f, own_b: the rows being solved, [n, k] and [n].
        other_f, other_b: the fixed side, [m, k] and [m].
        mu: μ [].
        side: the solved side's interactions (:class:`Chunks`).
        alpha, reg, bias_reg: α, λ, λ_b.
        cg_steps: CG steps per row (static).
        want_loss: also return L at the starting point (one more dense pass).

    Returns:
        ``(own_f, own_b, L or 0)``.
    """
    n, k = own_f.shape
    dtype = own_f.dtype
    F = jnp.concatenate([other_f, jnp.ones_like(other_b)[:, None]], axis=1)   # [m, k1]
    z = jnp.concatenate([own_f, own_b[:, None]], axis=1)                        # [n, k1]
    lam = jnp.concatenate([jnp.full((k,), reg), jnp.full((1,), bias_reg)]).astype(dtype)
    Fc = F[side.cols]                                                           # [C, L, k1]
    conf = alpha * side.vals.astype(dtype)
    xs = jnp.einsum("clk,ck->cl", Fc, z[side.row]) + other_b[side.cols] + mu
    s = jax.nn.sigmoid(xs)
    seg = functools.partial(jax.ops.segment_sum, segment_ids=side.row, num_segments=n,
                            indices_are_sorted=True)
    dense, dense_loss = dense_terms(z, F, other_b + mu, want_loss=want_loss)
    g = (dense - seg(jnp.einsum("cl,clk->ck", conf * (1.0 - s), Fc))
         + lam[None, :] * z)
    a = jnp.where(side.valid, (1.0 + conf) * s * (1.0 - s) - 0.25, 0.0)
    G = 0.25 * (F.T @ F)

    def hv(v):
        t = a * jnp.einsum("clk,ck->cl", Fc, v[side.row])
        return v @ G + seg(jnp.einsum("cl,clk->ck", t, Fc)) + lam[None, :] * v

    z = z - _cg(hv, g, cg_steps)
    value = jnp.zeros((), dtype)
    if want_loss:
        value = (dense_loss + jnp.sum(conf * jax.nn.softplus(-xs))
                 + 0.5 * reg * (jnp.sum(own_f ** 2) + jnp.sum(other_f ** 2))
                 + 0.5 * bias_reg * (jnp.sum(own_b ** 2) + jnp.sum(other_b ** 2)))
    return z[:, :-1], z[:, -1], value


@functools.partial(jax.jit, static_argnames=("cg_steps",), donate_argnums=(0,))
def sweep(params: Params, users: Chunks, items: Chunks, alpha, reg, bias_reg, *,
          cg_steps: int):
    """One sweep: the items, then the users (:func:`half_step`).

    Args:
        params: the model.
        users, items: each side's interactions (:class:`Chunks`).
        alpha, reg, bias_reg: α, λ, λ_b (traced).
        cg_steps: CG steps per row (static).

    Returns:
        ``(params, L)``, L at the point between the two half-steps.
    """
    p = params
    q, bi, _ = half_step(p.item_factors, p.item_bias, p.user_factors, p.user_bias,
                         p.global_bias, items, alpha, reg, bias_reg, cg_steps=cg_steps,
                         want_loss=False)
    P, bu, value = half_step(p.user_factors, p.user_bias, q, bi, p.global_bias, users, alpha,
                             reg, bias_reg, cg_steps=cg_steps, want_loss=True)
    return Params(P, q, bu, bi, p.global_bias), value


class LogisticMFSolver:
    """:class:`mfjax.LogisticMF`: alternating Newton-CG half-steps (module docstring)."""

    min_epochs = 1

    def __init__(self):
        self.seen, self.facts = None, {}

    def init(self, train: Ratings, spec, run) -> LogisticMFState:
        """Lay out the interactions on the device and draw the initial factors."""
        self.spec = spec
        d = interactions.build_implicit_data(train.users, train.items,
                                             implicit_values(train, "logistic"),
                                             n_users=train.n_users, n_items=train.n_items)
        self.seen = (np.asarray(d.user_indptr, np.int64), np.asarray(d.user_items))
        self.users = chunks(d.user_indptr, d.user_items, d.user_values)
        self.items = chunks(d.item_indptr, d.item_users, d.item_values)
        self.nnz = max(int(d.user_items.shape[0]), 1)
        p = host_init(run.seed, train.n_users, train.n_items, spec.rank, 1, spec.init_scale, 0.0)
        return LogisticMFState(p, 0)

    def put(self, x):
        """A host array on the device."""
        return jnp.asarray(x)

    def step(self, state: LogisticMFState) -> tuple[LogisticMFState, dict]:
        """One sweep."""
        s = self.spec
        params, value = sweep(state.params, self.users, self.items, s.alpha, s.reg,
                              s.bias_reg, cg_steps=s.cg_steps)
        return LogisticMFState(params, state.epoch + 1), {"loss": float(value) / self.nnz}

    def params(self, state: LogisticMFState) -> Params:
        return state.params

    def restore(self, state: LogisticMFState, leaves: list) -> LogisticMFState:
        """The state from a checkpoint's host leaves."""
        return restore_leaves(state, leaves)

    def finalize(self, state, params: Params) -> Params:
        return params

    def posterior(self, state, params):
        return None

    def divergence_hint(self) -> str:
        return (f"try a larger reg (now {self.spec.reg}) or bias_reg (now {self.spec.bias_reg}), "
                f"or a smaller alpha (now {self.spec.alpha})")
