"""The :class:`LogisticMF` spec (fields only; no solver is written yet)."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...specs.base import Spec, non_negative, positive, rank_check, steps_check

__all__ = ["LogisticMF"]


@dataclasses.dataclass(frozen=True)
class LogisticMF(Spec):
    """Logistic MF for implicit feedback (Johnson 2014), objective in
    :mod:`mfjax.models.logistic_mf.objective`.

    Attributes:
        rank: latent factors k.
        reg: λ on the factors.
        bias_reg: λ_b on the biases.
        alpha: α, the confidence c = α r of an interaction of value r.
        epochs: sweeps.
        init_scale: standard deviation of the initial factors.

    The defaults are NOT tuned yet (no solver exists to tune them with).
    """

    objective: ClassVar[str] = "logistic"
    solver_name: ClassVar[str] = "newton"

    rank: int = 32
    reg: float = 1.0
    bias_reg: float = 1.0
    alpha: float = 8.0
    epochs: int = 10
    init_scale: float = 0.01

    CHECKS: ClassVar[dict] = {"rank": rank_check, "reg": non_negative, "bias_reg": non_negative,
                              "alpha": positive, "epochs": steps_check, "init_scale": positive}
