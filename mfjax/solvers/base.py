"""The ``Solver`` seam: what ``fit``'s epoch loop drives.

A solver is one training algorithm for one spec; a model package (:mod:`mfjax.models`)
makes it (its record's ``make_solver``). The loop
(:func:`mfjax.fit`) owns everything around it: argument checks, validation, early
stopping, checkpoints, callbacks and the progress bar. A solver reads its (resolved)
spec, never changes it, and only knows how to start, take one epoch (or sweep), and
say what model it holds now::

    solver = record.make_solver(spec)         # the model package's solver
    state = solver.init(train, spec, run)        # data and parameters on the device
    for epoch in range(spec.n_steps):
        state, metrics = solver.step(state)      # metrics["loss"]: objective per rating
        params = solver.params(state)            # a plain rank-k mfjax.Params
    params = solver.finalize(state, params)

``state`` is a pytree (a NamedTuple of arrays, Python ints allowed) holding everything
that changes, so a checkpoint stores its leaves and :meth:`Solver.restore` puts them
back.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from ..objectives.explicit import Params
from ..data import Ratings

__all__ = ["Solver", "restore_leaves"]


@runtime_checkable
class Solver(Protocol):
    """One training algorithm behind ``fit``.

    Attributes:
        seen: after :meth:`init`, the seen-item CSR index ``(indptr, items)`` of the
            training data if the solver built it on the way (else None; the loop
            builds it).
        facts: after :meth:`init`, JSON-able facts about the layout it chose (e.g.
            ``batch_slots``), recorded in the model's config.
        min_epochs: early stopping only counts epochs from this one on (Gibbs: the
            first kept sample), and only such epochs can be the best.
    """

    seen: tuple[np.ndarray, np.ndarray] | None
    facts: dict
    min_epochs: int

    def init(self, train: Ratings, spec, run) -> Any:
        """Lay out ``train`` and initialise; returns the state (a pytree)."""

    def step(self, state) -> tuple[Any, dict]:
        """One epoch or sweep; returns the new state and ``{"loss": objective per rating, ...}``."""

    def params(self, state) -> Params:
        """The model the state holds now, as one plain :class:`mfjax.Params` (on the device)."""

    def put(self, x) -> jax.Array:
        """A host array placed beside the parameters (replicated on a mesh)."""

    def restore(self, state, leaves: list) -> Any:
        """A state shaped like ``state`` from checkpointed host ``leaves``."""

    def finalize(self, state, params: Params) -> Params:
        """The returned model's parameters from :meth:`params`'s (e.g. mesh padding removed)."""

    def posterior(self, state, params: Params) -> dict | None:
        """Per-sample arrays behind ``params`` (Bayesian MF), else None."""

    def divergence_hint(self) -> str:
        """What to change when the loss becomes non-finite (names the real cause)."""


def restore_leaves(state, leaves: list, put: Callable = jnp.asarray):
    """``state``'s structure with ``leaves``: Python ints stay ints, arrays go through ``put``.

    Raises:
        ValueError: the leaf count, a leaf's shape, or a leaf's finiteness differs from
            what ``state`` allows (a checkpoint with NaN state is refused).
    """
    old, treedef = jax.tree.flatten(state)
    if len(old) != len(leaves):
        raise ValueError(f"checkpoint has {len(leaves)} state arrays, this run {len(old)}")
    new = []
    for j, (o, x) in enumerate(zip(old, leaves)):
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            if np.ndim(x) or not np.issubdtype(np.asarray(x).dtype, np.integer) or int(x) < 0:
                raise ValueError(f"checkpoint state entry {j} must be a non-negative integer, "
                                 f"got {x!r}")
            new.append(int(x))
            continue
        if tuple(np.shape(o)) != tuple(np.shape(x)):
            raise ValueError(f"checkpoint state array {j} has shape {np.shape(x)}, "
                             f"this run {np.shape(o)}")
        x = np.asarray(x, dtype=o.dtype)
        if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
            raise ValueError(f"checkpoint state array {j} holds NaN or infinity")
        new.append(put(x))
    return jax.tree.unflatten(treedef, new)
