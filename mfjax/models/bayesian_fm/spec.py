"""The :class:`BayesianFM` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ...specs.base import (MAX_EPOCHS, Spec, check_int, field_name, kernel_check, positive,
                           rank_check, steps_check)

__all__ = ["BayesianFM"]


def _bool_check(spec, name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{field_name(spec, name)} must be True or False, got {v!r} "
                        f"({type(v).__name__})")
    return bool(v)


@dataclasses.dataclass(frozen=True)
class BayesianFM(Spec):
    """A Bayesian factorization machine (Rendle 2013; myFM) sampled by block Gibbs.

    The FM's design row of a rating is [user one-hot | item one-hot | user features |
    item features | implicit blocks], evaluated by relation blocks (each distinct user
    and item row once per sweep). With only the one-hots it is biased Bayesian MF with
    grouped (per-dimension Normal-Gamma) priors. Model, priors and conditionals:
    :mod:`mfjax.models.bayesian_fm.sampler`.

    Features come from ``fit(train, spec, features=F)`` (a :class:`mfjax.Features`);
    every feature group gets its own prior.

    Attributes:
        rank: latent factors k of each sample.
        burn_in: sweeps discarded first.
        samples: sweeps averaged after burn-in.
        init_scale: standard deviation of the initial factors.
        implicit_features: add the "flipped SVD++" blocks, built from the training
            ratings only: each user's rated items and each item's raters, scaled 1/√n.
        kernel: draw the ID rows with Bayesian MF's C++ kernel (``"auto"``: on one CPU
            device when it is compiled; ``True`` requires it; ``False``: XLA).
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "gibbs"

    rank: int = 16
    burn_in: int = 10
    samples: int = 90
    init_scale: float = 0.1
    implicit_features: bool = True
    kernel: Any = "auto"

    CHECKS: ClassVar[dict] = {
        "rank": rank_check, "burn_in": lambda s, n, v: check_int(s, n, v, 0, MAX_EPOCHS),
        "samples": steps_check, "init_scale": positive, "implicit_features": _bool_check,
        "kernel": kernel_check}

    @property
    def n_steps(self) -> int:
        return self.burn_in + self.samples
