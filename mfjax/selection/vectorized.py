"""Trials that differ only in continuous hyperparameters, trained as ONE vmapped program.

Two specs whose fields differ only in :data:`CONTINUOUS` (``reg``, ``bias_reg``,
``alpha``, ``unobserved_weight``, ``nu``, ``learning_rate``) lay out the same data
in the same shapes and start from the same factors (same seed, rank and
``init_scale``): only traced scalars differ. :func:`train_group` stacks T such trials
on a leading axis and runs each sweep of all of them as one ``jax.vmap``-ed
XLA program: the hyperparameters are [T] arrays, the factor tables [T, n, k].

On the CPU backend the trial axis of a step that factors matrices (the exact iALS
solves, the ALS half-steps) is a ``lax.map`` rather than a ``vmap``: vmapping turns the
row factorizations into batched LAPACK calls, and jaxlib 0.10's batched CPU LAPACK
kernels block their pool thread on tasks of the same pool, so two of them at once (the
two branches of the pivot retry, which vmap turns into a select) hung a 16-trial
ML-1M search forever. Trials then run one after another inside the program, each the
same computation as its own fit.

Routes (:func:`route_of`):

- :class:`mfjax.ImplicitALS` (``solver="als"``): the XLA half-steps of
  :mod:`mfjax.solvers.ials.steps` on the shared padded layout, exact
  (``cg_steps=0``: :func:`~mfjax.solvers.ials.steps.half_step_exact`) or CG
  (:func:`~mfjax.solvers.ials.steps.half_step_cg`, then one exact user re-solve),
  the same sweeps as ``fit`` with ``kernel=False``. Where ``fit`` would use the C++
  kernel (``kernel`` resolved True) the vectorized trial runs XLA instead and the
  result says so (``route``); the outputs agree to float tolerance.
- :class:`mfjax.ALS`: :func:`mfjax.solvers.als.solver.als_step` (XLA) vmapped over
  ``reg``/``bias_reg``.
- Everything else (:class:`mfjax.MF`, :class:`mfjax.BayesianMF`, :class:`mfjax.BPR`,
  ImplicitALS with ``solver="optax"``) is not vectorized: :func:`route_of` says why and
  :func:`mfjax.search` runs those trials as sequential ``fit`` calls, saying so.

Memory is bounded: a group is cut into batches of at most
``budget // bytes_per_trial`` trials (:func:`trial_bytes`, :data:`MEMORY_BUDGET_BYTES`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax import lax

from ..data import Ratings, interactions
from ..objectives.explicit import Params

__all__ = ["CONTINUOUS", "MEMORY_BUDGET_BYTES", "VECTOR_ROUTE", "shape_key", "route_of",
           "trial_bytes", "train_group"]

#: Spec fields that may differ within one vectorized group (traced values).
CONTINUOUS = ("reg", "bias_reg", "alpha", "unobserved_weight", "nu", "learning_rate")
#: Device memory one vectorized batch may take (factor tables and sweep temporaries).
MEMORY_BUDGET_BYTES = 2 << 30
#: The ``route`` of a vectorized trial.
VECTOR_ROUTE = "vectorized (XLA, vmap over trials)"

_IALS_HP = ("alpha", "unobserved_weight", "reg", "nu")


def shape_key(spec) -> tuple:
    """What must be equal for two trials to share a vectorized program: the spec class
    and every field outside :data:`CONTINUOUS` (rank, epochs, solver, init_scale, ...)."""
    return (type(spec).__name__,) + tuple(
        (f, repr(getattr(spec, f))) for f in spec.field_names() if f not in CONTINUOUS)


def route_of(spec) -> tuple[bool, str]:
    """``(vectorized, why)`` for a resolved spec: whether :func:`train_group` takes it."""
    name = type(spec).__name__
    mapped = ("; its factorizations one trial at a time on a CPU (lax.map)"
              if jax.default_backend() == "cpu" else "")
    if name == "ImplicitALS" and spec.solver == "als":
        how = f"CG, {spec.cg_steps} steps" if spec.cg_steps else "exact"
        why = f"{VECTOR_ROUTE}, {how} half-steps"
        return True, why + (" instead of fit's C++ kernel" if spec.kernel else "") + mapped
    if name == "ALS":
        return True, (VECTOR_ROUTE + (" instead of fit's C++ kernel" if spec.kernel else "")
                      + mapped)
    return False, (f"sequential fit: {name}"
                   + (f"(solver={spec.solver!r})" if name == "ImplicitALS" else "")
                   + " has no vectorized route (ImplicitALS(solver='als') and ALS do)")


def trial_bytes(spec, train: Ratings, itemsize: int) -> int:
    """Device bytes one trial adds to a vectorized batch (tables and sweep temporaries)."""
    k = spec.rank
    n = train.n_users + train.n_items
    if type(spec).__name__ == "ImplicitALS":
        n_pad = 2 * max(train.n_users, train.n_items)
        return itemsize * (6 * n_pad * k + 4 * 256 * k * k + 6 * 2048 * k + 1024)
    from ..solvers.als.solver import ROWS_PER_CHUNK
    from ..solvers.als.sweep import default_window

    d = k + 1
    window = default_window(k, itemsize=itemsize)
    return itemsize * (6 * n * d + 3 * ROWS_PER_CHUNK * d * d + 2 * window * d * d)


def train_group(train: Ratings, group: list, run, *, budget: int = MEMORY_BUDGET_BYTES,
                on_batch=None) -> list:
    """Train resolved specs that share :func:`shape_key`, as few vmapped batches.

    Args:
        train: the training data.
        group: resolved specs (:func:`mfjax.training.config.resolve`), one
            :func:`shape_key`, all with :func:`route_of` vectorized.
        run: the :class:`mfjax.training.config.Run` (seed, dtype).
        budget: bytes per batch (:func:`trial_bytes`).
        on_batch: called with the number of trials after each batch (progress).

    Returns:
        One ``(params, history)`` per spec, in order: ``params`` the trial's
        :class:`mfjax.Params` (on the device), ``history`` its per-sweep ``loss``.
        A trial whose loss became non-finite returns ``params`` None.
    """
    spec = group[0]
    if len({shape_key(s) for s in group}) != 1:
        raise ValueError("train_group: the specs differ in a shape-determining field")
    itemsize = np.dtype(run.dtype).itemsize
    per_batch = max(1, budget // max(1, trial_bytes(spec, train, itemsize)))
    train_batch = _ials_batch if type(spec).__name__ == "ImplicitALS" else _als_batch
    out = []
    for s in range(0, len(group), per_batch):
        batch = group[s:s + per_batch]
        out.extend(train_batch(train, batch, run))
        if on_batch is not None:
            on_batch(len(batch))
    return out


def _split(P, Q, bu, bi, mu, losses, n_users, n_items) -> list:
    """Per-trial ``(Params, history)`` from stacked host-side results."""
    losses = np.asarray(losses, np.float64)  # [epochs, T]
    out = []
    for t in range(losses.shape[1]):
        history = [{"epoch": e + 1, "loss": float(v)} for e, v in enumerate(losses[:, t])]
        if not np.isfinite(losses[:, t]).all():
            out.append((None, history))
            continue
        params = Params(P[t, :n_users], Q[t, :n_items], bu if bu.ndim == 1 else bu[t],
                        bi if bi.ndim == 1 else bi[t], mu if mu.ndim == 0 else mu[t])
        out.append((params, history))
    return out


# ------------------------------------------------------------------ implicit ALS


def over_trials(f, in_axes, cpu: bool):
    """``f`` mapped over the leading trial axis of its arguments (``in_axes`` 0, or None
    for an argument shared by every trial): ``jax.vmap``, or on the CPU backend a
    ``lax.map`` (one trial at a time: no batched LAPACK call, module docstring)."""
    if not cpu:
        return jax.vmap(f, in_axes=in_axes)

    def mapped(*args):
        stacked = tuple(a for a, ax in zip(args, in_axes) if ax is not None)

        def one(xs):
            it = iter(xs)
            return f(*(next(it) if ax is not None else a for a, ax in zip(args, in_axes)))

        return lax.map(one, stacked)

    return mapped


@functools.lru_cache(maxsize=None)
def _ials_programs(cg_steps: int, chunks: tuple, cpu: bool):
    from ..solvers.ials.steps import cpu_jit, half_step_cg, half_step_exact

    kw = dict(chunks)

    def exact(other, side, hp):
        return half_step_exact.plain(other, side, **hp, **kw)  # nested: no compiler options

    exact_trials = over_trials(exact, (0, None, 0), cpu)

    def sweep(Pp, Qp, users, items, hp):
        if cg_steps:
            cg = lambda other, side, x0, h: half_step_cg.plain(
                other, side, x0, cg_steps=cg_steps, **h, chunk_rows=kw["chunk_rows"],
                chunk_nnz=kw["chunk_nnz"])
            Qp, _, pen = jax.vmap(cg, in_axes=(0, None, 0, 0))(Pp, items, Qp, hp)
            Pp, value, _ = jax.vmap(cg, in_axes=(0, None, 0, 0))(Qp, users, Pp, hp)
        else:
            Qp, _, pen = exact_trials(Pp, items, hp)
            Pp, value, _ = exact_trials(Qp, users, hp)
        return Pp, Qp, value + pen

    def resolve_users(Qp, users, hp):
        return exact_trials(Qp, users, hp)[0]

    return cpu_jit(sweep, donate_argnums=(0, 1)), cpu_jit(resolve_users)


def _ials_batch(train: Ratings, batch: list, run) -> list:
    """T ImplicitALS trials (one :func:`shape_key`) as the ALS solver's sweeps, vmapped."""
    from ..solvers.ials.layout import shared_layouts
    from ..solvers.ials.solver import ALSSolver, hyperparameters, implicit_values
    from ..solvers.minibatch.epoch import host_init

    spec, T = batch[0], len(batch)
    data = interactions.build_implicit_data(train.users, train.items,
                                            implicit_values(train, "ials"),
                                            n_users=train.n_users, n_items=train.n_items)
    users, items = shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    p0 = host_init(run.seed, train.n_users, train.n_items, spec.rank, 1, spec.init_scale, 0.0)
    dtype = np.dtype(p0.user_factors.dtype)

    def stacked(x):
        x = np.asarray(x)
        out = np.zeros((T, n_pad) + x.shape[1:], x.dtype)
        out[:, :x.shape[0]] = x
        return jax.device_put(out)

    Pp, Qp = stacked(p0.user_factors), stacked(p0.item_factors)
    hp = {k: jax.device_put(np.array([hyperparameters(s)[k] for s in batch], dtype))
          for k in _IALS_HP}
    sweep, resolve_users = _ials_programs(int(spec.cg_steps or 0),
                                          tuple(sorted(ALSSolver.CHUNKS.items())),
                                          jax.default_backend() == "cpu")
    nnz = int(data.user_items.shape[0])
    losses = []
    for _ in range(spec.epochs):
        Pp, Qp, value = sweep(Pp, Qp, users, items, hp)
        losses.append(np.asarray(value, np.float64) / nnz)
    if spec.cg_steps:  # the solver's finalize: users re-solved exactly once
        Pp = resolve_users(Qp, users, hp)
    P, Q = np.asarray(Pp), np.asarray(Qp)
    return _split(jnp.asarray(P), jnp.asarray(Q), p0.user_bias, p0.item_bias, p0.global_bias,
                  losses, train.n_users, train.n_items)


# ------------------------------------------------------------------ explicit ALS


@functools.partial(jax.jit, static_argnames=("window", "cpu"), donate_argnums=(0,))
def _als_sweeps(params: Params, layout, reg, bias_reg, *, window: int, cpu: bool):
    from ..solvers.als.solver import als_step

    one = lambda p, r, b: als_step(p, layout, r, b, window=window)
    return over_trials(one, (0, 0, 0), cpu)(params, reg, bias_reg)


def _als_batch(train: Ratings, batch: list, run) -> list:
    """T ALS trials (one :func:`shape_key`) as the ALS solver's XLA sweeps, vmapped."""
    from ..solvers.als.solver import dtype_of, init_params, layout_of
    from ..solvers.als.sweep import default_window

    spec, T = batch[0], len(batch)
    dtype = dtype_of(run)
    layout = layout_of(train, dtype)
    window = default_window(spec.rank, itemsize=dtype.itemsize)
    p0 = init_params(train, spec, run.seed, dtype)
    params = jax.tree.map(lambda x: jnp.array(jnp.broadcast_to(x, (T,) + x.shape)), p0)
    reg = jnp.asarray([s.reg for s in batch], dtype)
    bias_reg = jnp.asarray([s.reg if s.bias_reg is None else s.bias_reg for s in batch], dtype)
    losses = []
    for _ in range(spec.epochs):
        params, loss = _als_sweeps(params, layout, reg, bias_reg, window=window,
                                   cpu=jax.default_backend() == "cpu")
        losses.append(np.asarray(loss, np.float64))
    return _split(*params, losses, train.n_users, train.n_items)


def with_values(spec, values: dict):
    """``spec`` with ``values`` replaced (a new, validated spec)."""
    return dataclasses.replace(spec, **values)
