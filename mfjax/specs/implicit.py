"""Specs of the implicit-feedback models: :class:`ImplicitALS`, :class:`BPR`."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

from .base import (MAX_EPOCHS, MAX_RANK, Spec, check_choice, check_int, check_kernel, check_number,
                   check_optax_pair, check_optimizer, check_schedule)

__all__ = ["ImplicitALS", "BPR"]


@dataclasses.dataclass(frozen=True)
class ImplicitALS(Spec):
    """iALS: implicit-feedback MF by weighted alternating least squares.

    Minimises (:mod:`mfjax.objectives.ials`), with confidence ``c = 1 + alpha·v``,

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

    def _check(self, name, v):
        if name == "rank":
            return check_int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "alpha", "unobserved_weight"):
            return check_number(self, name, v)
        if name == "nu":
            return check_number(self, name, v, hi=1.0)
        if name == "epochs":
            return check_int(self, name, v, 1, MAX_EPOCHS)
        if name == "cg_steps":
            return check_int(self, name, v, 0, None, none=True)
        if name == "init_scale":
            return check_number(self, name, v, positive=True)
        if name == "kernel":
            return check_kernel(self, v)
        if name == "solver":
            return check_choice(self, name, v, ("als", "optax"))
        if name == "optimizer":
            return None if v is None else check_optimizer(self, v)
        if name == "learning_rate":
            return check_number(self, name, v, positive=True, none=True)
        return v

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


@dataclasses.dataclass(frozen=True)
class BPR(Spec):
    """Bayesian personalized ranking by Optax minibatches of sampled triples.

    Per triple (u, i, j), j drawn uniformly from u's unseen items (:mod:`mfjax.objectives.bpr`):

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

    def _check(self, name, v):
        if name == "rank":
            return check_int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "bias_reg"):
            return check_number(self, name, v, none=name == "bias_reg")
        if name == "optimizer":
            return check_optimizer(self, v)
        if name == "learning_rate":
            return check_number(self, name, v, positive=True, none=True)
        if name == "schedule":
            return check_schedule(self, v)
        if name == "epochs":
            return check_int(self, name, v, 1, MAX_EPOCHS)
        if name == "batch_size":
            return check_int(self, name, v, 1)
        if name == "init_scale":
            return check_number(self, name, v, positive=True)
        return v

    def _check_all(self):
        check_optax_pair(self)
