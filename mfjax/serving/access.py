"""The one place serving code reads how a model was trained: its spec and objective.

Everything in :mod:`mfjax.serving` and :mod:`mfjax.evaluation` that needs the training
hyperparameters goes through :func:`hyperparameters` (from ``model.spec``) and
:func:`objective_of` (``model.objective``, the :class:`mfjax.objectives.Objective`
record).
"""

from __future__ import annotations

__all__ = ["objective_of", "hyperparameters", "BAYESIAN_FOLD_IN_REG"]

#: λ (and λ_b) of the ridge fold-in of a Bayesian MF model, which learned its own
#: regularization and so has no ``reg`` (MF's default).
BAYESIAN_FOLD_IN_REG = 0.1


def objective_of(model) -> str:
    """``"explicit"``, ``"ials"`` or ``"bpr"``: the name of the model's objective."""
    return model.objective.name


def hyperparameters(model) -> dict:
    """The training hyperparameters fold-in and partial fits need, from ``model.spec``.

    Returns:
        ``{"objective", "solver", "reg", "bias_reg", "alpha", "unobserved_weight",
        "nu"}``; a field the spec does not have is None (``bias_reg`` None means λ, as
        in ``fit``). A Bayesian MF model's ``reg`` is :data:`BAYESIAN_FOLD_IN_REG`.
    """
    spec = model.spec
    reg = getattr(spec, "reg", None)
    if reg is None and not model.objective.ranking:
        reg = BAYESIAN_FOLD_IN_REG
    return {"objective": model.objective.name, "solver": spec.solver, "reg": reg,
            "bias_reg": getattr(spec, "bias_reg", None),
            **{k: getattr(spec, k, None) for k in ("alpha", "unobserved_weight", "nu")}}
