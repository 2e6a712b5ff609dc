"""A saved model's config checked as a whole: its fields agree with each other and the arrays.

:func:`mfjax.persistence.read_model` checks each config field alone; :func:`check_agreement`
then refuses a config whose ``objective`` is unknown or not the one its model trains,
whose ``solver`` is not its model's, that holds fields of another model than its
``"model"``, or whose ``rank`` does not match the factor arrays (a Gibbs model's are
``rank`` times its S posterior samples wide).
"""
from __future__ import annotations

__all__ = ["check_agreement"]

#: Config keys that are not spec fields of the model they describe, whatever it is.
_NOT_SPEC_FIELDS = ("objective", "solver")


def check_agreement(config: dict, spec, params, posterior, where: str) -> None:
    """Refuse a ``config`` (of the spec ``spec``) that disagrees with itself or ``params``.

    Args:
        config: the model's config, each field already valid alone.
        spec: ``spec_of_config(config)``.
        params: the model's :class:`~mfjax.Params`.
        posterior: the Gibbs posterior arrays, or None.
        where: the file, for messages.

    Raises:
        ValueError: naming ``where`` and the fields that disagree.
    """
    from . import models

    name = type(spec).__name__
    keeps_posterior = hasattr(models.record_of(spec).parts, "check_posterior")
    objective = config.get("objective", "explicit")
    if not isinstance(objective, str) or objective not in models.objective_names():
        raise ValueError(f"{where}: config['objective'] = {_short(objective)} is not an "
                         f"objective; known: {sorted(models.objective_names())}")
    if objective != spec.objective:
        said = (f"config['objective'] = {objective!r}" if "objective" in config
                else "config has no 'objective' (so 'explicit') and")
        raise ValueError(f"{where}: {said} disagrees with its model {name}, which trains the "
                         f"{spec.objective!r} objective")
    if "model" in config:
        solver = config.get("solver")
        if solver is not None and solver != spec.solver:
            raise ValueError(f"{where}: config['solver'] = {_short(solver)} disagrees with "
                             f"config['model'] = {name!r}, whose solver is {spec.solver!r}")
        others = {f for r in models.REGISTRY.values() for f in r.spec.field_names()}
        foreign = sorted(k for k in config if k in others and k not in spec.field_names()
                         and k not in _NOT_SPEC_FIELDS)
        if foreign:
            raise ValueError(f"{where}: config holds {', '.join(foreign)}, not field(s) of its "
                             f"config['model'] = {name!r} (fields of another model)")
    if posterior is not None and not keeps_posterior:
        raise ValueError(f"{where}: the file holds Gibbs posterior arrays but its model is {name}")
    rank = config.get("rank")
    if rank is not None:
        width = params.user_factors.shape[1]
        samples = 1 if posterior is None else int(posterior["tau"].shape[0])
        if posterior is None and keeps_posterior:  # S samples side by side, S unknown
            samples = max(1, width // rank)
        if width != rank * samples:
            each = "" if posterior is None else f" x {samples} posterior samples"
            raise ValueError(f"{where}: config['rank'] = {rank}{each} disagrees with the factor "
                             f"arrays, which have {width} columns")


def _short(x, n: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= n else text[:n] + "..."
