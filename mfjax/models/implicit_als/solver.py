"""iALS solvers: ``fit(train, mfjax.ImplicitALS(...))`` by alternating solves or by Optax.

Each training row (u, i, v) is an interaction; v sets its confidence
``c_ui = 1 + α v`` (repeated pairs are merged, values summed). The objective is
:func:`mfjax.models.implicit_als.objective.loss`::

    L = Σ_(u,i)∈S c_ui (1 − <p_u, q_i>)² + α0 Σ_u Σ_i <p_u, q_i>²
        + λ [Σ_u λ̃_u ‖p_u‖² + Σ_i λ̃_i ‖q_i‖²],   λ̃_u = (|I_u| + α0 n_items)^ν

(α ``alpha``, α0 ``unobserved_weight``, ν ``nu``, λ ``reg``). The history's ``loss``
is L / |S|, from the half-steps' own sums (no extra pass over the interactions).

- ``solver="als"`` (:class:`ALSSolver`): each step is one sweep, the items then the
  users. ``cg_steps=0`` solves each row exactly (Cholesky), ``cg_steps=n`` by n
  warm-started conjugate-gradient steps (O(|I_u| k) per step instead of O(|I_u| k²)).
  Both half-steps run ONE compiled program on zero-padded, bucketed shapes
  (:func:`mfjax.models.implicit_als.layout.shared_layouts`; the true row counts are traced
  values), or with ``kernel`` the threaded C++ kernel (:mod:`mfjax.kernels.ials`, the
  same outputs). The returned model always has ``P = argmin_P L(P, Q)`` (exact sweeps
  end with an exact user half-step; after CG sweeps the users are re-solved exactly
  once), so :meth:`mfjax.Model.fold_in` of a training user with their own
  interactions gives back their vector.
- ``solver="optax"`` (:class:`IALSOptaxSolver`): the same L by full-batch gradient
  (:func:`mfjax.models.implicit_als.objective.manual_grad`) and the spec's optimizer, ``STEPS``
  updates per epoch; slow, for checking the ALS solver.

On a mesh of several devices ALS splits each half-step's rows over every device
(:class:`mfjax.models.implicit_als.mesh_solver.MeshALS`, no C++ kernel) and keeps the tables
replicated between sweeps (``table_sharding`` does not apply; a one-device mesh runs
the one-device path); the Optax solver spreads the interactions over the ``data`` axis
and places the tables as ``table_sharding`` asks. Both match one device to float
tolerance. Measurements behind the defaults are in ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import distributed
from . import objective as im
from ...data import interactions
from ...data.interactions import implicit_values
from . import layout as ials_layout
from . import solve as ia
from ...kernels import ials as ik
from . import steps as st
from .priors import Priors
from ...objectives.explicit import Params
from ...data import Ratings
from ...solvers.minibatch.epoch import host_init
from .mesh_solver import MeshALS
from ...solvers.base import restore_leaves
from ...solvers.minibatch.optimizers import make_optimizer

__all__ = ["ALSState", "ALSSolver", "IALSOptaxSolver", "hyperparameters"]




def hyperparameters(spec) -> dict:
    """``alpha``, ``unobserved_weight``, ``reg``, ``nu`` of an :class:`mfjax.ImplicitALS`."""
    return {k: float(getattr(spec, k)) for k in ("alpha", "unobserved_weight", "reg", "nu")}


class ALSState(NamedTuple):
    """An iALS solver's state.

    Attributes:
        params: the model (biases 0).
        opt_state: the optimizer's state (``()`` for ALS).
        epoch: sweeps or epochs done.
    """

    params: Params
    opt_state: Any
    epoch: int


def _pad_rows(x, n):
    """x [m, k] with zero rows appended up to n rows. Done on the host: a few MB copied,
    where a device pad or slice is one more XLA program to compile per shape (~50-90 ms
    each on CPU, as much as a sweep's share of the fit)."""
    x = np.asarray(x)
    out = np.zeros((n,) + x.shape[1:], x.dtype)
    out[:x.shape[0]] = x
    return jax.device_put(out)  # jnp.asarray would compile a staging program per shape


def _rows(x, n):
    """The first n rows of x (host slice; see :func:`_pad_rows`)."""
    return jax.device_put(np.asarray(x)[:n])


@jax.jit
def _resolve_users(params, data, hp):
    """P = argmin_P L(P, Q) exactly (Cholesky), Q fixed."""
    return params._replace(user_factors=ia.solve_users(params.item_factors, data,
                                                       method="cholesky", **hp))


class _IALSBase:
    min_epochs = 1

    def __init__(self):
        self.seen, self.facts = None, {}

    def _setup(self, train: Ratings, spec, run):
        self.spec = spec
        self.data = interactions.build_implicit_data(train.users, train.items,
                                                     implicit_values(train, "ials"),
                                                     n_users=train.n_users, n_items=train.n_items)
        self.seen = (np.asarray(self.data.user_indptr, np.int64), np.asarray(self.data.user_items))
        self.hp = hyperparameters(spec)
        v = np.asarray(train.ratings, np.float64)
        self.max_confidence = 1.0 + spec.alpha * (float(v.max()) if v.size else 0.0)
        return host_init(run.seed, train.n_users, train.n_items, spec.rank, 1, spec.init_scale, 0.0)

    def put(self, x):
        """A host array on the device."""
        return jnp.asarray(x)

    def params(self, state: ALSState) -> Params:
        """The model the state holds (biases and global bias 0)."""
        return state.params

    def restore(self, state: ALSState, leaves: list) -> ALSState:
        """The state from a checkpoint's host leaves."""
        return restore_leaves(state, leaves)

    def finalize(self, state, params: Params) -> Params:
        """User factors re-solved exactly against the item factors (module docstring)."""
        return _resolve_users(params, self.data, self.hp)

    def posterior(self, state, params):
        return None

    def divergence_hint(self) -> str:
        return (f"the confidences 1 + alpha * value reach {self.max_confidence:g}: lower alpha "
                f"(now {self.spec.alpha:g}) or rescale the values, and keep reg > 0 (now "
                f"{self.spec.reg:g})")


class ALSSolver(_IALSBase):
    """:class:`mfjax.ImplicitALS` with ``solver="als"``: one ALS sweep per step, items then users.

    The resolved spec decides the route: ``cg_steps=0`` solves both half-steps exactly
    (Cholesky) through ONE compiled program (:func:`mfjax.models.implicit_als.steps.half_step_exact`,
    on padded shapes shared by the two sides); ``cg_steps=n`` takes n warm-started
    conjugate-gradient steps per row (:func:`mfjax.models.implicit_als.steps.half_step_cg`) and
    re-solves the users exactly once at the end. ``kernel=True`` runs either by the
    threaded C++ kernel (:mod:`mfjax.kernels.ials`, the same outputs).
    """

    #: Chunking of the XLA half-steps: blocks of 64 interactions per Gram matmul are
    #: ~5 % faster than 32 on ML-1M (rank 64) at the same compile time.
    CHUNKS = dict(chunk_rows=256, chunk_nnz=2048, block=64)

    def init(self, train: Ratings, spec, run) -> ALSState:
        """Lay out the interactions (CSR both ways) and draw the initial factors."""
        self.method = "cg" if spec.cg_steps else "cholesky"
        self.cg_steps = spec.cg_steps
        p = self._setup(train, spec, run)
        self.on_mesh, self.use_kernel = None, bool(spec.kernel)
        # A one-device mesh (mesh="auto" on one device) runs the one-device path, kernel
        # included: the sharded half-step would only add collectives over one device.
        if run.mesh is not None and run.mesh.size > 1:
            self.on_mesh = MeshALS(self.data, run.mesh, self.hp, self.method,
                                   self.cg_steps, self.CHUNKS)
            self.facts["table_sharding"] = "rows split over every device per half-step"
            p = self.on_mesh.place(p)
        else:  # both half-steps run ONE executable on padded shapes
            self.sides = ials_layout.shared_layouts(self.data)
            self.n_pad = int(self.sides[0].indptr.shape[0]) - 1
        self.facts["als_method"] = self.method
        self.priors = self._priors(train, spec, run)
        self._padded = None  # (P, P zero-padded, Q, Q zero-padded) of the last step
        self._exact = False  # whether the state's users are exact for its items
        return ALSState(p, (), 0)

    def _priors(self, train, spec, run):
        """The feature priors of ``fit(..., features=F)`` (:mod:`mfjax.models.implicit_als.priors`),
        or None. They run on the one-device XLA half-steps only (resolve turns the
        kernel off); a multi-device mesh is refused rather than dropping them."""
        if run.features is None:
            return None
        if self.on_mesh is not None:
            raise ValueError("fit: ImplicitALS with features= runs on one device; the mesh "
                             "half-steps take no feature prior (pass mesh=None)")
        if self.use_kernel:
            raise ValueError("fit: ImplicitALS with features= needs kernel=False (the C++ "
                             "half-step takes no prior term)")
        self.facts["feature_prior"] = "XLA half-steps with the prior term, ridge maps on the host"
        d = self.data
        return Priors(run.features, train.user_ids, train.item_ids, np.diff(d.user_indptr),
                      np.diff(d.item_indptr), spec.feature_reg)

    def _prior(self, side: str, X):
        """The padded prior means of ``side`` from its table X, or None without features."""
        if self.priors is None:
            return None
        return _pad_rows(self.priors.means(side, X).astype(np.asarray(X).dtype), self.n_pad)

    def _half_step(self, other, side, x0, with_observed=True, prior=None):
        if prior is not None:
            if self.method == "cg":
                return st.half_step_cg(other, side, x0, cg_steps=self.cg_steps, **self.hp,
                                       chunk_rows=self.CHUNKS["chunk_rows"],
                                       chunk_nnz=self.CHUNKS["chunk_nnz"], prior=prior)
            return st.half_step_exact(other, side, **self.hp, **self.CHUNKS, prior=prior)
        if self.method == "cg":
            if self.use_kernel:
                return ik.half_step_cg(other, side, x0, cg_steps=self.cg_steps, **self.hp,
                                       with_observed=with_observed)
            return st.half_step_cg(other, side, x0, cg_steps=self.cg_steps, **self.hp,
                                   chunk_rows=self.CHUNKS["chunk_rows"],
                                   chunk_nnz=self.CHUNKS["chunk_nnz"])
        if self.use_kernel:
            return ik.half_step(other, side, **self.hp)
        return st.half_step_exact(other, side, **self.hp, **self.CHUNKS)

    def step(self, state: ALSState) -> tuple[ALSState, dict]:
        """One sweep: items, then users (both exact, or both by CG)."""
        if self.on_mesh is not None:
            params, value = self.on_mesh.sweep(state.params)
        else:
            P, Q = state.params.user_factors, state.params.item_factors
            last = self._padded
            Pp = last[1] if last is not None and last[0] is P else _pad_rows(P, self.n_pad)
            Qp = None
            if self.method == "cg":  # the warm start of the item half-step
                Qp = last[3] if last is not None and last[2] is Q else _pad_rows(Q, self.n_pad)
            users, items = self.sides
            prior_items, prior_users = self._prior("items", Q), self._prior("users", P)
            Qp, _, penalty_items = self._half_step(Pp, items, Qp, with_observed=False,
                                                   prior=prior_items)
            Pp, value_users, _ = self._half_step(Qp, users, Pp, prior=prior_users)
            P, Q = _rows(Pp, self.data.n_users), _rows(Qp, self.data.n_items)
            self._padded = (P, Pp, Q, Qp)
            params = state.params._replace(user_factors=P, item_factors=Q)
            value = ((float(value_users) + float(penalty_items))
                     / int(self.data.user_items.shape[0]))
        self._exact = self.method == "cholesky"
        ia.check_finite(self.hp, f"sweep {state.epoch + 1}", loss=value)
        return ALSState(params, (), state.epoch + 1), {"loss": value}

    def restore(self, state: ALSState, leaves: list) -> ALSState:
        """The state from a checkpoint's host leaves (saved after a step)."""
        self._exact = self.method == "cholesky"
        put = jnp.asarray if self.on_mesh is None else self.on_mesh.place
        return restore_leaves(state, leaves, put)

    def finalize(self, state, params: Params) -> Params:
        """:meth:`_finalize`'s factors, checked finite (:func:`~mfjax.models.implicit_als.solve.checked_factors`);
        with features, the feature-only rows then get their prior means
        (:meth:`mfjax.models.implicit_als.priors.Priors.filled`)."""
        params = ia.checked_factors(self._finalize(state, params), self.hp)
        if self.priors is None:
            return params
        P, Q = np.asarray(params.user_factors), np.asarray(params.item_factors)
        return params._replace(user_factors=jnp.asarray(self.priors.filled("users", P)),
                               item_factors=jnp.asarray(self.priors.filled("items", Q)))

    def _finalize(self, state, params: Params) -> Params:
        """Unchanged after an exact sweep (its user half-step is already exact; ``fit``
        returns the last state or, with patience, the best one, both from steps); after
        CG sweeps, or with no step run, the users get one exact re-solve. On a mesh,
        fetched to the host."""
        if self.on_mesh is not None:
            if not self._exact:
                params = self.on_mesh.resolve_users(self.on_mesh.place(distributed.to_host(params)))
            return jax.tree.map(jnp.asarray, distributed.to_host(params))
        if self._exact:
            return params
        if self.priors is not None:  # the exact user re-solve keeps the prior term
            P = params.user_factors
            Pp, _, _ = st.half_step_exact(_pad_rows(params.item_factors, self.n_pad),
                                          self.sides[0], **self.hp, **self.CHUNKS,
                                          prior=self._prior("users", P))
            return params._replace(user_factors=_rows(Pp, self.data.n_users))
        if self.use_kernel:
            return params._replace(user_factors=ik.solve_users(params.item_factors, self.data,
                                                               **self.hp))
        return super().finalize(state, params)


class IALSOptaxSolver(_IALSBase):
    """``objective="ials", solver="optax"``: full-batch gradient steps on the iALS L.

    Each epoch is ``STEPS`` updates of ``fit``'s optimizer on L / |S| (one jitted
    ``lax.scan``). Meant for checking :class:`ALSSolver` on small data. On a mesh the
    interactions are split over the ``data`` axis (weight-0 padding up to a multiple
    of it) and the tables placed by ``table_sharding``; XLA sums the gradient's parts.
    """

    STEPS = 10

    def init(self, train: Ratings, spec, run) -> ALSState:
        """Lay out the interactions and initialise the factors and the optimizer."""
        p = self._setup(train, spec, run)
        self.opt, d = make_optimizer(spec.optimizer, spec.learning_rate), self.data
        nnz = int(d.user_items.shape[0])
        self.place = None
        batch = (d.user_rows, d.user_items, d.user_values, None)
        if run.mesh is not None:
            self.place = pl = distributed.Placement(run.mesh, train.n_users, train.n_items,
                                                    run.table_sharding == "sharded")
            pad = -nnz % pl.data_size
            host = [np.pad(np.asarray(x), (0, pad)) for x in batch[:3]]
            weights = np.pad(np.ones(nnz, host[2].dtype), (0, pad))
            batch = tuple(pl.put_data(x) for x in (*host, weights))
            p = pl.put_tree(pl.pad_params(p))
        self.batch = batch
        self.run = jax.jit(functools.partial(_ials_epoch, self.opt, self.STEPS, nnz,
                                             (train.n_users, train.n_items)))
        opt_state = self.opt.init(p)
        return ALSState(p, opt_state if self.place is None else self.place.put_tree(opt_state), 0)

    def step(self, state: ALSState) -> tuple[ALSState, dict]:
        """``STEPS`` full-batch optimizer updates."""
        params, opt_state, value = self.run(state.params, state.opt_state, self.batch, self.hp)
        return ALSState(params, opt_state, state.epoch + 1), {"loss": float(value)}

    def params(self, state: ALSState) -> Params:
        """The model the state holds (mesh padding rows removed)."""
        return state.params if self.place is None else self.place.unpad_params(state.params)

    def restore(self, state: ALSState, leaves: list) -> ALSState:
        """The state from a checkpoint's host leaves, placed like ``state``."""
        return restore_leaves(state, leaves,
                              jnp.asarray if self.place is None else self.place.put_tree)

    def finalize(self, state, params: Params) -> Params:
        """The parameters as trained (no exact re-solve: this solver is the check);
        on a mesh, fetched to the host."""
        if self.place is None:
            return params
        return jax.tree.map(jnp.asarray, distributed.to_host(params))


def _ials_epoch(opt, steps, n, sizes, params, opt_state, batch, hp):
    users, items, values, weights = batch
    kw = dict(weights=weights, n_users=sizes[0], n_items=sizes[1], **hp)

    def body(carry, _):
        params, opt_state = carry
        g = im.manual_grad(params, users, items, values, **kw)
        g = jax.tree.map(lambda x: x / n, g)  # bias fields are 0
        updates, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), None, length=steps)
    return params, opt_state, im.loss(params, users, items, values, **kw) / n

