"""The :class:`BPR` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np

from ...specs.base import (OPTAX_CHECKS, field_name, Spec, check_choice, check_int, check_number, check_optax_pair,
                   check_optimizer, kernel_check, non_negative, non_negative_or_none, positive,
                   positive_or_none, rank_check, steps_check)

__all__ = ["BPR", "LOSSES", "check_bool"]


@dataclasses.dataclass(frozen=True)
class BPR(Spec):
    """Bayesian personalized ranking by Optax minibatches of sampled triples.

    Per triple (u, i, j), j drawn uniformly from u's unseen items (:mod:`mfjax.models.bpr.objective`):

        ℓ = −log σ(b_i − b_j + <p_u, q_i − q_j>) + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)
            + ½ λ_b (b_i² + b_j²).

    ``loss="warp"`` (:mod:`mfjax.models.bpr.warp`) replaces −log σ(x) by the WARP term
    r_N · max(0, 1 − x), j the first of ``max_sampled`` negatives that violates the
    margin and r_N = log⌊(n_items − 1) / N⌋ after N tries. With ``fit(..., features=F)``
    (:mod:`mfjax.models.bpr.hybrid`) each vector and item bias is the sum of its
    feature embeddings (LightFM-style), plus its own identity embedding.

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
        loss: ``"bpr"`` (the log-sigmoid above) or ``"warp"`` (the weighted margin rank
            loss of Weston et al. 2011, as LightFM implements it).
        max_sampled: ``loss="warp"`` only: negatives tried per positive (``None``: 10,
            LightFM's default); refused with ``loss="bpr"``.
        identity_features: with ``features=``: whether a row with interactions keeps
            its own (identity) embedding beside its feature embeddings (True, LightFM's
            default hybrid: warm rows lose nothing) or is its features alone (False,
            "features only"; on a side with features). A row without features always
            keeps its identity embedding. ``False`` without ``features=`` is refused at
            ``fit``.
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
    loss: str = "bpr"
    max_sampled: int | None = None
    identity_features: bool = True

    #: ``learning_rate`` when none is given and no schedule is.
    DEFAULT_LEARNING_RATE: ClassVar[float] = 0.01

    CHECKS: ClassVar[dict] = {"rank": rank_check, "reg": non_negative,
                              "bias_reg": non_negative_or_none, **OPTAX_CHECKS,
                              "epochs": steps_check,
                              "batch_size": lambda s, n, v: check_int(s, n, v, 1),
                              "init_scale": positive,
                              "loss": lambda s, n, v: check_choice(s, n, v, LOSSES),
                              "max_sampled": lambda s, n, v: check_int(s, n, v, 1, 1 << 16,
                                                                       none=True),
                              "identity_features": lambda s, n, v: check_bool(s, n, v)}

    def _check_all(self):
        check_optax_pair(self)
        if self.loss != "warp" and self.max_sampled is not None:
            raise ValueError(f"BPR: max_sampled={self.max_sampled} applies to loss='warp' only "
                             f"(loss={self.loss!r} draws one negative per positive)")


#: The pairwise losses :class:`BPR` trains with.
LOSSES = ("bpr", "warp")


def check_bool(spec, name, v):
    """``v`` as a bool; TypeError naming the field for anything else."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{field_name(spec, name)} must be True or False, got {v!r} "
                        f"({type(v).__name__})")
    return bool(v)
