"""The Optax minibatch solver: any optimizer over shuffled minibatches, one jit per epoch.

Each step applies the optimizer to the gradient of a minibatch's slice of the
objective (:mod:`mfjax.objectives.explicit`) from the configured route (:mod:`mfjax.solvers.minibatch.gradients`):

    g = ∇θ ½ Σ_(u,i,r)∈B [(r̂(u,i) − r)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)]
    (updates, s) = optimizer.update(g, s, θ);   θ ← θ + updates

Hot path (profiled at the ML-20M shape on a 2-core CPU; ``benchmarks/RESULTS.md``):
the ratings are sorted once on the host and put on the device once as the grid of
:mod:`mfjax.solvers.minibatch.layout`; an epoch is one jitted ``lax.scan``
(:mod:`mfjax.solvers.minibatch.epoch`) with donated buffers; the per-epoch reshuffle costs
O(rows). On a mesh the grid is split over the ``data`` axis and the tables are
replicated or row-sharded over ``model`` (:mod:`mfjax.distributed`); the minibatches
are the same as on one device.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from ... import distributed
from ...objectives.explicit import Params
from ...data import Ratings
from .gradients import make_route
from . import ensemble as E
from . import layout as L
from .epoch import cached_epoch, host_init, make_epoch, remix
from .optimizers import make_optimizer, opt_init
from ..base import restore_leaves

__all__ = ["OptaxState", "OptaxSolver"]


class OptaxState(NamedTuple):
    """The minibatch solver's state.

    Attributes:
        params: the (member) parameters, padded and placed on a mesh.
        opt_state: the optimizer's state.
        epoch: epochs done (it seeds the next epoch's reshuffle).
    """

    params: Params
    opt_state: Any
    epoch: int


class OptaxSolver:
    """:class:`mfjax.MF`: minibatch training with any Optax optimizer (see module docstring)."""

    min_epochs = 1

    def __init__(self):
        self.seen, self.facts = None, {}

    def init(self, train: Ratings, spec, run) -> OptaxState:
        """Sort and lay out ``train``, draw the initial parameters, compile (or reuse) the epoch."""
        c, hw = spec, run.hardware
        self.spec, self.seed, self.n, self.place = spec, run.seed, len(train), None
        self.n_batches = n_batches = -(-self.n // c.batch_size)
        route = make_route(c.gradient, reg=c.reg, bias_reg=c.bias_reg, sort_by=c.sort_by)
        opt, run_epoch = None, None
        if isinstance(c.optimizer, str) and c.schedule is None:  # hashable: reuse compiled programs
            options = tuple(sorted(hw.compiler_options.items())) if hw.compiler_options else None
            opt, run_epoch = cached_epoch(c.optimizer, c.learning_rate, c.gradient, c.reg, c.bias_reg,
                                          c.sort_by, *L.grid_shape(train, c.sort_by, n_batches),
                                          options)
        else:
            opt = make_optimizer(c.optimizer, c.learning_rate, c.schedule)
        params = host_init(run.seed, train.n_users, train.n_items, c.rank, c.ensemble, c.init_scale,
                           float(train.mean))
        opt_state = opt_init(opt)(params)
        # One host sort serves the training grid and the model's seen-item index.
        order = L.radix_order(train.users, train.items) if c.sort_by == "users" else \
            L.radix_order(train.items, train.users)
        grid = L.build_grid(train, c.sort_by, n_batches, order, blocks=route.needs_blocks)
        if c.sort_by != "users":
            order = L.radix_order(train.users, train.items)
        self.seen = L.seen_index(train, order)
        del order
        n_rows = int(grid.keys.shape[0])
        assert (n_rows, n_batches) == L.grid_shape(train, c.sort_by, n_batches)
        self.facts = {"batch_slots": n_rows,
                      "padding": round(1.0 - self.n / (n_rows * n_batches), 6)}
        self.n_real_rows = n_rows
        if hw.mesh is not None:
            self.place = distributed.Placement(hw.mesh, train.n_users, train.n_items,
                                               run.table_sharding == "sharded")
            grid = L.place_grid(grid, n_batches, self.place)
            n_rows = int(grid.keys.shape[0])
            self.facts["mesh_padding_rows"] = n_rows - self.n_real_rows
            params = self.place.put_tree(self.place.pad_params(params))
            opt_state = self.place.put_tree(opt_init(opt)(params))
            run_epoch = None  # the padded grid's shape
        if run_epoch is None:
            run_epoch = make_epoch(opt, route.value_and_grad, n_rows, n_batches, hw.compiler_options)
        self.grid, self.n_rows, self.run_epoch = grid, n_rows, run_epoch
        return OptaxState(params, opt_state, 0)

    def put(self, x):
        """Place a host array for use beside the parameters (replicated on a mesh)."""
        return jax.numpy.asarray(x) if self.place is None else self.place.put_replicated(x)

    def step(self, state: OptaxState) -> tuple[OptaxState, dict]:
        """One epoch: every rating once, in ``n_batches`` minibatches reshuffled from (seed, epoch)."""
        order, offsets = remix(self.seed, state.epoch, self.n_real_rows, self.n_batches)
        if self.n_rows > self.n_real_rows:
            offsets = np.pad(offsets, (0, self.n_rows - self.n_real_rows))  # mesh padding rows
        params, opt_state, total = self.run_epoch(state.params, state.opt_state, self.grid,
                                                  self.put(order), self.put(offsets))
        # Per rating, averaged over members.
        members = self.spec.ensemble
        return OptaxState(params, opt_state, state.epoch + 1), {"loss": float(total) / (self.n * members)}

    def params(self, state: OptaxState) -> Params:
        """The members' average as one plain model (mesh padding rows included)."""
        return E.combine(state.params)

    def restore(self, state: OptaxState, leaves: list) -> OptaxState:
        """The state from a checkpoint's host leaves, placed like ``state``."""
        put = jax.numpy.asarray if self.place is None else self.place.put_tree
        return restore_leaves(state, leaves, put)

    def finalize(self, state: OptaxState, params: Params) -> Params:
        """Host-gathered, unpadded parameters on a mesh; unchanged on one device."""
        if self.place is None:
            return params
        return self.place.unpad_params(jax.tree.map(jax.numpy.asarray, distributed.to_host(params)))

    def posterior(self, state, params):
        return None

    def divergence_hint(self) -> str:
        return (f"try a smaller learning_rate (now {self.spec.learning_rate}) or a larger reg "
                f"(now {self.spec.reg})")
