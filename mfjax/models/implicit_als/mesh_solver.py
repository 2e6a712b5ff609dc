"""iALS ALS sweeps on a device mesh: ``fit(objective="ials", solver="als", mesh=...)``.

Each half-step is :func:`mfjax.models.implicit_als.mesh.mesh_half_step`: the rows being solved
are split over every device of the mesh (both axes), each device gathers the other
side's whole table and solves its rows with the one-device code. The solver state
holds the tables in row order, replicated, so validation, callbacks and checkpoints
see a plain model (and a checkpoint resumes on another mesh or on one device);
between the two half-steps of a sweep the factors stay in the sharded device-major
layout. The result matches the one-device solver to float tolerance.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ... import distributed
from . import mesh as mm
from ...objectives.explicit import Params
from ...data.interactions import ImplicitData

__all__ = ["MeshALS"]


class MeshALS:
    """The ALS sweep of :class:`mfjax.models.implicit_als.solver.ALSSolver` on a mesh.

    Args:
        data: the interactions.
        mesh: a ``data x model`` mesh.
        hp: ``alpha``, ``unobserved_weight``, ``reg``, ``nu``.
        method: ``"cholesky"`` (both half-steps exact) or ``"cg"`` (both by
            ``cg_steps`` warm-started CG steps per row).
        cg_steps: CG iterations per row (``"cg"``).
        chunks: ``chunk_rows``, ``chunk_nnz``, ``block`` of the row solves.
    """

    def __init__(self, data: ImplicitData, mesh, hp: dict, method: str, cg_steps: int,
                 chunks: dict):
        self.mesh, self.hp, self.method, self.cg_steps = mesh, hp, method, cg_steps
        self.chunks = chunks
        self.nnz = int(data.user_items.shape[0])
        self.users, self.items = mm.mesh_layouts(data, mesh)
        self._replicated = NamedSharding(mesh, P())
        self._working = None  # (P in row order, P device-major) of the last sweep

    def place(self, tree):
        """Host arrays (a pytree) as replicated arrays on the mesh."""
        return jax.tree.map(lambda x: distributed.put_global(np.asarray(x), self._replicated),
                            tree)

    def _half(self, other, side, **kw):
        return mm.mesh_half_step(other, side, self.mesh, **self.hp, **self.chunks, **kw)

    def sweep(self, params: Params) -> tuple[Params, float]:
        """Items, then users (by ``method``); returns the new params and L / nnz."""
        P_, Q_ = params.user_factors, params.item_factors
        if self._working is not None and self._working[0] is P_:
            Pm = self._working[1]
        else:
            Pm = mm.from_natural(P_, self.users, self.mesh)
        if self.method == "cg":
            cg = dict(method="cg", cg_steps=self.cg_steps)
            x0 = mm.from_natural(Q_, self.items, self.mesh)
            Qm, _, penalty_items = self._half(Pm, self.items, x0=x0, **cg)
            Pm, value_users, _ = self._half(Qm, self.users, x0=Pm, **cg)
        else:
            Qm, _, penalty_items = self._half(Pm, self.items)
            Pm, value_users, _ = self._half(Qm, self.users)
        P_ = mm.to_natural(Pm, self.users, self.mesh)
        Q_ = mm.to_natural(Qm, self.items, self.mesh)
        self._working = (P_, Pm)
        value = (float(value_users) + float(penalty_items)) / self.nnz
        return params._replace(user_factors=P_, item_factors=Q_), value

    def resolve_users(self, params: Params) -> Params:
        """P = argmin_P L(P, Q) exactly, Q fixed."""
        Qm = mm.from_natural(params.item_factors, self.items, self.mesh)
        Pm, _, _ = self._half(Qm, self.users)
        return params._replace(user_factors=mm.to_natural(Pm, self.users, self.mesh))
