"""Finiteness checks of the explicit solvers' sweeps, with the cause and the fix named.

A sweep of exact ALS or of the Gibbs sampler whose loss comes out NaN or infinite has
hit one of two causes, and ``fit``'s generic "training diverged" message (written for
gradient steps: "try a smaller learning_rate") names neither:

- ALS with ``reg = 0``: a user or item with fewer ratings than rank + 1 has a singular
  normal system (fix: ``reg > 0``);
- ratings so large or small that their squares overflow or underflow the float type,
  or, for ALS, so large against ``reg`` that the normal equations cannot be solved in it
  (fix: rescale the ratings toward unit size, or raise ``reg``).

:func:`check_sweep` raises a :class:`NonFiniteError` (a ValueError) saying which. (The
iALS solver has its own, :func:`mfjax.models.implicit_als.solve.check_finite`, raising the same
class, so that :func:`mfjax.search` records such a trial as NaN and goes on.)
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_sweep", "NonFiniteError"]


class NonFiniteError(ValueError, FloatingPointError):
    """A solver's sweep or solve came out NaN or infinite (the message names the cause).

    A ValueError (the hyperparameters or the data are at fault) and a FloatingPointError
    (what ``fit`` raises when gradient training diverges), so that one ``except
    FloatingPointError`` catches every diverged fit.
    """


def check_sweep(solver: str, sweep: int, loss: float, ratings, reg: float | None = None) -> None:
    """Raise :class:`NonFiniteError` when ``loss`` is not finite.

    Args:
        solver: ``"als"`` or ``"gibbs"`` (for the message).
        sweep: the sweep's number (1-based).
        loss: the sweep's loss.
        ratings: the training ratings (read only on failure, for their size).
        reg: ALS' λ (None for Gibbs).
    """
    if np.isfinite(loss):
        return
    r = np.abs(np.asarray(ratings, np.float64))
    top = float(r.max(initial=0.0))
    small = float(r[r > 0].min(initial=np.inf)) if r.size else np.inf
    dtype = np.asarray(ratings).dtype
    head = f"fit(solver={solver!r}): sweep {sweep} gave a non-finite loss ({loss}): "
    if reg is not None and reg == 0:
        raise NonFiniteError(head + "with reg=0 a user or item with fewer ratings than rank + 1 "
                         "(or ratings all 0) has a singular normal system; use reg > 0")
    size = f"ratings from {small:g} to {top:g} in {dtype}"
    if reg is not None:
        raise NonFiniteError(head + f"the normal equations overflow or are too ill-conditioned "
                         f"({size}, reg={reg:g}); rescale the ratings toward unit size or "
                         "raise reg")
    raise NonFiniteError(head + f"the sampler's sums overflow or underflow ({size}); rescale "
                     "the ratings toward unit size")
