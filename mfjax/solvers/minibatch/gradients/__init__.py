"""Gradient routes: every way mfjax computes a minibatch's loss and gradient.

All routes share one contract, ``(params, batch) -> (loss, grads)`` on a key-sorted
:class:`Batch` (see :mod:`mfjax.solvers.minibatch.gradients.routes`); the training loop picks one by
name (:data:`ROUTES`) and never needs to know how it works. The model's own loss and
hand-written gradient stay in :mod:`mfjax.objectives.explicit`; the ``"blocked"`` XLA route is
:mod:`mfjax.solvers.minibatch.gradients.blocked`, the fused C++ kernel :mod:`mfjax.kernels.fused`
(with its source ``fused_cpu.cc`` beside it).
"""
from . import blocked
from ....kernels import fused
from .blocked import MAX_BLOCK, blocked_value_and_grad, make_blocks
from .routes import ROUTES, Batch, Route, make_route

__all__ = ["Batch", "Route", "ROUTES", "make_route", "make_blocks", "blocked_value_and_grad",
           "MAX_BLOCK", "blocked", "fused"]
