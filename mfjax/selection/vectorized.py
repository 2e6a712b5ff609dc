"""Trials that differ only in continuous hyperparameters, trained as ONE vmapped program.

Two specs whose fields differ only in :data:`CONTINUOUS` (``reg``, ``bias_reg``,
``alpha``, ``unobserved_weight``, ``nu``, ``learning_rate``) lay out the same data
in the same shapes and start from the same factors (same seed, rank and
``init_scale``): only traced scalars differ. :func:`train_group` stacks T such trials
on a leading axis and runs each sweep of all of them as one ``jax.vmap``-ed
XLA program: the hyperparameters are [T] arrays, the factor tables [T, n, k].

A model vectorizes when its record has a ``trials`` route (its package's
``trials`` module: ``route``, ``trial_bytes``, ``train_batch``; the helpers they share,
and why the factorizing steps are a ``lax.map`` on a CPU, are in
:mod:`mfjax.solvers.trials`). :func:`route_of` asks it; a model without one is not
vectorized, and :func:`mfjax.search` runs its trials as sequential ``fit`` calls,
saying so.

Memory is bounded: a group is cut into batches of at most
``budget // bytes_per_trial`` trials (:func:`trial_bytes`, :data:`MEMORY_BUDGET_BYTES`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import models
from ..data import Ratings
from ..solvers.trials import VECTOR_ROUTE, over_trials

__all__ = ["CONTINUOUS", "MEMORY_BUDGET_BYTES", "VECTOR_ROUTE", "shape_key", "route_of",
           "trial_bytes", "train_group", "over_trials", "with_values"]

#: Spec fields that may differ within one vectorized group (traced values).
CONTINUOUS = ("reg", "bias_reg", "alpha", "unobserved_weight", "nu", "learning_rate")
#: Device memory one vectorized batch may take (factor tables and sweep temporaries).
MEMORY_BUDGET_BYTES = 2 << 30


def shape_key(spec) -> tuple:
    """What must be equal for two trials to share a vectorized program: the spec class
    and every field outside :data:`CONTINUOUS` (rank, epochs, solver, init_scale, ...)."""
    return (type(spec).__name__,) + tuple(
        (f, repr(getattr(spec, f))) for f in spec.field_names() if f not in CONTINUOUS)


def route_of(spec) -> tuple[bool, str]:
    """``(vectorized, why)`` for a resolved spec: whether :func:`train_group` takes it."""
    record = models.record_of(spec)
    if record.trials is None:
        have = sorted(r.name for r in models.REGISTRY.values() if r.trials is not None)
        return False, (f"sequential fit: {record.name} has no vectorized route "
                       f"({', '.join(have)} have)")
    return record.trials.route(spec)


def trial_bytes(spec, train: Ratings, itemsize: int) -> int:
    """Device bytes one trial adds to a vectorized batch (tables and sweep temporaries)."""
    return models.record_of(spec).trials.trial_bytes(spec, train, itemsize)


def train_group(train: Ratings, group: list, run, *, budget: int = MEMORY_BUDGET_BYTES,
                on_batch=None) -> list:
    """Train resolved specs that share :func:`shape_key`, as few vmapped batches.

    Args:
        train: the training data.
        group: resolved specs (:func:`mfjax.training.config.resolve`), one
            :func:`shape_key`, all with :func:`route_of` vectorized.
        run: the :class:`mfjax.solvers.hardware.Run` (seed, dtype).
        budget: bytes per batch (:func:`trial_bytes`).
        on_batch: called with the number of trials after each batch (progress).

    Returns:
        One ``(params, history)`` per spec, in order: ``params`` the trial's
        parameters (on the device), ``history`` its per-sweep ``loss``.
        A trial whose loss became non-finite returns ``params`` None.
    """
    spec = group[0]
    if len({shape_key(s) for s in group}) != 1:
        raise ValueError("train_group: the specs differ in a shape-determining field")
    itemsize = np.dtype(run.dtype).itemsize
    per_batch = max(1, budget // max(1, trial_bytes(spec, train, itemsize)))
    train_batch = models.record_of(spec).trials.train_batch
    out = []
    for s in range(0, len(group), per_batch):
        batch = group[s:s + per_batch]
        out.extend(train_batch(train, batch, run))
        if on_batch is not None:
            on_batch(len(batch))
    return out


def with_values(spec, values: dict):
    """``spec`` with ``values`` replaced (a new, validated spec)."""
    return dataclasses.replace(spec, **values)
