"""Training: any Optax optimizer over shuffled minibatches, one jit per epoch.

Each step takes a minibatch B of ratings and applies the optimizer to the
gradient of the minibatch's slice of the objective (see :mod:`mfjax.core`),

    g = ∇θ ½ Σ_(u,i,r)∈B [(r̂(u,i) − r)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)]
    (updates, state) = optimizer.update(g, state, θ);   θ ← θ + updates

with ``g`` from ``jax.grad(mfjax.loss)`` (``gradient="autodiff"``), from the
hand-written :func:`mfjax.manual_grad` (``gradient="manual"``), from
:func:`mfjax.core.blocked_value_and_grad` (``gradient="blocked"``, the same
numbers per block of a user's ratings) or from :func:`mfjax.fused.value_and_grad`
(``gradient="fused"``, the same numbers again from one C++ pass per minibatch, CPU
only). All of them drive the same jitted step on the same minibatches. Note the
gradient is a *sum* over the batch; Adam-type optimizers are invariant to that
scale, plain SGD is not (its learning rate is per rating, as in Surprise).

Hot path (profiled at the ML-20M shape on a 2-core CPU; see benchmarks/):

- The ratings are sorted once on the host (a radix sort by user, then item,
  that also yields the model's seen-item index) and put on the device once,
  as the grid of :func:`_layout`: each user owns ⌈c_u / n_batches⌉ rows and a
  minibatch takes one slot of every row. So every minibatch is sorted by
  user, has the same shape and the same per-user blocks, and the per-epoch
  reshuffle (a batch order π and an offset o_j per row, drawn with NumPy from
  (seed, epoch)) costs O(rows), not a permutation of all ratings
  (``jax.random.permutation`` of 20M indices costs ~17 s on a 2-core CPU).
  Padding slots hold NaN and carry weight 0.
- An epoch is one jitted ``lax.scan`` over minibatches with donated parameter
  and optimizer buffers, data and parameters passed as arguments. Epochs of
  hashable configurations are cached, so k folds of one shape compile once.
- On one CPU device, from 2^20 ratings on, the gradient comes from the fused C++
  kernel of :mod:`mfjax.fused` (``gradient="fused"``). It makes one pass over the
  sorted grid rows per minibatch, where XLA's gathers and scatters make three to
  five. That is 2.5x the blocked route's epoch at the ML-20M shape
  (benchmarks/RESULTS.md).
- On a GPU the grid is by item (the contended side) and, on jaxlib
  0.10.2-0.11.0, the epoch is compiled with ``xla_gpu_ftz`` so f32 scatter-add
  keeps its native atomic (jax issue 38806).
- ``ensemble``: members of rank k/K trained side by side (a member axis in
  :class:`mfjax.Params`) and averaged into one rank-k model.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import distributed, fused
from .core import Params, blocked_value_and_grad, loss, make_blocks, manual_grad
from .data import Ratings
from .model import Model, _model_indices, _predict_with_fallback, atomic_savez, read_npz

__all__ = ["fit", "make_optimizer", "auto_batch_size", "DEFAULTS", "OPTIMIZERS", "GRADIENTS"]

# Tuned on ML-100K (scripts/train.py and benchmarks/ record the runs).
DEFAULTS = dict(
    rank=128,
    reg=0.1,
    bias_reg=0.01,
    optimizer="adam",
    learning_rate=None,
    epochs=25,
    batch_size=None,
    init_scale=0.1,
    ensemble="auto",
)

#: Optimizer names accepted by ``fit`` -> (factory taking a learning rate or schedule, default lr).
OPTIMIZERS: dict[str, tuple[Callable, float]] = {
    # The gradient sums over the batch, so SGD-family rates shrink with batch size.
    "sgd": (optax.sgd, 1e-4),
    "momentum": (lambda lr: optax.sgd(lr, momentum=0.9), 1e-5),
    "nesterov": (lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True), 1e-5),
    "adam": (optax.adam, 0.01),
    "adamw": (optax.adamw, 0.01),
    "adamax": (optax.adamax, 0.01),
    "nadam": (optax.nadam, 0.01),
    "radam": (optax.radam, 0.01),
    "adabelief": (optax.adabelief, 0.01),
    "yogi": (optax.yogi, 0.01),
    "lamb": (optax.lamb, 0.01),
    "lion": (optax.lion, 0.001),
    "adagrad": (optax.adagrad, 0.1),
    "rmsprop": (optax.rmsprop, 0.001),
}

CHECKPOINT = "mfjax-checkpoint"


def make_optimizer(optimizer="adam", learning_rate=None, schedule=None):
    """An ``optax.GradientTransformation`` from a name or as given.

    Args:
        optimizer: a name in :data:`OPTIMIZERS` or a ``GradientTransformation``.
        learning_rate: the step size; ``None`` takes the name's default.
        schedule: an optax schedule (step -> learning rate) used instead of
            ``learning_rate``; steps count minibatches.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None or schedule is not None:
            raise ValueError("learning_rate/schedule apply to optimizer names only; a "
                             "GradientTransformation already has its step size")
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)} "
                         "or pass an optax.GradientTransformation")
    factory, default_lr = OPTIMIZERS[optimizer]
    if schedule is not None:
        return factory(schedule)
    lr = default_lr if learning_rate is None else learning_rate
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    return factory(lr)


def auto_batch_size(n_ratings: int, n_users: int, n_items: int) -> int:
    """A batch size that keeps per-step overhead small at any data size.

    About 1/20 of the data per step, but never below 1024, and at most 2^20
    (20M ratings -> 2^20) unless that would take more than 64 steps: every
    step also makes one dense optimizer pass over the tables, so very large
    data (Netflix's 100M -> 2^21) gets larger steps, up to 2^22 ratings (a
    step's [batch, k] temporaries stay near 1 GB at rank 64). A power of two.
    """
    cap = min(max(1 << 20, n_ratings // 64), 1 << 22)
    target = max(1024, min(n_ratings // 20, cap))
    return min(1 << int(round(math.log2(target))), max(n_ratings, 1))


#: Gradient routes accepted by ``fit``; all give the same trajectory to float tolerance.
GRADIENTS = ("auto", "fused", "blocked", "autodiff", "manual")

#: ``gradient="auto"`` leaves ``jax.grad`` from this many ratings on, for ``"fused"``
#: (one CPU device) or ``"blocked"``: they compile longer and save most of every epoch.
AUTO_BLOCKED_MIN_RATINGS = 1 << 20

#: Longest per-key block of the ``"blocked"`` route (:func:`mfjax.core.make_blocks`).
MAX_BLOCK = 32


def _resolve_gradient(gradient: str, n_ratings: int, mesh) -> str:
    """The gradient route for ``fit``'s ``gradient=`` (see its docstring).

    ``"auto"``: below :data:`AUTO_BLOCKED_MIN_RATINGS` ratings ``"autodiff"`` (its
    compile is the cheapest, and the epoch is short anyway); above, on one CPU
    device, ``"fused"`` when the kernel is available, else ``"blocked"``.
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"fit: gradient must be one of {GRADIENTS}, got {gradient!r}")
    on_cpu = jax.default_backend() == "cpu" and mesh is None
    if gradient == "auto":
        if n_ratings < AUTO_BLOCKED_MIN_RATINGS:
            return "autodiff"
        return "fused" if on_cpu and fused.available() else "blocked"
    if gradient == "fused":
        if not on_cpu:
            raise ValueError("fit: gradient='fused' runs on a single CPU device only "
                             f"(backend {jax.default_backend()!r}, mesh {distributed.describe(mesh)}); "
                             "use 'blocked' there")
        if not fused.available():
            raise RuntimeError(f"fit: gradient='fused' is not available here: {fused.unavailable_reason()}. "
                               "Use gradient='blocked' (the same numbers through XLA).")
    return gradient


def _grad_fn(gradient: str, reg: float, bias_reg, sort_by: str):
    """(params, batch) -> (loss, grads) for the chosen gradient route.

    ``batch`` is a :class:`_Batch`: the key (user or item, per ``sort_by``) of
    each grid row, the other index, ratings and weights of one minibatch.
    """
    kw = dict(reg=reg, bias_reg=bias_reg)

    def split(b):  # (users, items) of the minibatch
        return (b.keys, b.others) if sort_by == "users" else (b.others, b.keys)

    if gradient == "fused":
        return lambda p, b: fused.value_and_grad(p, b.keys, b.others, b.ratings, b.weights,
                                                 by=sort_by, **kw)
    if gradient == "blocked":
        return lambda p, b: blocked_value_and_grad(p, b.blocks, b.others, b.ratings,
                                                   weights=b.weights, by=sort_by, **kw)
    if gradient == "autodiff":
        vg = jax.value_and_grad(loss)
        return lambda p, b: vg(p, *split(b), b.ratings, weights=b.weights, sorted_by=sort_by, **kw)
    if gradient == "manual":
        return lambda p, b: (
            loss(p, *split(b), b.ratings, weights=b.weights, sorted_by=sort_by, **kw),
            manual_grad(p, *split(b), b.ratings, weights=b.weights, sorted_by=sort_by, **kw),
        )
    raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")


class _Batch(NamedTuple):
    keys: jax.Array      # [R] key of each grid row (sorted; static across batches)
    others: jax.Array    # [R] the other index
    ratings: jax.Array   # [R] (0 on padding)
    weights: jax.Array   # [R] 1, or 0 on padding
    blocks: tuple        # make_blocks(keys): ((block_keys, positions), ...)


class _Grid(NamedTuple):
    """The training data on the device, as the [R, n_batches] grid of :func:`_layout`."""

    keys: jax.Array      # [R] int32, key of each row
    others: jax.Array    # [R * n_batches] int32
    ratings: jax.Array   # [R * n_batches] float32, NaN marks padding
    blocks: tuple


def _resolve_sort_by(sort_by: str, train: Ratings, n_batches: int, gradient: str = "blocked") -> str:
    """The key the grid is sorted and padded by (see :func:`_layout`).

    ``"auto"``: users on a CPU (the bigger table: its rows then move once per
    block instead of once per rating), items on a GPU (their popular rows take
    the most updates per batch; blocks sum those densely instead of with
    contended f32 atomics). The other key is taken when the preferred one
    would pad the grid by over 25% (many users with fewer ratings than
    ``n_batches``) and it pads less. The ``"fused"`` kernel skips padding
    almost for free but keeps a private copy of the other side's table per
    thread and reads it at random, so for it the key is simply the side with
    more rows.
    """
    if sort_by not in ("auto", "users", "items"):
        raise ValueError(f"fit: sort_by must be 'auto', 'users' or 'items', got {sort_by!r}")
    if sort_by != "auto":
        return sort_by
    if gradient == "fused":
        return "users" if train.n_users >= train.n_items else "items"
    pref, other = ("items", "users") if jax.default_backend() == "gpu" else ("users", "items")
    pad = {k: _padding(train, k, n_batches) for k in (pref, other)}
    return other if pad[pref] > 0.25 and pad[other] < pad[pref] else pref


def _rows_per_key(train: Ratings, sort_by: str, n_batches: int) -> np.ndarray:
    keys = train.users if sort_by == "users" else train.items
    n_keys = train.n_users if sort_by == "users" else train.n_items
    return -(-np.bincount(keys, minlength=n_keys) // n_batches)


def _padding(train: Ratings, sort_by: str, n_batches: int) -> float:
    """Share of the grid's slots that are padding."""
    slots = int(_rows_per_key(train, sort_by, n_batches).sum()) * n_batches
    return 1.0 - len(train) / slots


def _radix_order(*keys: np.ndarray) -> np.ndarray:
    """The permutation sorting by ``keys[0]``, ties by ``keys[1]``, ... (ints in [0, 2^31)).

    Stable LSD radix sort, 16 bits per pass (NumPy's stable argsort of uint16
    is a counting sort): for 20M ratings by (user, item) ~3 s, against ~6 s
    for ``np.lexsort``.
    """
    order = None
    for k in reversed(keys):  # least significant key first
        for shift in (0, 16):
            if shift and not (int(k.max(initial=0)) >> 16):
                break
            kk = k if order is None else k[order]
            digit = ((kk >> shift) & 0xFFFF).astype(np.uint16)
            del kk
            step = np.argsort(digit, kind="stable")
            order = step if order is None else order[step]
    return np.arange(0) if order is None else order


def _seen_from_order(train: Ratings, order: np.ndarray):
    """``mfjax.model.seen_index(train)`` from an order sorted by (user, item): same arrays."""
    indptr = np.zeros(train.n_users + 1, np.int64)
    np.cumsum(np.bincount(train.users, minlength=train.n_users), out=indptr[1:])
    return indptr, train.items[order].astype(np.int32)


#: The grid's row count is rounded up to a multiple of this (with all-padding
#: rows of the last key), so fits on similar data (k folds, say) share shapes
#: and reuse one compiled epoch.
ROW_QUANTUM = 128


def _grid_shape(train: Ratings, sort_by: str, n_batches: int) -> tuple[int, int]:
    """(rows, n_batches) of :func:`_layout`'s grid, without building it."""
    rows = int(_rows_per_key(train, sort_by, n_batches).sum())
    return rows + (-rows % ROW_QUANTUM), n_batches


def _layout(train: Ratings, sort_by: str, n_batches: int, order: np.ndarray,
            blocks: bool = True) -> _Grid:
    """The training data on the device, sorted and padded once on the host.

    ``order`` sorts the ratings by key (``sort_by``), then by the other index.
    Each key u (a user when ``sort_by="users"``) with c_u ratings gets
    m_u = ⌈c_u / n_batches⌉ rows of a grid with ``n_batches`` columns; its
    ratings fill them row by row and the last row's leftover slots are
    padding (rating NaN, weight 0). Rows are in key order.
    :func:`_make_epoch` builds batch b from one slot of every row (column
    ``(π(b) + o_j) mod n_batches`` of row j, with a fresh random offset o_j
    per row and batch order π per epoch), so:

    - every minibatch holds m_u slots of key u (~1/n_batches of its
      ratings, a stratified sample), in the same R = Σ m_u positions, sorted
      by key: gathers read the key's table in order, scatter-adds are sorted,
      and the ``"blocked"`` route's blocks (:func:`mfjax.core.make_blocks`
      of the row keys) are the same for every batch;
    - every rating is in exactly one batch per epoch, and the per-epoch remix
      costs O(R) random numbers instead of a permutation of all ratings
      (``jax.random.permutation`` of 20M indices takes ~17 s on a 2-core CPU).

    On a GPU sorted scatters also keep XLA's f32 scatter-add off contended
    atomics, which jaxlib 0.10.2-0.11.0 compiles into a slow compare-and-swap
    loop (jax issue 38806).

    ``blocks=False`` leaves the blocks out (only the ``"blocked"`` route needs
    them, and their shapes would tie the compiled epoch to this data).
    """
    n = len(train)
    keys, others = ((train.users, train.items) if sort_by == "users" else (train.items, train.users))
    counts = np.bincount(keys, minlength=train.n_users if sort_by == "users" else train.n_items)
    rows = -(-counts // n_batches)
    rows[-1] += -int(rows.sum()) % ROW_QUANTUM  # all-padding rows, still in key order
    row_start = np.cumsum(rows) - rows
    group_start = np.cumsum(counts) - counts
    n_slots = int(rows.sum()) * n_batches
    grid_others = np.zeros(n_slots, np.int32)
    grid_ratings = np.full(n_slots, np.nan, np.float32)
    chunk = 1 << 22  # bounds the int64 temporaries
    for lo in range(0, n, chunk):
        sel = order[lo:lo + chunk]
        k = keys[sel]
        # The j-th rating of key k goes to slot j of k's rows.
        slot = row_start[k] * n_batches + (np.arange(lo, lo + len(sel)) - group_start[k])
        grid_others[slot] = others[sel]
        grid_ratings[slot] = train.ratings[sel]
    row_keys = np.repeat(np.arange(len(rows), dtype=np.int32), rows)
    blocks = tuple((jnp.asarray(k), jnp.asarray(p)) for k, p in make_blocks(row_keys, MAX_BLOCK)) \
        if blocks else ()
    return _Grid(jnp.asarray(row_keys), jnp.asarray(grid_others), jnp.asarray(grid_ratings), blocks)


#: jaxlib versions whose GPU f32 scatter-add is a compare-and-swap loop (jax issue 38806).
SCATTER_CAS_JAXLIB = ((0, 10, 2), (0, 11, 0))


def _jaxlib_version() -> tuple[int, ...]:
    import jaxlib

    return tuple(int(x) for x in jaxlib.__version__.split(".")[:3] if x.isdigit())


def scatter_add_is_slow() -> bool:
    """Whether this jaxlib compiles GPU f32 scatter-add to a CAS loop (jax issue 38806).

    jaxlib 0.10.2 to 0.11.0 ship an LLVM that lowers the float atomic add of a
    scatter to a compare-and-swap retry loop unless the kernel flushes
    denormals, catastrophic when many updates hit one row (a popular item).
    """
    lo, hi = SCATTER_CAS_JAXLIB
    return lo <= _jaxlib_version() <= hi


def _compiler_options() -> dict | None:
    """XLA options for the epoch: on an affected GPU, flush denormals (``xla_gpu_ftz``).

    With flushing kernels LLVM keeps the native ``atom.add.f32`` (which
    flushes anyway) instead of the CAS loop; MF training does not notice
    denormal gradients going to zero.
    """
    if jax.default_backend() == "gpu" and scatter_add_is_slow():
        return {"xla_gpu_ftz": True}
    return None


@functools.lru_cache(maxsize=8)
def _cached_epoch(optimizer: str, learning_rate, gradient: str, reg: float, bias_reg,
                  sort_by: str, n_rows: int, n_batches: int):
    """The optimizer and jitted epoch for a hashable configuration.

    Reusing the jitted function lets JAX reuse its compiled executable when
    the shapes repeat (k-fold cross-validation, a second fit), saving the
    ~0.8 s compile of a small problem.
    """
    opt = make_optimizer(optimizer, learning_rate)
    return opt, _make_epoch(opt, _grad_fn(gradient, reg, bias_reg, sort_by), n_rows, n_batches)


@functools.lru_cache(maxsize=8)
def _opt_init(opt):
    """``opt.init`` as one compiled program (eagerly it is a compile per leaf shape)."""
    return jax.jit(opt.init)


def _host_init(seed: int, n_users: int, n_items: int, rank: int, members: int,
               init_scale: float, mean: float) -> Params:
    """Initial member parameters, drawn with NumPy on the host.

    Factors i.i.d. N(0, init_scale²), biases 0, μ the training mean (as
    :func:`mfjax.init_params`). A host draw needs no compiled program: the
    threefry kernels of ``jax.random`` take ~0.5 s to compile, a third of a
    small fit.
    """
    rng = np.random.default_rng([seed, 0])
    shape = lambda n: (n, rank) if members == 1 else (n, members, rank // members)
    bias = lambda n: np.zeros((n,) if members == 1 else (n, members), np.float32)
    factors = lambda n: (init_scale * rng.standard_normal(shape(n), dtype=np.float32)).astype(np.float32)
    mu = np.full(() if members == 1 else (members,), mean, np.float32)
    return Params(*(jnp.asarray(x) for x in (factors(n_users), factors(n_items), bias(n_users),
                                              bias(n_items), mu)))


def _remix(seed: int, epoch: int, n_rows: int, n_batches: int):
    """An epoch's batch order π [n_batches] and row offsets o [n_rows], from the host.

    Drawn with NumPy from (seed, epoch) alone, so a resumed run repeats them,
    and without a random-number program to compile into the epoch.
    """
    rng = np.random.default_rng([seed, 1, epoch])
    return (rng.permutation(n_batches).astype(np.int32),
            rng.integers(0, n_batches, n_rows, dtype=np.int32))


def _make_epoch(opt, grad_fn, n_rows: int, n_batches: int):
    """The jitted epoch: params, opt_state, grid, order, offsets -> params, opt_state, loss sum.

    Batch ``order[t]`` is step t; row j gives it its slot
    ``(order[t] + offsets[j]) mod n_batches`` (see :func:`_layout`). Data and
    parameters are arguments, not closed-over constants, so one compiled
    epoch serves every call (and can later be sharded).
    """

    def epoch(params, opt_state, grid: _Grid, order, offsets):
        rows = jnp.arange(n_rows, dtype=jnp.int32) * n_batches

        def step(carry, b):
            params, opt_state = carry
            idx = rows + (b + offsets) % n_batches
            r = grid.ratings[idx]
            real = ~jnp.isnan(r)  # padding has weight 0
            batch = _Batch(grid.keys, grid.others[idx], jnp.where(real, r, 0.0),
                           real.astype(r.dtype), grid.blocks)
            value, grads = grad_fn(params, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.sum(losses)

    options = _compiler_options()
    if options:
        return jax.jit(epoch, donate_argnums=(0, 1), compiler_options=options)
    return jax.jit(epoch, donate_argnums=(0, 1))


@jax.jit
def _sq_abs_err(params, u, i, r, lo, hi):
    """Sums of squared and absolute clipped errors, in chunks to bound memory."""
    chunk = 1 << 16
    pad = (-u.shape[0]) % chunk
    valid = jnp.pad(jnp.ones(u.shape, r.dtype), (0, pad)).reshape(-1, chunk)
    u, i, r = (jnp.pad(x, (0, pad)).reshape(-1, chunk) for x in (u, i, r))

    def body(acc, x):
        uu, ii, rr, vv = x
        e = jnp.clip(_predict_with_fallback(params, uu, ii), lo, hi) - rr
        return (acc[0] + jnp.sum(vv * e * e), acc[1] + jnp.sum(vv * jnp.abs(e))), None

    zero = jnp.zeros((), r.dtype)
    (sq, ab), _ = jax.lax.scan(body, (zero, zero), (u, i, r, valid))
    return sq, ab


#: Members of the ``ensemble="auto"`` setting have at least this rank.
MIN_MEMBER_RANK = 8
MAX_MEMBERS = 16

def _n_members(rank: int, ensemble) -> int:
    """``ensemble="auto"``: as many members as keeps each at rank >= 8, at most 16."""
    if ensemble == "auto":
        cap = max(1, min(MAX_MEMBERS, rank // MIN_MEMBER_RANK))
        return max(d for d in range(1, cap + 1) if rank % d == 0)
    if not isinstance(ensemble, (int, np.integer)) or ensemble < 1 or rank % ensemble:
        raise ValueError(f"fit: ensemble must be 'auto' or a positive divisor of rank={rank}, "
                         f"got {ensemble!r}")
    return int(ensemble)


def _split_members(p: Params, members: int) -> Params:
    """A plain rank-k model's init as ``members`` models of rank k/members.

    One member keeps the plain layout (a unit member axis makes XLA's CPU
    gathers ~3x slower).
    """
    if members == 1:
        return p
    nu, ni = p.n_users, p.n_items
    return Params(
        user_factors=p.user_factors.reshape(nu, members, -1),
        item_factors=p.item_factors.reshape(ni, members, -1),
        user_bias=jnp.repeat(p.user_bias[:, None], members, axis=1),
        item_bias=jnp.repeat(p.item_bias[:, None], members, axis=1),
        global_bias=jnp.repeat(p.global_bias[None], members),
    )


def _combine(p: Params) -> Params:
    """The members as one plain model whose prediction is their average.

    ``(1/K) Σ_j (μ_j + b_uj + b_ij + <p_uj, q_ij>) = μ̄ + b̄_u + b̄_i + <P_u, Q_i>``
    with ``P_u = [p_u1, ..., p_uK] / √K`` (and Q alike): exact, and the same
    size as a single rank-k model. Plain parameters come back as they are.
    """
    return p if p.global_bias.ndim == 0 else _combine_members(p)


@jax.jit
def _combine_members(p: Params) -> Params:
    members = p.global_bias.shape[0]
    scale = 1.0 / math.sqrt(members)
    return Params(
        user_factors=p.user_factors.reshape(p.user_factors.shape[0], -1) * scale,
        item_factors=p.item_factors.reshape(p.item_factors.shape[0], -1) * scale,
        user_bias=jnp.mean(p.user_bias, axis=1),
        item_bias=jnp.mean(p.item_bias, axis=1),
        global_bias=jnp.mean(p.global_bias),
    )


@dataclasses.dataclass
class _Best:
    rmse: float = math.inf
    epoch: int = 0
    bad_epochs: int = 0
    params: dict | None = None  # host copies of the best params


def fit(
    train: Ratings,
    *,
    rank: int = DEFAULTS["rank"],
    reg: float = DEFAULTS["reg"],
    bias_reg: float | None = DEFAULTS["bias_reg"],
    optimizer="adam",
    learning_rate: float | None = DEFAULTS["learning_rate"],
    epochs: int = DEFAULTS["epochs"],
    batch_size: int | None = DEFAULTS["batch_size"],
    seed: int = 0,
    gradient: str = "auto",
    sort_by: str = "auto",
    validation: Ratings | None = None,
    patience: int | None = None,
    schedule=None,
    init_scale: float = DEFAULTS["init_scale"],
    ensemble=DEFAULTS["ensemble"],
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    mesh=None,
    table_sharding: str = "auto",
) -> Model:
    """Train a biased MF model on ``train`` with an Optax optimizer.

    Args:
        train: the training ratings.
        rank: number of latent factors k.
        reg: λ, L2 weight on factors (per rating, see :func:`mfjax.loss`).
        bias_reg: λ_b, L2 weight on biases; ``None`` means ``reg``.
        optimizer: a name in :data:`OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size for a named optimizer; ``None`` = its default.
        epochs: passes over the data.
        batch_size: ratings per step (the data makes ``ceil(n / batch_size)``
            minibatches); ``None`` = :func:`auto_batch_size`.
        seed: seeds the initialization and every shuffle; the same seed gives
            the same result on the same backend.
        gradient: ``"autodiff"`` (``jax.grad(mfjax.loss)``), ``"manual"``
            (:func:`mfjax.manual_grad`), ``"blocked"``
            (:func:`mfjax.core.blocked_value_and_grad`, XLA's fastest route at
            scale, but ~1.5 s more to compile) or ``"fused"``
            (:func:`mfjax.fused.value_and_grad`, a C++ kernel compiled on first
            use; single CPU device only; 2.5x the blocked route's speed at the
            ML-20M shape). All give the same minibatches and, to float
            tolerance, the same trajectory. ``"auto"``: autodiff below 2^20
            ratings. From 2^20 on, fused on one CPU device when the kernel is
            available, otherwise blocked.
        sort_by: the key the ratings are grouped by: ``"users"``, ``"items"``,
            or ``"auto"`` (users on a CPU, items on a GPU). It changes speed,
            not the objective; see :func:`_layout`.
        validation: ratings scored after every epoch (RMSE/MAE in the history).
        patience: stop after this many epochs without a better validation RMSE
            and keep the best parameters (needs ``validation``).
        schedule: an optax schedule replacing ``learning_rate`` (steps = minibatches).
        init_scale: standard deviation of the initial factors.
        ensemble: train this many independently initialized models of rank
            ``rank / ensemble`` side by side on the same minibatches and
            return their average, which is itself one rank-``rank`` model
            (factors concatenated and scaled by 1/√ensemble, biases averaged),
            so predict, save and recommend are unchanged. Averaging removes
            much of a single fit's variance (ML-100K, 5 folds: one rank-128
            model 0.910 RMSE, 16 averaged rank-8 members 0.904) at the cost of
            one rank-``rank`` model. ``"auto"``: members of rank >= 8, at most
            16 (rank 128 -> 16 x 8, rank 64 -> 8 x 8, rank 8 -> 1). With
            ``ensemble=1`` this is plain MF.
        checkpoint_dir: write ``checkpoint.npz`` here every ``checkpoint_every``
            epochs (params, optimizer state, RNG key, epoch, history), atomically.
        resume: continue from ``checkpoint_dir``'s checkpoint if there is one.
            The run then ends with the same parameters as an uninterrupted one.
        progress: show a tqdm bar with the loss and validation RMSE.
        callbacks: called as ``cb(epoch, metrics, params)`` after each epoch
            (after its checkpoint); an exception stops training.
        mesh: ``None`` (one device), ``"auto"`` (every device; see
            :func:`mfjax.distributed.resolve_mesh`) or a ``jax.sharding.Mesh``
            with axes ``("data", "model")`` (:func:`mfjax.distributed.make_mesh`).
            Each minibatch is split over ``data``; the result matches
            single-device training to float tolerance for the same seed.
        table_sharding: ``"replicated"`` tables on every device, ``"sharded"``
            rows split over ``model``, or ``"auto"`` (sharded when the mesh's
            model axis is larger than 1).

    Returns:
        A :class:`mfjax.Model`. ``model.history`` has one dict per epoch:
        ``epoch``, ``loss`` (objective per rating), ``val_rmse``, ``val_mae``, ``seconds``.

    Raises:
        ValueError: on bad arguments or empty data.
        FloatingPointError: when the loss becomes non-finite (names the epoch).
    """
    if not isinstance(train, Ratings):
        raise TypeError(f"train must be an mfjax.Ratings, got {type(train).__name__}")
    n = len(train)
    if n == 0:
        raise ValueError("fit: the training set is empty")
    for name, v in (("rank", rank), ("epochs", epochs), ("checkpoint_every", checkpoint_every)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"fit: {name} must be a positive integer, got {v!r}")
    for name, v in (("reg", reg), ("bias_reg", 0.0 if bias_reg is None else bias_reg)):
        if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
            raise ValueError(f"fit: {name} must be a non-negative number, got {v!r}")
    if patience is not None and (validation is None or patience < 1):
        raise ValueError("fit: patience needs a validation set and must be >= 1")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    if batch_size is None:
        batch_size = auto_batch_size(n, train.n_users, train.n_items)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(min(batch_size, n))
    n_batches = -(-n // batch_size)
    opt = make_optimizer(optimizer, learning_rate, schedule)
    members = _n_members(int(rank), ensemble)
    if table_sharding not in ("auto", "replicated", "sharded"):
        raise ValueError(f"fit: table_sharding must be 'auto', 'replicated' or 'sharded', "
                         f"got {table_sharding!r}")
    mesh = distributed.resolve_mesh(mesh, train.n_users, train.n_items, int(rank))
    gradient = _resolve_gradient(gradient, n, mesh)
    sort_by = _resolve_sort_by(sort_by, train, n_batches, gradient)
    # The routes take the member axis as is (see mfjax.Params): the members'
    # objectives add and their gradients do not mix.
    grad_fn = _grad_fn(gradient, reg, bias_reg, sort_by)

    config = dict(
        rank=int(rank), reg=float(reg), bias_reg=bias_reg,
        optimizer=optimizer if isinstance(optimizer, str) else repr(optimizer),
        learning_rate=(OPTIMIZERS[optimizer][1] if isinstance(optimizer, str) and learning_rate is None
                       and schedule is None else learning_rate),
        schedule=None if schedule is None else repr(schedule),
        epochs=int(epochs), batch_size=batch_size, seed=int(seed), gradient=gradient,
        sort_by=sort_by, ensemble=members,
        init_scale=float(init_scale), patience=patience,
        n_ratings=n, n_users=train.n_users, n_items=train.n_items,
        mesh=distributed.describe(mesh),
    )

    run_epoch = None
    if isinstance(optimizer, str) and schedule is None:  # hashable: reuse compiled programs
        opt, run_epoch = _cached_epoch(optimizer, learning_rate, gradient, float(reg), bias_reg,
                                       sort_by, *_grid_shape(train, sort_by, n_batches))
    params = _host_init(seed, train.n_users, train.n_items, int(rank), members, float(init_scale),
                        float(train.mean))
    opt_state = _opt_init(opt)(params)
    # One host sort serves the training grid and the model's seen-item index.
    order = _radix_order(train.users, train.items) if sort_by == "users" else \
        _radix_order(train.items, train.users)
    grid = _layout(train, sort_by, n_batches, order, blocks=gradient == "blocked")
    if sort_by != "users":
        order = _radix_order(train.users, train.items)
    indptr, seen = _seen_from_order(train, order)
    del order
    model = Model(None, train.user_ids, train.item_ids, train.rating_range, config, [],
                  indptr, seen)
    n_rows = int(grid.keys.shape[0])
    assert (n_rows, n_batches) == _grid_shape(train, sort_by, n_batches)
    config["batch_slots"] = n_rows
    config["padding"] = round(1.0 - n / (n_rows * n_batches), 6)
    val = None
    if validation is not None:
        vu, vi = _model_indices(model, validation)
        val = (vu, vi, validation.ratings, len(validation))
    place, n_real_rows = None, n_rows
    if mesh is not None:
        shard = table_sharding == "sharded" or (table_sharding == "auto"
                                                and mesh.shape[distributed.MODEL] > 1)
        config["table_sharding"] = "sharded" if shard else "replicated"
        place = distributed.Placement(mesh, train.n_users, train.n_items, shard)
        grid = _place_grid(grid, n_batches, place)
        n_rows = int(grid.keys.shape[0])
        config["mesh_padding_rows"] = n_rows - n_real_rows
        params = place.put_tree(place.pad_params(params))
        opt_state = place.put_tree(_opt_init(opt)(params))
        run_epoch = _make_epoch(opt, grad_fn, n_rows, n_batches)  # the padded grid's shape
    put = jnp.asarray if place is None else place.put_replicated
    if val is not None:
        val = tuple(put(x) for x in val[:3]) + (val[3],)
    lo, hi = train.rating_range

    start, history, best = 0, [], _Best()
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir),
                                                                   "checkpoint.npz")
    if resume and os.path.exists(ckpt_path):
        params, opt_state, start, history, best = _load_checkpoint(ckpt_path, config, params,
                                                                   opt_state)
        if place is not None:
            params, opt_state = place.put_tree(params), place.put_tree(opt_state)
    if run_epoch is None:
        run_epoch = _make_epoch(opt, grad_fn, n_rows, n_batches)

    bar = _progress(range(start, epochs), progress, start, epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        order, offsets = _remix(seed, epoch, n_real_rows, n_batches)
        if n_rows > n_real_rows:
            offsets = np.pad(offsets, (0, n_rows - n_real_rows))  # mesh padding rows
        params, opt_state, total = run_epoch(params, opt_state, grid, put(order), put(offsets))
        epoch_loss = float(total) / (n * members)  # per rating, averaged over members
        if not math.isfinite(epoch_loss):
            where = f"; the last good checkpoint is {ckpt_path}" if ckpt_path and history else ""
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1}: the loss is {epoch_loss}. "
                f"Try a smaller learning_rate (now {config['learning_rate']}){where}")
        row = {"epoch": epoch + 1, "loss": epoch_loss}
        combined = _combine(params)
        if val is not None:
            sq, ab = _sq_abs_err(combined, val[0], val[1], val[2], lo, hi)
            row["val_rmse"] = math.sqrt(float(sq) / val[3])
            row["val_mae"] = float(ab) / val[3]
            if row["val_rmse"] < best.rmse:
                best = _Best(row["val_rmse"], epoch + 1, 0,
                             {k: np.array(v) for k, v in
                              distributed.to_host(combined)._asdict().items()})
            else:
                best.bad_epochs += 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", "val_rmse")})
        if ckpt_path and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
            state = distributed.to_host((params, opt_state))  # a collective on several hosts
            if jax.process_index() == 0:
                _save_checkpoint(ckpt_path, config, *state, epoch + 1, history, best)
        for cb in callbacks:
            cb(epoch + 1, dict(row), combined)
        del combined
        if patience is not None and best.bad_epochs >= patience:
            break
    if hasattr(bar, "close"):
        bar.close()

    if patience is not None and best.params is not None:
        params = Params(**{k: jnp.asarray(v) for k, v in best.params.items()})
        config["best_epoch"] = best.epoch
    else:
        params = _combine(params)
    if place is not None:
        params = place.unpad_params(jax.tree.map(jnp.asarray, distributed.to_host(params)))
    model.params = params
    model.history = history
    return model


def _place_grid(grid: _Grid, n_batches: int, place: distributed.Placement) -> _Grid:
    """Pad the grid to a multiple of the data axis in rows and split it over the mesh.

    Padding rows repeat the last key (the rows stay sorted) and hold only NaN
    ratings (weight 0); the epoch gives them offset 0, and the real rows get
    the same offsets as on one device, so the minibatches are unchanged.
    """
    keys, others, ratings = (np.asarray(x) for x in grid[:3])
    pad = -len(keys) % place.data_size
    if pad:
        keys = np.concatenate([keys, np.full(pad, keys[-1], keys.dtype)])
        others = np.concatenate([others, np.zeros(pad * n_batches, others.dtype)])
        ratings = np.concatenate([ratings, np.full(pad * n_batches, np.nan, ratings.dtype)])
    blocks = tuple((place.put_replicated(k), place.put_replicated(p))
                   for k, p in make_blocks(keys, MAX_BLOCK)) if grid.blocks else ()
    return _Grid(place.put_data(keys), place.put_data(others), place.put_data(ratings), blocks)


def _progress(it, progress: bool, start: int, total: int):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=start, total=total, unit="epoch", desc="fit")


_COMPAT_KEYS = ("rank", "n_ratings", "n_users", "n_items", "batch_size", "optimizer", "gradient",
                "seed", "reg", "bias_reg", "sort_by", "ensemble")


def _save_checkpoint(path, config, params, opt_state, epoch, history, best: _Best):
    arrays = {f"params/{k}": np.asarray(v) for k, v in params._asdict().items()}
    for j, leaf in enumerate(jax.tree.leaves(opt_state)):
        arrays[f"opt/{j}"] = np.asarray(leaf)
    if best.params is not None:
        arrays.update({f"best/{k}": v for k, v in best.params.items()})
    meta = {"format": CHECKPOINT, "epoch": epoch, "history": history, "config": config,
            "best": {"rmse": best.rmse if math.isfinite(best.rmse) else None,
                     "epoch": best.epoch, "bad_epochs": best.bad_epochs}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_savez(path, arrays)


def _load_checkpoint(path, config, params, opt_state):
    meta, arrays = read_npz(path, CHECKPOINT)
    old = meta.get("config", {})
    diff = {k: (old.get(k), config[k]) for k in _COMPAT_KEYS if old.get(k) != config[k]}
    if diff:
        raise ValueError(f"cannot resume from {path}: the run differs in {diff} "
                         "(checkpoint value, this call's value)")
    try:
        params = Params(**{k: jnp.asarray(arrays[f"params/{k}"]) for k in Params._fields})
        leaves, treedef = jax.tree.flatten(opt_state)
        opt_state = jax.tree.unflatten(
            treedef, [jnp.asarray(arrays[f"opt/{j}"]) for j in range(len(leaves))])
    except KeyError as e:
        raise ValueError(f"{path}: checkpoint is missing {e}") from None
    b = meta.get("best", {})
    best_params = ({k: arrays[f"best/{k}"] for k in Params._fields}
                   if f"best/{Params._fields[0]}" in arrays else None)
    best = _Best(b.get("rmse") if b.get("rmse") is not None else math.inf, b.get("epoch", 0),
                 b.get("bad_epochs", 0), best_params)
    return params, opt_state, int(meta["epoch"]), list(meta.get("history", [])), best
