"""Which objective a model was trained with: ONE accessor over how the model records it.

Serving and evaluation code ask :func:`objective_name` / :func:`is_implicit` instead of
reading ``model.config`` themselves, so a change in where a model keeps its objective
(e.g. a resolved spec with ``model.objective.name``) is a change here only.
"""
from __future__ import annotations

__all__ = ["objective_name", "is_implicit"]


def objective_name(model) -> str:
    """``"explicit"``, ``"ials"`` or ``"bpr"``: the objective ``model`` was trained with."""
    record = getattr(model, "objective", None)
    name = getattr(record, "name", None)
    if isinstance(name, str):
        return name
    return (getattr(model, "config", None) or {}).get("objective", "explicit")


def is_implicit(model) -> bool:
    """Whether ``model`` scores implicit feedback (iALS, BPR): its scores are not ratings."""
    return objective_name(model) != "explicit"
