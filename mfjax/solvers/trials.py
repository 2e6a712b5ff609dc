"""Pieces shared by the vectorized-trials routes of the model packages.

A model whose trials vectorize (``trials`` in its package's ``parts``;
:mod:`mfjax.selection.vectorized` drives them) stacks T trials on a leading axis and
maps each sweep over it with :func:`over_trials`; :func:`split_trials` turns the stacked
results back into one ``(Params, history)`` per trial.

On the CPU backend :func:`over_trials` is a ``lax.map`` rather than a ``vmap``:
vmapping turns the row factorizations into batched LAPACK calls, and jaxlib 0.10's
batched CPU LAPACK kernels block their pool thread on tasks of the same pool, so two of
them at once (the two branches of the pivot retry, which vmap turns into a select) hung
a 16-trial ML-1M search forever. Trials then run one after another inside the program,
each the same computation as its own fit.
"""
from __future__ import annotations

import jax
import numpy as np
from jax import lax

from ..objectives.explicit import Params

__all__ = ["over_trials", "split_trials", "VECTOR_ROUTE", "cpu_mapped_note"]

#: The ``route`` of a vectorized trial.
VECTOR_ROUTE = "vectorized (XLA, vmap over trials)"


def cpu_mapped_note() -> str:
    """What :func:`over_trials` does with factorizing steps on this backend, for ``route``."""
    return ("; its factorizations one trial at a time on a CPU (lax.map)"
            if jax.default_backend() == "cpu" else "")


def split_trials(P, Q, bu, bi, mu, losses, n_users, n_items) -> list:
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


