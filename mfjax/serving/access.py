"""The one place serving code reads how a model was trained: its spec and record.

Everything in :mod:`mfjax.serving` and :mod:`mfjax.evaluation` that needs the training
hyperparameters goes through :func:`hyperparameters` (the model package's
``row_hyperparameters`` of ``model.spec``) and :func:`objective_of` (``model.objective``,
the :class:`mfjax.objectives.Objective` record).
"""

from __future__ import annotations

__all__ = ["objective_of", "hyperparameters"]


def objective_of(model) -> str:
    """The name of the model's objective."""
    return model.objective.name


def hyperparameters(model) -> dict:
    """The hyperparameters the model's row solve needs (fold-in, partial fits), from
    ``model.spec`` by its package's ``row_hyperparameters``, plus ``"objective"`` and
    ``"solver"``; ``{}`` of them when the model has no row solve. A package whose
    training does not minimise its row objective adjusts them to the trained model
    by its optional ``calibrate_rows(model, hp) -> hp`` (BPR's fold-in λ)."""
    spec, parts = model.spec, model.record.parts
    rows = getattr(parts, "row_hyperparameters", None)
    hp = {} if rows is None else rows(spec)
    calibrate = getattr(parts, "calibrate_rows", None)
    if calibrate is not None and hp:
        hp = calibrate(model, hp)
    return {"objective": model.objective.name, "solver": spec.solver, **hp}
