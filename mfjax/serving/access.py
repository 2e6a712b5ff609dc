"""The one place serving code reads a model's objective and hyperparameters.

Everything in :mod:`mfjax.serving` and :mod:`mfjax.evaluation` that needs to
know how a model was trained goes through :func:`objective_of` and
:func:`hyperparameters`, so that the storage of the training configuration
(today ``Model.config``, a JSON dict) can change in one function.
"""

from __future__ import annotations

__all__ = ["objective_of", "hyperparameters", "IMPLICIT_OBJECTIVES"]

#: Objectives trained on implicit feedback (no ratings, no user/item bias meaning).
IMPLICIT_OBJECTIVES = ("ials", "bpr")


def objective_of(model) -> str:
    """``"explicit"``, ``"ials"`` or ``"bpr"``: the loss the model was trained on."""
    return (model.config or {}).get("objective", "explicit")


def hyperparameters(model) -> dict:
    """The training hyperparameters fold-in and partial fits need.

    Returns:
        ``{"objective", "solver", "reg", "bias_reg", "alpha", "unobserved_weight",
        "nu"}``; an entry the model does not record is None (``bias_reg`` None
        means λ, as in ``fit``).
    """
    config = model.config or {}
    options = config.get("options") or {}
    return {
        "objective": objective_of(model),
        "solver": config.get("solver"),
        "reg": config.get("reg"),
        "bias_reg": config.get("bias_reg"),
        "alpha": options.get("alpha"),
        "unobserved_weight": options.get("unobserved_weight"),
        "nu": options.get("nu"),
    }
