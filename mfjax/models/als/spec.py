"""The :class:`ALS` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from ...specs.base import (GRADIENTS, MAX_EPOCHS, OPTAX_CHECKS, Spec, check_choice, check_int,
                   check_optax_pair, kernel_check, non_negative, non_negative_or_none, positive,
                   rank_check, steps_check)

__all__ = ["ALS"]


@dataclasses.dataclass(frozen=True)
class ALS(Spec):
    """Explicit biased MF by exact alternating least squares (users, items, then μ).

    Each sweep minimises :func:`mfjax.loss` exactly over one block, so the objective
    never increases; a few sweeps suffice.

    Attributes:
        rank: latent factors k.
        reg: λ, L2 weight on the factors (per rating).
        bias_reg: λ_b on the biases; ``None``: ``reg``.
        epochs: sweeps.
        init_scale: standard deviation of the initial factors.
        kernel: the threaded C++ half-step (:mod:`mfjax.kernels.als`): ``"auto"`` on one
            CPU device when it builds, ``True`` requires it, ``False`` uses XLA.
            Same results either way.
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "als"

    rank: int = 10
    reg: float = 0.08
    bias_reg: float | None = 0.01
    epochs: int = 6
    init_scale: float = 0.1
    kernel: Any = "auto"

    CHECKS: ClassVar[dict] = {"rank": rank_check, "reg": non_negative,
                              "bias_reg": non_negative_or_none, "epochs": steps_check,
                              "init_scale": positive, "kernel": kernel_check}
