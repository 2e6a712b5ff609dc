"""The :class:`LogisticMF` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...specs.base import Spec, check_int, positive, rank_check, steps_check

__all__ = ["LogisticMF"]


@dataclasses.dataclass(frozen=True)
class LogisticMF(Spec):
    """Logistic MF for implicit feedback (Johnson 2014) by alternating Newton-CG sweeps.

    Every (user, item) pair is a Bernoulli trial with logit x_ui = b_u + b_i + <p_u, q_i>;
    an interaction of value v counts c = α v times as a like, every pair once as a
    dislike (:mod:`mfjax.models.logistic_mf.objective`):

        L = Σ_u Σ_i softplus(x_ui) + Σ_(u,i)∈S c_ui softplus(−x_ui)
            + ½ λ (‖P‖² + ‖Q‖²) + ½ λ_b (‖b_u‖² + ‖b_i‖²).

    The penalty is on the whole tables (not per interaction), so λ grows with the number
    of items a user's sum runs over; the defaults were tuned on a validation split of
    the training part of ML-1M binarized at rating >= 4 (``benchmarks/bench_logistic_mf.py
    --tune``; validation NDCG@10 0.210 at these defaults, 0.208 with 8 sweeps of 2 CG
    steps, 0.198 with 4 sweeps, 0.115 with 1 CG step; λ 60/150 and α 24 lower;
    ``benchmarks/RESULTS.md``).

    Attributes:
        rank: latent factors k.
        reg: λ on the factors (> 0).
        bias_reg: λ_b on the biases (> 0: a row's problem is then strictly convex).
        alpha: α, the confidence c = α v of an interaction of value v.
        epochs: sweeps (items, then users: :mod:`mfjax.models.logistic_mf.solver`).
        cg_steps: conjugate-gradient steps per row and half-step.
        init_scale: standard deviation of the initial factors.
    """

    objective: ClassVar[str] = "logistic"
    solver_name: ClassVar[str] = "newton"

    rank: int = 32
    reg: float = 100.0
    bias_reg: float = 1.0
    alpha: float = 16.0
    epochs: int = 6
    cg_steps: int = 3
    init_scale: float = 0.01

    CHECKS: ClassVar[dict] = {"rank": rank_check, "reg": positive, "bias_reg": positive,
                              "alpha": positive, "epochs": steps_check,
                              "cg_steps": lambda s, n, v: check_int(s, n, v, 1, 64),
                              "init_scale": positive}
