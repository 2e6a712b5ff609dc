"""The model registry: one package per model, one registration line each.

:data:`REGISTRY` maps a spec class name to its :class:`ModelRecord`
(``REGISTRY["ALS"].spec is mfjax.ALS``). Every table the shared layers need (the spec
classes by name, the solvers, the objectives, the row solves, the CLI's choices) is
derived from it; adding a model is one package under ``mfjax/models/`` plus its line in
:data:`PACKAGES`. Importing this module does not import JAX (the records load their
package's ``parts`` on first use).

Layering: the shared layers (``training``, ``serving``, ``selection``, ``evaluation``,
persistence, the CLI) import the model packages; a model package imports the shared
engines below it (:mod:`mfjax.solvers`, :mod:`mfjax.objectives`) and
:mod:`mfjax.kernels` / :mod:`mfjax.data`, never another model package and never a
shared layer above it. An engine one model uses lives in its package; one several
models use lives in :mod:`mfjax.solvers` or :mod:`mfjax.objectives` (the rule and the
table are in :mod:`mfjax.solvers`).
"""
from __future__ import annotations

import importlib

from .record import ModelRecord

__all__ = ["ModelRecord", "REGISTRY", "PACKAGES", "record_of", "record_named", "records_for",
           "by_size", "holds_interactions", "default_record", "pick_record",
           "objective_named", "objective_names", "solver_names", "spec_from_dict",
           "spec_of_config", "params_type_of", "check_features", "SPECS"]

#: The registered model packages, in listing order (one line per model).
PACKAGES = (
    "mf",
    "als",
    "bayesian_mf",
    "bayesian_fm",
    "fm",
    "implicit_als",
    "bpr",
    "logistic_mf",
)

#: Spec class name -> :class:`ModelRecord`.
REGISTRY: dict[str, ModelRecord] = {}
for _package in PACKAGES:
    _record = importlib.import_module(f"{__name__}.{_package}").RECORD
    REGISTRY[_record.name] = _record
del _package, _record


def __getattr__(name):
    if name == "SPECS":  # every spec class by name (the ``"model"`` entry of saved specs)
        return {n: r.spec for n, r in REGISTRY.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def record_named(name, where: str = "model") -> ModelRecord:
    """The record of the spec class named ``name``.

    Raises:
        ValueError: naming ``where``, for an unknown name (the known ones are listed).
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"{where}: unknown model {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def record_of(spec) -> ModelRecord:
    """The record of a spec (an instance or a class).

    Raises:
        TypeError: ``spec`` is not a registered spec.
    """
    cls = spec if isinstance(spec, type) else type(spec)
    record = REGISTRY.get(cls.__name__)
    if record is None or record.spec is not cls:
        raise TypeError(f"{cls.__name__} is not a registered model spec; registered: "
                        f"{sorted(REGISTRY)}")
    return record


def objective_names() -> tuple:
    """Every registered objective's name, in registration order."""
    return tuple(dict.fromkeys(r.objective for r in REGISTRY.values()))


def solver_names(objective: str | None = None) -> tuple:
    """Every solver name (of ``objective``'s models, when given), in registration order."""
    return tuple(dict.fromkeys(s for r in REGISTRY.values()
                               if objective is None or r.objective == objective
                               for s in r.solvers))


def records_for(objective: str | None = None, solver: str | None = None) -> list:
    """The records of ``objective`` (any when None) that train with ``solver`` (any when None)."""
    return [r for r in REGISTRY.values() if (objective is None or r.objective == objective)
            and (solver is None or solver in r.solvers)]


def objective_named(name, where: str = "fit"):
    """The :class:`mfjax.objectives.Objective` record named ``name``.

    Raises:
        ValueError: naming ``where``, for an unknown name (the known ones are listed).
    """
    for r in REGISTRY.values():
        if r.objective == name:
            return r.objective_record
    raise ValueError(f"{where}: objective must be one of {sorted(objective_names())}, "
                     f"got {name!r}")


def spec_from_dict(d: dict, where: str = "spec"):
    """The spec :meth:`mfjax.specs.Spec.to_dict` wrote (every field validated again).

    Raises:
        ValueError: naming ``where``, for an unknown model or a bad or unknown field.
    """
    from ..specs import Recorded

    if not isinstance(d, dict) or not isinstance(d.get("model"), str) or d["model"] not in REGISTRY:
        model = d.get("model") if isinstance(d, dict) else d
        raise ValueError(f"{where}: unknown model {model!r}; known: {sorted(REGISTRY)}")
    cls = REGISTRY[d["model"]].spec
    fields = {k: v for k, v in d.items() if k != "model"}
    unknown = sorted(set(fields) - set(cls.field_names()))
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no field(s) {unknown}")
    for k, v in fields.items():
        if isinstance(v, dict) and set(v) == {"recorded"} and isinstance(v["recorded"], str):
            fields[k] = Recorded(v["recorded"])
    try:
        return cls(**fields)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{where}: {e}") from None


def spec_of_config(config: dict, where: str = "config"):
    """The spec a model's config records (``fit`` writes the resolved spec's fields and
    ``"model"``; a config written before specs existed is read by its record's
    ``legacy_spec`` from its ``objective`` and ``solver``).

    Raises:
        ValueError: naming ``where``, when the recorded spec is unknown or invalid.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be an object")
    if "model" in config:
        record = record_named(config["model"], where)
        cls = record.spec
        return spec_from_dict({"model": cls.__name__,
                               **{k: config[k] for k in cls.field_names() if k in config}}, where)
    objective, solver = config.get("objective", "explicit"), config.get("solver", "optax")
    if not isinstance(objective, str) or not isinstance(solver, str):
        raise ValueError(f"{where}: objective and solver must be strings, got "
                         f"{objective!r} and {solver!r}")
    if not isinstance(config.get("options") or {}, dict):
        raise ValueError(f"{where}: config['options'] must be an object, got "
                         f"{type(config['options']).__name__}")
    for record in records_for(objective, solver):
        legacy = getattr(record.parts, "legacy_spec", None)
        if legacy is not None:
            return spec_from_dict({"model": record.name, **legacy(config, solver)}, where)
    raise ValueError(f"{where}: unknown objective/solver {(objective, solver)}")


def params_type_of(config) -> type:
    """The parameter pytree class of the model ``config`` records (its record's
    :attr:`~ModelRecord.params_type`); a config that names no registered model (written
    before specs existed): the biased-MF :class:`mfjax.objectives.explicit.Params`."""
    name = config.get("model") if isinstance(config, dict) else None
    record = REGISTRY.get(name) if isinstance(name, str) else None
    if record is None:
        from ..objectives.explicit import Params

        return Params
    return record.params_type


def check_features(record: ModelRecord, features, where: str = "fit") -> None:
    """Refuse ``features`` (not None) of the wrong type, or for ``record``'s model when it
    takes none.

    Raises:
        TypeError: ``features`` is not an :class:`mfjax.Features`.
        ValueError: naming the model, when it does not read features.
    """
    if features is None:
        return
    from ..data.features import Features

    if not isinstance(features, Features):
        raise TypeError(f"{where}: features must be an mfjax.Features (e.g. "
                        f"mfjax.Features.from_frames(users, items)), got "
                        f"{type(features).__name__}")
    if not record.features:
        takers = [r.name for r in REGISTRY.values() if r.features]
        which = (f"models that do: {', '.join(takers)}" if takers else
                 "no registered model takes features yet")
        raise ValueError(f"{where}: {record.name} does not use side information, so "
                         f"features= would be ignored; drop it or train a model that "
                         f"reads features ({which})")


def by_size(records: list, n_ratings: int) -> ModelRecord:
    """The record for data of ``n_ratings`` among ``records``: the limited ones
    (:attr:`ModelRecord.data_size_default`) first, smallest limit first, then the rest."""
    ordered = sorted(records, key=lambda r: (r.data_size_default is None,
                                             r.data_size_default or 0))
    for r in ordered:
        if r.data_size_default is None or n_ratings <= r.data_size_default:
            return r
    return ordered[-1]


def holds_interactions(train) -> bool:
    """Whether ``train`` is implicit feedback by its values alone: every value is 1
    (clicks, ``Ratings.from_csr`` of a 0/1 matrix, ``Ratings.binarize``)."""
    import numpy as np

    r = np.asarray(train.ratings)
    return r.size > 0 and bool(np.all(r == 1))


def default_record(train) -> ModelRecord:
    """The model ``fit(train)`` trains when none is given, from the data alone: among the
    records whose :attr:`ModelRecord.default_for` is ``"interactions"`` (every value 1)
    or ``"ratings"``, by :func:`by_size`. Keywords passed to ``fit`` never change which."""
    kind = "interactions" if holds_interactions(train) else "ratings"
    return by_size([r for r in REGISTRY.values() if r.default_for == kind], len(train))


def pick_record(train, objective: str | None, solver: str | None,
                where: str = "fit") -> ModelRecord:
    """The record ``fit(objective=..., solver=...)`` trains (``objective`` None:
    ``"explicit"``). Several records of one objective without a ``solver``: by
    :func:`by_size` among those a default may pick.

    Raises:
        ValueError: an unknown objective, or a solver the objective does not have.
    """
    objective = "explicit" if objective is None else objective
    objective_named(objective, where)  # an unknown objective names the known ones
    found = records_for(objective, solver)
    if not found:
        raise ValueError(f"{where}: objective {objective!r} has no solver {solver!r}; its "
                         f"solvers are {sorted(solver_names(objective))}")
    if len(found) == 1:
        return found[0]
    defaults = [r for r in found if r.default_for is not None] or found
    return by_size(defaults, len(train))
