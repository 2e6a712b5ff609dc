"""Typed model specs: one frozen dataclass of hyperparameters per model.

A spec says *what* to train; :func:`mfjax.fit` trains it. Every field has a documented
default, is checked when the spec is built (``MF(rank=-3)`` raises there, naming the
field, not inside jit), and applies to its model (no spec carries a field its solver
ignores). Specs compare, hash, print and ``dataclasses.replace`` like any frozen
dataclass, and round-trip through JSON (:meth:`Spec.to_dict`, :func:`spec_from_dict`),
which is how models and checkpoints store them.

=================== ========= ========= ===================================================
spec                objective solver    model
=================== ========= ========= ===================================================
:class:`MF`         explicit  optax     biased MF by minibatches of any Optax optimizer
:class:`ALS`        explicit  als       biased MF by exact alternating least squares
:class:`BayesianMF` explicit  gibbs     Bayesian PMF with biases by Gibbs sampling
:class:`ImplicitALS` ials     als/optax iALS (weighted ALS on implicit feedback)
:class:`BPR`        bpr       optax     Bayesian personalized ranking by Optax minibatches
=================== ========= ========= ===================================================

A field documented as ``"auto"`` or ``None`` is resolved by ``fit`` from the data and
the hardware; ``model.spec`` holds the resolved spec.
"""
from __future__ import annotations

from .base import MAX_EPOCHS, MAX_RANK, MAX_SEED, Recorded, Spec
from .explicit import ALS, MF, BayesianMF
from .implicit import BPR, ImplicitALS

__all__ = ["Spec", "MF", "ALS", "BayesianMF", "ImplicitALS", "BPR", "SPECS", "spec_from_dict",
           "spec_of_config", "Recorded", "MAX_RANK", "MAX_SEED", "MAX_EPOCHS"]


#: Every spec class by name (the ``"model"`` entry of :meth:`Spec.to_dict`).
SPECS: dict[str, type[Spec]] = {c.__name__: c for c in (MF, ALS, BayesianMF, ImplicitALS, BPR)}


def spec_from_dict(d: dict, where: str = "spec") -> Spec:
    """The spec :meth:`Spec.to_dict` wrote (every field validated again).

    Raises:
        ValueError: naming ``where``, for an unknown model or a bad or unknown field.
    """
    if not isinstance(d, dict) or d.get("model") not in SPECS:
        model = d.get("model") if isinstance(d, dict) else d
        raise ValueError(f"{where}: unknown model {model!r}; known: {sorted(SPECS)}")
    cls = SPECS[d["model"]]
    fields = {k: v for k, v in d.items() if k != "model"}
    unknown = sorted(set(fields) - set(cls.field_names()))
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no field(s) {unknown}")
    for k, v in fields.items():
        if isinstance(v, dict) and set(v) == {"recorded"} and isinstance(v["recorded"], str):
            fields[k] = Recorded(v["recorded"])
    try:
        return cls(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


#: Spec class of a config written before specs existed, by (objective, solver).
_LEGACY = {("explicit", "optax"): MF, ("explicit", "als"): ALS, ("explicit", "gibbs"): BayesianMF,
           ("ials", "als"): ImplicitALS, ("ials", "optax"): ImplicitALS, ("bpr", "optax"): BPR}


def spec_of_config(config: dict, where: str = "config") -> Spec:
    """The spec a model's config records (``fit`` writes the resolved spec's fields and
    ``"model"``; configs written before specs existed are read by their ``objective``,
    ``solver`` and flat hyperparameters).

    Raises:
        ValueError: naming ``where``, when the recorded spec is unknown or invalid.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be an object")
    if "model" in config:
        cls = SPECS.get(config["model"]) if isinstance(config["model"], str) else None
        if cls is None:
            raise ValueError(f"{where}: unknown model {config['model']!r}; known: {sorted(SPECS)}")
        return spec_from_dict({"model": cls.__name__,
                               **{k: config[k] for k in cls.field_names() if k in config}}, where)
    key = (config.get("objective", "explicit"), config.get("solver", "optax"))
    cls = _LEGACY.get(key) if all(isinstance(k, str) for k in key) else None
    if cls is None:
        raise ValueError(f"{where}: unknown objective/solver {key}")
    if not isinstance(config.get("options") or {}, dict):
        raise ValueError(f"{where}: config['options'] must be an object, got "
                         f"{type(config['options']).__name__}")
    old = {**config, **(config.get("options") or {})}
    fields = {k: old[k] for k in cls.field_names() if old.get(k) is not None}
    if cls is MF:
        fields["ensemble"] = old.get("ensemble", "auto")
        for k in ("optimizer", "schedule"):
            if k in fields:
                fields[k] = fields[k] if fields[k] in (None, "adam") or k == "optimizer" and \
                    _known_optimizer(fields[k]) else {"recorded": str(fields[k])}
    if cls is ImplicitALS:
        fields["solver"] = key[1]
        fields.pop("optimizer", None), fields.pop("learning_rate", None)
        if key[1] == "als":
            fields["cg_steps"] = old.get("cg_steps", 0) if old.get("als_method") == "cg" else 0
    if cls is BayesianMF:
        for k in ("burn_in", "samples"):
            if k in old:
                fields[k] = old[k]
    return spec_from_dict({"model": cls.__name__, **fields}, where)


def _known_optimizer(name) -> bool:
    from ..solvers.minibatch.optimizers import OPTIMIZERS

    return isinstance(name, str) and name in OPTIMIZERS
