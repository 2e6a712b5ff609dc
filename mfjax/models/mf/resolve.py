"""How :class:`~mfjax.MF`'s ``"auto"`` fields are decided for the data and hardware.

- ``batch_size``: :func:`auto_batch_size` (about 1/20 of the data, a power of two);
- ``learning_rate``: the optimizer's default;
- ``gradient``: ``jax.grad`` below :data:`AUTO_BLOCKED_MIN_RATINGS` ratings (its compile
  is the cheapest), from there ``"fused"`` on one CPU device when the kernel is built,
  else ``"blocked"``;
- ``sort_by``: users on a CPU, items on a GPU, unless that pads the grid by > 25% and
  the other pads less, for ``"fused"`` the side with more rows;
- ``ensemble``: members of rank >= 8, at most 16
  (:func:`mfjax.solvers.minibatch.ensemble.n_members`).
"""
from __future__ import annotations

import dataclasses
import math

from ... import distributed
from ...data import Ratings
from ...kernels import fused
from ...solvers.hardware import Hardware
from ...solvers.minibatch import ensemble as E
from ...solvers.minibatch.gradients import ROUTES
from ...solvers.minibatch.layout import padding_share
from ...solvers.minibatch.optimizers import OPTIMIZERS
from .spec import MF

__all__ = ["DEFAULTS", "GRADIENTS", "AUTO_BLOCKED_MIN_RATINGS", "auto_batch_size",
           "resolve_gradient", "resolve_sort_by", "resolve"]

#: :class:`mfjax.MF`'s defaults by field (for the command line's help texts).
DEFAULTS = {f: getattr(MF(), f) for f in MF.field_names()}

#: Gradient routes accepted by ``fit``; all give the same trajectory to float tolerance.
GRADIENTS = ("auto",) + ROUTES

#: ``gradient="auto"`` leaves ``jax.grad`` from this many ratings on, for ``"fused"``
#: (one CPU device) or ``"blocked"``: they compile longer and save most of every epoch.
AUTO_BLOCKED_MIN_RATINGS = 1 << 20


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


def resolve_gradient(gradient: str, n_ratings: int, hw: Hardware) -> str:
    """The gradient route for ``fit``'s ``gradient=`` (rules in the module docstring)."""
    if gradient not in GRADIENTS:
        raise ValueError(f"fit: gradient must be one of {GRADIENTS}, got {gradient!r}")
    if gradient == "auto":
        if n_ratings < AUTO_BLOCKED_MIN_RATINGS:
            return "autodiff"
        return "fused" if hw.single_cpu and hw.fused_reason is None else "blocked"
    if gradient == "fused":
        if not hw.single_cpu:
            raise ValueError(f"fit: gradient='fused' runs on a single CPU device only (backend "
                             f"{hw.backend!r}, mesh {distributed.describe(hw.mesh)}); use 'blocked' there")
        reason = hw.fused_reason
        if reason == fused.NOT_BUILT:  # asked for by name: compile it now
            reason = fused.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"fit: gradient='fused' is not available here: {reason}. "
                               "Use gradient='blocked' (the same numbers through XLA).")
    return gradient


def resolve_sort_by(sort_by: str, train: Ratings, n_batches: int, gradient: str, hw: Hardware) -> str:
    """The key the training grid is sorted and padded by (rules in the module docstring).

    Users on a CPU: the bigger table's rows then move once per block instead of
    once per rating. Items on a GPU: their popular rows take the most updates per
    batch, and blocks sum those densely instead of with contended f32 atomics. The
    fused kernel skips padding almost for free but keeps a private copy of the
    other side's table per thread, so for it the key is the side with more rows.
    """
    if sort_by not in ("auto", "users", "items"):
        raise ValueError(f"fit: sort_by must be 'auto', 'users' or 'items', got {sort_by!r}")
    if sort_by != "auto":
        return sort_by
    if gradient == "fused":
        return "users" if train.n_users >= train.n_items else "items"
    pref, other = ("items", "users") if hw.backend == "gpu" else ("users", "items")
    pad = {k: padding_share(train, k, n_batches) for k in (pref, other)}
    return other if pad[pref] > 0.25 and pad[other] < pad[pref] else pref


def resolve(spec: MF, train: Ratings, run) -> MF:
    """``spec`` with every ``"auto"`` field decided (module docstring)."""
    hw, n = run.hardware, len(train)
    wants_fused = spec.gradient == "fused" or (spec.gradient == "auto"
                                               and n >= AUTO_BLOCKED_MIN_RATINGS)
    if wants_fused and hw.single_cpu and hw.fused_reason == "not checked":
        hw = dataclasses.replace(hw, fused_reason=fused.unavailable_reason(build=False))
    batch = spec.batch_size or auto_batch_size(n, train.n_users, train.n_items)
    batch = int(min(batch, n))
    gradient = resolve_gradient(spec.gradient, n, hw)
    lr = spec.learning_rate
    if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
        lr = OPTIMIZERS[spec.optimizer][1]
    return dataclasses.replace(
        spec, batch_size=batch, gradient=gradient, learning_rate=lr,
        sort_by=resolve_sort_by(spec.sort_by, train, -(-n // batch), gradient, hw),
        ensemble=E.n_members(spec.rank, spec.ensemble))
