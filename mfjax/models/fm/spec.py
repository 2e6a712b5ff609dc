"""The :class:`FM` spec: its fields, their defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import numpy as np

from ...specs.base import (OPTAX_CHECKS, Spec, check_int, check_optax_pair, field_name,
                           non_negative, non_negative_or_none, positive, rank_check, steps_check)

__all__ = ["FM"]


def bool_check(spec, name, v):
    """``v`` as a bool; anything but True/False is refused, naming the field."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{field_name(spec, name)} must be True or False, got {v!r} "
                        f"({type(v).__name__})")
    return bool(v)


@dataclasses.dataclass(frozen=True)
class FM(Spec):
    """A factorization machine over relation blocks, trained by Optax minibatches.

    The prediction of :class:`mfjax.BayesianFM` without the within-side pairs:

        ŷ(u,i) = μ + b_u + b_i + Σ_f w_f x_uf + Σ_g w_g x_ig
                 + ⟨v_u + Σ_f x_uf V_f, v_i + Σ_g x_ig V_g⟩

    x_u the user's feature row (attributes from ``fit(..., features=F)``, and with
    ``implicit_features`` the items it rated, scaled 1/√n_u), x_i the item's (attributes,
    and its raters scaled 1/√n_i). The objective and its hand-written gradient:
    :mod:`mfjax.models.fm.objective`.

    Attributes:
        rank: latent factors k.
        reg: λ, L2 weight on the factors (ID rows and feature rows), per rating that
            uses them.
        bias_reg: λ_b, L2 weight on the biases and linear feature weights; ``None``: ``reg``.
        optimizer: a name in :data:`mfjax.OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size of a named optimizer; ``None``: the name's default
            (Adam: 0.01; ML-1M's benchmark rows use 0.003).
        schedule: an optax schedule (step -> rate) instead of ``learning_rate``.
        epochs: passes over the data.
        batch_size: ratings per minibatch; ``None``: about 1/20 of the data.
        init_scale: standard deviation of the initial factors.
        implicit_features: add the "flipped SVD++" blocks, built from the training
            ratings only (as BayesianFM's).
        optimizer_name: a name for a custom optimizer/schedule.
    """

    objective: ClassVar[str] = "fm"
    solver_name: ClassVar[str] = "optax"

    rank: int = 32
    reg: float = 0.05
    bias_reg: float | None = None
    optimizer: Any = "adam"
    learning_rate: float | None = None
    schedule: Callable | None = None
    epochs: int = 30
    batch_size: int | None = None
    init_scale: float = 0.05
    implicit_features: bool = False
    optimizer_name: str | None = None

    CHECKS: ClassVar[dict] = {
        "rank": rank_check, "reg": non_negative, "bias_reg": non_negative_or_none,
        **OPTAX_CHECKS, "epochs": steps_check,
        "batch_size": lambda s, n, v: check_int(s, n, v, 1, None, none=True),
        "init_scale": positive, "implicit_features": bool_check,
    }

    def _check_all(self):
        check_optax_pair(self)
