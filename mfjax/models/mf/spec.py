"""The :class:`MF` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from ...specs.base import (GRADIENTS, MAX_EPOCHS, OPTAX_CHECKS, Spec, check_choice, check_int,
                   check_optax_pair, kernel_check, non_negative, non_negative_or_none, positive,
                   rank_check, steps_check)

__all__ = ["MF"]


@dataclasses.dataclass(frozen=True)
class MF(Spec):
    """Explicit biased MF by Optax minibatches (the seed notebook's model).

    ``r̂(u,i) = μ + b_u + b_i + <p_u, q_i>``, minimising :func:`mfjax.loss` (squared error
    plus ``reg``·(‖p_u‖² + ‖q_i‖²) and ``bias_reg``·(b_u² + b_i²), per rating).

    Attributes:
        rank: latent factors k.
        reg: λ, L2 weight on the factors.
        bias_reg: λ_b, L2 weight on the biases; ``None``: ``reg``.
        optimizer: a name in :data:`mfjax.OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size of a named optimizer; ``None``: the name's default.
        schedule: an optax schedule (step -> rate; steps count minibatches) instead of
            ``learning_rate``.
        epochs: passes over the data.
        batch_size: ratings per minibatch; ``None``: about 1/20 of the data
            (:func:`mfjax.auto_batch_size`).
        gradient: ``"autodiff"``, ``"manual"``, ``"blocked"``, ``"fused"`` or ``"auto"``
            (``jax.grad`` below 2^20 ratings; above, the fused C++ kernel on one CPU
            device, else blocked). All give the same trajectory to float tolerance.
        sort_by: ``"users"``, ``"items"`` or ``"auto"``: the key minibatches are grouped
            by (speed only).
        ensemble: members of rank ``rank / ensemble`` trained side by side and averaged
            into one rank-k model; ``"auto"``: members of rank >= 8, at most 16.
        init_scale: standard deviation of the initial factors.
        optimizer_name: a name for a custom optimizer/schedule (stored in models and
            checkpoints; resuming with one needs it).
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "optax"

    rank: int = 128
    reg: float = 0.1
    bias_reg: float | None = 0.01
    optimizer: Any = "adam"
    learning_rate: float | None = None
    schedule: Callable | None = None
    epochs: int = 25
    batch_size: int | None = None
    gradient: str = "auto"
    sort_by: str = "auto"
    ensemble: Any = "auto"
    init_scale: float = 0.1
    optimizer_name: str | None = None

    CHECKS: ClassVar[dict] = {
        "rank": rank_check, "reg": non_negative, "bias_reg": non_negative_or_none,
        **OPTAX_CHECKS, "epochs": steps_check,
        "batch_size": lambda s, n, v: check_int(s, n, v, 1, None, none=True),
        "gradient": lambda s, n, v: check_choice(s, n, v, GRADIENTS),
        "sort_by": lambda s, n, v: check_choice(s, n, v, ("auto", "users", "items")),
        "ensemble": lambda s, n, v: v if isinstance(v, str) and v == "auto" else rank_check(s, n, v),
        "init_scale": positive,
    }

    def _check_all(self):
        check_optax_pair(self)
        if self.ensemble != "auto" and self.rank % self.ensemble:
            raise ValueError(f"MF: ensemble must be 'auto' or a divisor of rank={self.rank}, "
                             f"got {self.ensemble}")
