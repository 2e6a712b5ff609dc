"""The :class:`BayesianMF` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from ...specs.base import (GRADIENTS, MAX_EPOCHS, OPTAX_CHECKS, Spec, check_choice, check_int,
                   check_optax_pair, kernel_check, non_negative, non_negative_or_none, positive,
                   rank_check, steps_check)

__all__ = ["BayesianMF"]


@dataclasses.dataclass(frozen=True)
class BayesianMF(Spec):
    """Bayesian PMF with biases (Salakhutdinov & Mnih 2008) by Gibbs sampling.

    The regularization is learned from Normal-Wishart hyperpriors. A run is
    ``burn_in + samples`` sweeps; the model is the posterior mean of the kept samples
    (every one, or every t-th when they would exceed a 1 GiB budget), and keeps the
    per-sample biases and noise precisions for ``predict(..., return_std=True)``.

    Attributes:
        rank: latent factors k of each sample.
        burn_in: sweeps discarded first.
        samples: sweeps averaged after burn-in.
        init_scale: standard deviation of the initial factors.
        kernel: draw the rows with the threaded C++ kernel (:mod:`mfjax.kernels.als`):
            ``"auto"`` on one CPU device when it is compiled, ``True`` requires it,
            ``False`` uses XLA. The same normals either way, so the same chain up to
            rounding.
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "gibbs"

    rank: int = 12
    burn_in: int = 10
    samples: int = 90
    init_scale: float = 0.1
    kernel: Any = "auto"

    CHECKS: ClassVar[dict] = {
        "rank": rank_check, "burn_in": lambda s, n, v: check_int(s, n, v, 0, MAX_EPOCHS),
        "samples": steps_check, "init_scale": positive, "kernel": kernel_check}

    @property
    def n_steps(self) -> int:
        return self.burn_in + self.samples
