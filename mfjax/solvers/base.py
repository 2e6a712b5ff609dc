"""The ``Solver`` seam: what ``fit``'s epoch loop drives.

A solver is one training algorithm. The loop (:func:`mfjax.fit`) owns everything
around it: argument checks, validation, early stopping, checkpoints, callbacks and
the progress bar. A solver only knows how to start, take one epoch (or sweep), and
say what model it holds now::

    state = solver.init(train, config)           # put data and parameters on the device
    for epoch in range(config.epochs):
        state, metrics = solver.step(state)      # one epoch / sweep; metrics["loss"]
        params = solver.params(state)            # a plain rank-k mfjax.Params

``state`` is a pytree (a NamedTuple of arrays, Python ints allowed), so a checkpoint
stores its leaves and :meth:`Solver.restore` puts them back. New solvers register
in :data:`SOLVERS` under ``(objective, name)``.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from ..objectives.explicit import Params
from ..data import Ratings

__all__ = ["Solver", "SOLVERS", "register_solver", "make_solver", "restore_leaves"]


@runtime_checkable
class Solver(Protocol):
    """One training algorithm behind ``fit``.

    Attributes:
        OPTIONS: the names of ``fit``'s solver-specific keyword arguments it takes
            (e.g. ``("alpha", "unobserved_weight", "nu")``); ``config.options`` holds
            the ones given. Any other given option is an error.
        seen: after :meth:`init`, the seen-item CSR index ``(indptr, items)`` of the
            training data if the solver built it on the way (else None; the loop
            builds it).
    """

    OPTIONS: tuple[str, ...]
    seen: tuple[np.ndarray, np.ndarray] | None

    def init(self, train: Ratings, config) -> Any:
        """Lay out ``train`` and initialise; returns the state (a pytree)."""

    def step(self, state) -> tuple[Any, dict]:
        """One epoch or sweep; returns the new state and ``{"loss": objective per rating, ...}``."""

    def params(self, state) -> Params:
        """The model the state holds now, as one plain :class:`mfjax.Params` (on the device)."""

    def restore(self, state, leaves: list) -> Any:
        """A state shaped like ``state`` from checkpointed host ``leaves``."""

    def finalize(self, params: Params) -> Params:
        """The returned model's parameters from :meth:`params`'s (e.g. mesh padding removed)."""


#: ``(objective, solver name) -> factory() -> Solver``.
SOLVERS: dict[tuple[str, str], Callable[[], Solver]] = {}


def register_solver(objective: str, name: str, factory: Callable[[], Solver]) -> None:
    """Make ``fit(objective=objective, solver=name)`` use ``factory()``."""
    SOLVERS[(objective, name)] = factory


def make_solver(objective: str, name: str) -> Solver:
    """A new solver for ``fit(objective=, solver=)``.

    Raises:
        ValueError: no solver is registered under that pair (the valid ones are named).
    """
    try:
        return SOLVERS[(objective, name)]()
    except KeyError:
        valid = sorted(f"objective={o!r}, solver={s!r}" for o, s in SOLVERS)
        raise ValueError(f"fit: no solver {name!r} for objective {objective!r}; "
                         f"valid: {'; '.join(valid)}") from None


def restore_leaves(state, leaves: list, put: Callable = jnp.asarray):
    """``state``'s structure with ``leaves``: Python ints stay ints, arrays go through ``put``.

    Raises:
        ValueError: the leaf count or a leaf's shape differs from ``state``'s.
    """
    old, treedef = jax.tree.flatten(state)
    if len(old) != len(leaves):
        raise ValueError(f"checkpoint has {len(leaves)} state arrays, this run {len(old)}")
    new = []
    for j, (o, x) in enumerate(zip(old, leaves)):
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            new.append(int(x))
            continue
        if tuple(np.shape(o)) != tuple(np.shape(x)):
            raise ValueError(f"checkpoint state array {j} has shape {np.shape(x)}, "
                             f"this run {np.shape(o)}")
        new.append(put(np.asarray(x, dtype=o.dtype)))
    return jax.tree.unflatten(treedef, new)
