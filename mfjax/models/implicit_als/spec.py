"""The :class:`ImplicitALS` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from ...specs.base import (OPTAX_CHECKS, Spec, check_choice, check_int, check_number, check_optax_pair,
                   check_optimizer, kernel_check, non_negative, non_negative_or_none, positive,
                   positive_or_none, rank_check, steps_check)

__all__ = ["ImplicitALS"]


@dataclasses.dataclass(frozen=True)
class ImplicitALS(Spec):
    """iALS: implicit-feedback MF by weighted alternating least squares.

    Minimises (:mod:`mfjax.models.implicit_als.objective`), with confidence ``c = 1 + alpha·v``,

        L = Σ_(u,i)∈S c_ui (1 − <p_u, q_i>)² + α0 Σ_u Σ_i <p_u, q_i>²
            + λ [Σ_u λ̃_u ‖p_u‖² + Σ_i λ̃_i ‖q_i‖²],   λ̃_u = (|I_u| + α0 n_items)^ν.

    Attributes:
        rank: latent factors k.
        reg: λ.
        alpha: α, the confidence slope of an interaction's value.
        unobserved_weight: α0, the weight of every (user, item) pair.
        nu: ν in [0, 1], the frequency scaling of the regularization.
        epochs: sweeps (items, then users).
        cg_steps: ``solver="als"``: conjugate-gradient steps per row (1..rank), or 0 for
            exact (Cholesky) solves; ``None``: 3 on a CPU backend, exact elsewhere. After
            CG sweeps the users are re-solved exactly once.
        init_scale: standard deviation of the initial factors.
        kernel: ``solver="als"``: the threaded C++ half-steps (:mod:`mfjax.kernels.ials`):
            ``"auto"`` on one CPU device when it builds, ``True`` requires it, ``False``
            uses XLA. Same results either way.
        solver: ``"als"`` (alternating solves) or ``"optax"`` (full-batch gradient steps
            on the same L, a slow check of the ALS solver).
        optimizer: ``solver="optax"`` only: a name in :data:`mfjax.OPTIMIZERS` (``None``:
            ``"adam"``).
        learning_rate: ``solver="optax"`` only (``None``: the optimizer's default).
        feature_reg: λ_A, the ridge of the feature maps A, B of ``fit(...,
            features=F)`` (:mod:`mfjax.models.implicit_als.priors`: each row's vector has a
            prior centred on A f_u / B g_i, the maps re-solved by ridge regression each
            sweep); unused without features.
    """

    objective: ClassVar[str] = "ials"

    rank: int = 64
    reg: float = 0.01
    alpha: float = 1.0
    unobserved_weight: float = 0.3
    nu: float = 1.0
    epochs: int = 4
    cg_steps: int | None = None
    init_scale: float = 0.01
    kernel: Any = "auto"
    solver: str = "als"  # type: ignore[assignment]
    optimizer: Any = None
    learning_rate: float | None = None
    feature_reg: float = 1.0

    CHECKS: ClassVar[dict] = {
        "rank": rank_check, "reg": non_negative, "alpha": non_negative,
        "unobserved_weight": non_negative,
        "nu": lambda s, n, v: check_number(s, n, v, hi=1.0), "epochs": steps_check,
        "cg_steps": lambda s, n, v: check_int(s, n, v, 0, None, none=True),
        "init_scale": positive, "kernel": kernel_check,
        "solver": lambda s, n, v: check_choice(s, n, v, ("als", "optax")),
        "optimizer": lambda s, n, v: None if v is None else check_optimizer(s, v),
        "learning_rate": positive_or_none, "feature_reg": non_negative,
    }

    def _check_all(self):
        if self.cg_steps is not None and self.cg_steps > self.rank:
            raise ValueError(f"ImplicitALS: cg_steps must be <= rank={self.rank} (conjugate "
                             f"gradient solves a rank x rank system exactly in rank steps), got "
                             f"{self.cg_steps}; cg_steps=0 asks for exact solves")
        if self.solver == "als" and (self.optimizer is not None or self.learning_rate is not None):
            raise ValueError("ImplicitALS: optimizer and learning_rate apply to solver='optax' "
                             "only; solver='als' solves each half-step exactly or by CG")
        if self.solver == "optax" and (self.cg_steps is not None or self.kernel is True):
            raise ValueError("ImplicitALS: cg_steps and kernel apply to solver='als' only")
        if self.solver == "optax" and not isinstance(self.optimizer, (str, type(None))):
            raise ValueError("ImplicitALS: solver='optax' takes an optimizer name")
