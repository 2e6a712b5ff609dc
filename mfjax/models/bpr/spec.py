"""The :class:`BPR` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from ...specs.base import (OPTAX_CHECKS, Spec, check_choice, check_int, check_number, check_optax_pair,
                   check_optimizer, kernel_check, non_negative, non_negative_or_none, positive,
                   positive_or_none, rank_check, steps_check)

__all__ = ["BPR"]


@dataclasses.dataclass(frozen=True)
class BPR(Spec):
    """Bayesian personalized ranking by Optax minibatches of sampled triples.

    Per triple (u, i, j), j drawn uniformly from u's unseen items (:mod:`mfjax.models.bpr.objective`):

        ℓ = −log σ(b_i − b_j + <p_u, q_i − q_j>) + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)
            + ½ λ_b (b_i² + b_j²).

    Attributes:
        rank: latent factors k.
        reg: λ.
        bias_reg: λ_b on the item biases; ``None``: ``reg``.
        optimizer: a name in :data:`mfjax.OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size of a named optimizer; ``None``: 0.01 (no schedule).
        schedule: an optax schedule instead of ``learning_rate``.
        epochs: passes over the interactions (each with fresh negatives).
        batch_size: triples per minibatch.
        init_scale: standard deviation of the initial factors.
        optimizer_name: a name for a custom optimizer/schedule.
    """

    objective: ClassVar[str] = "bpr"
    solver_name: ClassVar[str] = "optax"

    rank: int = 64
    reg: float = 0.001
    bias_reg: float | None = 0.01
    optimizer: Any = "adam"
    learning_rate: float | None = None
    schedule: Callable | None = None
    epochs: int = 8
    batch_size: int = 8192
    init_scale: float = 0.01
    optimizer_name: str | None = None

    #: ``learning_rate`` when none is given and no schedule is.
    DEFAULT_LEARNING_RATE: ClassVar[float] = 0.01

    CHECKS: ClassVar[dict] = {"rank": rank_check, "reg": non_negative,
                              "bias_reg": non_negative_or_none, **OPTAX_CHECKS,
                              "epochs": steps_check,
                              "batch_size": lambda s, n, v: check_int(s, n, v, 1),
                              "init_scale": positive}

    def _check_all(self):
        check_optax_pair(self)
