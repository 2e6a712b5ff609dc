"""One contract for every gradient route: ``(params, batch) -> (loss, grads)``.

A route computes the minibatch slice of the objective of :mod:`mfjax.objectives.explicit` and its
gradient with respect to every :class:`mfjax.Params` field,

    L_B = ½ Σ_(u,i,r)∈B w [(r̂(u,i) − r)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)]

for one :class:`Batch`: the minibatch's ratings sorted by their key (``sort_by``:
``"users"`` or ``"items"``), padding carrying weight 0. All routes give the same
numbers to float tolerance (tested); they differ in where they run and how fast:

========== ======================================================== ============ =====
route      how                                                      backends     mesh
========== ======================================================== ============ =====
autodiff   ``jax.grad(mfjax.loss)``                                 any          yes
manual     :func:`mfjax.manual_grad` (hand-written, vmapped)        any          yes
blocked    :func:`~mfjax.solvers.minibatch.gradients.blocked.blocked_value_and_grad`  any          yes
fused      :func:`~mfjax.kernels.fused.value_and_grad` (C++ FFI)  cpu          no
========== ======================================================== ============ =====

Example::

    route = make_route("manual", reg=0.05, bias_reg=0.01, sort_by="users")
    loss, grads = route.value_and_grad(params, batch)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from ....objectives.explicit import Params, loss, manual_grad
from . import blocked as _blocked_route
from ....kernels import fused as _fused_route

__all__ = ["Batch", "Route", "ROUTES", "make_route"]

#: Every route's name, fastest-at-scale first.
ROUTES = ("fused", "blocked", "autodiff", "manual")


class Batch(NamedTuple):
    """One minibatch, its rows sorted by key (``sort_by`` of the route).

    Attributes:
        keys: the key of each row [R], non-decreasing: users when
            ``sort_by="users"``, else items.
        others: the other index of each row [R].
        ratings: the rating of each row [R] (0 on padding).
        weights: 1 per real rating, 0 on padding [R].
        blocks: ``make_blocks(keys)`` as device arrays for the ``"blocked"``
            route, else ``()``.
    """

    keys: jax.Array
    others: jax.Array
    ratings: jax.Array
    weights: jax.Array
    blocks: tuple = ()

    def users_items(self, sort_by: str) -> tuple[jax.Array, jax.Array]:
        """``(users, items)`` of the rows, given which side the keys are."""
        return (self.keys, self.others) if sort_by == "users" else (self.others, self.keys)


class Route(NamedTuple):
    """A gradient route bound to its hyperparameters.

    Attributes:
        name: one of :data:`ROUTES`.
        value_and_grad: ``(params, batch) -> (loss, grads)``, grads shaped like params.
        backends: the JAX backends it runs on (``None``: any).
        mesh: whether it runs under a device mesh (sharded arrays).
        needs_blocks: whether ``batch.blocks`` must be filled.
    """

    name: str
    value_and_grad: Callable[[Params, Batch], tuple[jax.Array, Params]]
    backends: tuple[str, ...] | None
    mesh: bool
    needs_blocks: bool


def make_route(name: str, *, reg: float, bias_reg: float | None, sort_by: str) -> Route:
    """The route ``name`` for minibatches keyed by ``sort_by``.

    Args:
        name: one of :data:`ROUTES`.
        reg, bias_reg: λ and λ_b, as in :func:`mfjax.loss`.
        sort_by: ``"users"`` or ``"items"``: which side :attr:`Batch.keys` holds.

    Raises:
        ValueError: on an unknown name or sort key.
    """
    if sort_by not in ("users", "items"):
        raise ValueError(f"sort_by must be 'users' or 'items', got {sort_by!r}")
    kw = dict(reg=reg, bias_reg=bias_reg)
    if name == "fused":
        def fn(p, b):
            return _fused_route.value_and_grad(p, b.keys, b.others, b.ratings, b.weights,
                                               sort_by=sort_by, **kw)
        return Route(name, fn, ("cpu",), False, False)
    if name == "blocked":
        def fn(p, b):
            return _blocked_route.blocked_value_and_grad(p, b.blocks, b.others, b.ratings,
                                                         weights=b.weights, sort_by=sort_by, **kw)
        return Route(name, fn, None, True, True)
    if name == "autodiff":
        vg = jax.value_and_grad(loss)

        def fn(p, b):
            return vg(p, *b.users_items(sort_by), b.ratings, weights=b.weights, sort_by=sort_by, **kw)
        return Route(name, fn, None, True, False)
    if name == "manual":
        def fn(p, b):
            args = (p, *b.users_items(sort_by), b.ratings)
            opts = dict(weights=b.weights, sort_by=sort_by, **kw)
            return loss(*args, **opts), manual_grad(*args, **opts)
        return Route(name, fn, None, True, False)
    raise ValueError(f"gradient route must be one of {ROUTES}, got {name!r}")
