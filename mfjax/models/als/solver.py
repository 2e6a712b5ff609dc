"""The exact ALS solver behind ``fit(train, mfjax.ALS(...))``.

One jitted sweep per ``fit`` epoch of the shared exact engine
(:func:`mfjax.solvers.als.solver.als_step`: exact block-coordinate descent on
:func:`mfjax.loss`, users, then items, then μ), so the objective reported in ``history``
never increases. The state is ``ALSState(params, sweep)``. With ``kernel`` resolved to
True both half-steps run the threaded C++ kernel (:mod:`mfjax.kernels.als`, the same
outputs).
"""
from __future__ import annotations

from typing import NamedTuple

from ...data import Ratings
from ...kernels import als as als_kernel
from ...objectives.explicit import Params
from ...solvers import finite
from ...solvers.als.solver import ExactBase, als_step, init_params

__all__ = ["ALSState", "ALSSolver"]


class ALSState(NamedTuple):
    """``params``: the current model; ``sweep``: sweeps done."""

    params: Params
    sweep: int


class ALSSolver(ExactBase):
    """:class:`mfjax.ALS`: one exact ALS sweep per epoch (see the module docstring).

    ``history[j]["loss"]`` is :func:`mfjax.loss` per rating after sweep j+1, non-increasing.
    """

    def init(self, train: Ratings, spec, run) -> ALSState:
        self._setup(train, spec, run)
        self.reg = spec.reg
        self.bias_reg = spec.reg if spec.bias_reg is None else spec.bias_reg
        self.kernel_threads = als_kernel.threads() if spec.kernel else 0
        return ALSState(init_params(train, spec, run.seed, self.dtype), 0)

    def step(self, state: ALSState):
        p, loss = als_step(state.params, self.layout, self.reg, self.bias_reg, window=self.window,
                           kernel_threads=self.kernel_threads)
        finite.check_sweep("als", state.sweep + 1, float(loss), self.layout.users.ratings, self.reg)
        return ALSState(p, state.sweep + 1), {"loss": float(loss)}

    def params(self, state: ALSState) -> Params:
        return state.params

    def divergence_hint(self) -> str:
        return (f"a row's least-squares system is singular or overflows: use reg > 0 (now "
                f"{self.reg}) and check the rating magnitudes")
