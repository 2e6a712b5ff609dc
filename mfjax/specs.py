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

import dataclasses
import math
from typing import Any, Callable, ClassVar

import numpy as np
import optax

__all__ = ["Spec", "MF", "ALS", "BayesianMF", "ImplicitALS", "BPR", "SPECS", "spec_from_dict",
           "spec_of_config", "Recorded", "MAX_RANK", "MAX_SEED"]

#: Largest rank a spec accepts (a rank-2^16 table of one row is already 256 KB a row).
MAX_RANK = 1 << 16
#: Largest seed (seeds feed 64-bit generators).
MAX_SEED = (1 << 63) - 1
#: ``gradient=`` routes of :class:`MF` (see :mod:`mfjax.solvers.minibatch.gradients`).
GRADIENTS = ("auto", "fused", "blocked", "autodiff", "manual")
#: Largest number of epochs or sweeps a spec accepts.
MAX_EPOCHS = 1 << 20


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A field value that was not plain data (a custom optax optimizer or schedule), as
    a saved model recorded it: its name. It cannot train again; pass the object."""

    text: str

    def __repr__(self) -> str:
        return f"Recorded({self.text!r})"


def _where(spec, name: str) -> str:
    return f"{type(spec).__name__}: {name}"


def _int(spec, name, v, lo: int = 1, hi: int | None = None, none: bool = False):
    if v is None and none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{_where(spec, name)} must be an integer, got {v!r} "
                        f"({type(v).__name__})")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{_where(spec, name)} must be an integer {bound}, got {v}")
    return v


def _number(spec, name, v, *, positive: bool = False, hi: float | None = None,
            none: bool = False):
    if v is None and none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{_where(spec, name)} must be a real number, got {v!r} "
                        f"({type(v).__name__})")
    v = float(v)
    ok = math.isfinite(v) and (v > 0 if positive else v >= 0) and (hi is None or v <= hi)
    if not ok:
        what = "> 0" if positive else ">= 0"
        what += "" if hi is None else f" and <= {hi:g}"
        raise ValueError(f"{_where(spec, name)} must be a finite number {what}, got {v!r}")
    return v


def _choice(spec, name, v, choices):
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{_where(spec, name)} must be one of {choices}, got {v!r}")
    return v


def _kernel(spec, v):
    if v == "auto" and isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"{_where(spec, 'kernel')} must be 'auto', True or False, got {v!r}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base of every model spec (see the module docstring).

    Class attributes:
        objective: the objective's name (:data:`mfjax.objectives.OBJECTIVES`).
        solver: the solver's name.
    """

    objective: ClassVar[str] = ""
    solver_name: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._check(f.name, getattr(self, f.name)))
        self._check_all()

    def _check(self, name: str, value):  # pragma: no cover - every spec overrides
        return value

    def _check_all(self) -> None:
        """Checks that involve several fields."""

    @property
    def solver(self) -> str:
        """The solver that trains this spec."""
        return self.solver_name

    @property
    def n_steps(self) -> int:
        """Epochs (or sweeps) ``fit`` runs."""
        return self.epochs  # type: ignore[attr-defined]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes) -> "Spec":
        """``dataclasses.replace`` that names the spec's fields when one is unknown."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(map(repr, unknown))}; "
                            f"its fields are {', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The spec as JSON-able data: ``{"model": name, field: value, ...}``."""
        out = {"model": type(self).__name__}
        for name in self.field_names():
            v = getattr(self, name)
            if isinstance(v, Recorded):
                v = {"recorded": v.text}
            elif name in ("optimizer", "schedule") and v is not None and not isinstance(v, str):
                label = getattr(self, "optimizer_name", None) or repr(v)
                v = {"recorded": label if name == "optimizer" else f"{label} (schedule)"}
            out[name] = v
        return out


def _optimizer(spec, v):
    from .solvers.minibatch.optimizers import OPTIMIZERS

    if isinstance(v, (optax.GradientTransformation, Recorded)):
        return v
    if isinstance(v, str) and v in OPTIMIZERS:
        return v
    raise ValueError(f"{_where(spec, 'optimizer')} must be one of {sorted(OPTIMIZERS)} or an "
                     f"optax.GradientTransformation, got {v!r}")


def _schedule(spec, v):
    if v is None or isinstance(v, Recorded) or callable(v):
        return v
    raise ValueError(f"{_where(spec, 'schedule')} must be an optax schedule (step -> learning "
                     f"rate) or None, got {v!r}")


def _optax_pair(spec) -> None:
    """optimizer / learning_rate / schedule / optimizer_name must make one optimizer."""
    custom = not isinstance(spec.optimizer, str)
    if spec.learning_rate is not None and spec.schedule is not None:
        raise ValueError(f"{type(spec).__name__}: learning_rate={spec.learning_rate!r} and schedule= "
                         "were both given; the schedule sets every step's rate, so pass one")
    if custom and (spec.learning_rate is not None or spec.schedule is not None):
        raise ValueError(f"{type(spec).__name__}: learning_rate/schedule apply to optimizer names; "
                         "an optax.GradientTransformation already has its step size")
    name = spec.optimizer_name
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"{_where(spec, 'optimizer_name')} must be a non-empty string, got {name!r}")


@dataclasses.dataclass(frozen=True)
class MF(Spec):
    """Explicit biased MF by Optax minibatches (the seed notebook's model).

    ``r̂(u,i) = μ + b_u + b_i + <p_u, q_i>``, minimising :func:`mfjax.loss` (squared error
    plus ``reg``·(‖p_u‖² + ‖q_i‖²) and ``bias_reg``·(b_u² + b_i²), per rating).

    Attributes:
        rank: latent factors k.
        reg: λ, L2 weight on the factors.
        bias_reg: λ_b, L2 weight on the biases; ``None``: ``reg``.
        optimizer: a name in :data:`mfjax.OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size of a named optimizer; ``None``: the name's default.
        schedule: an optax schedule (step -> rate; steps count minibatches) instead of
            ``learning_rate``.
        epochs: passes over the data.
        batch_size: ratings per minibatch; ``None``: about 1/20 of the data
            (:func:`mfjax.auto_batch_size`).
        gradient: ``"autodiff"``, ``"manual"``, ``"blocked"``, ``"fused"`` or ``"auto"``
            (``jax.grad`` below 2^20 ratings; above, the fused C++ kernel on one CPU
            device, else blocked). All give the same trajectory to float tolerance.
        sort_by: ``"users"``, ``"items"`` or ``"auto"``: the key minibatches are grouped
            by (speed only).
        ensemble: members of rank ``rank / ensemble`` trained side by side and averaged
            into one rank-k model; ``"auto"``: members of rank >= 8, at most 16.
        init_scale: standard deviation of the initial factors.
        optimizer_name: a name for a custom optimizer/schedule (stored in models and
            checkpoints; resuming with one needs it).
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "optax"

    rank: int = 128
    reg: float = 0.1
    bias_reg: float | None = 0.01
    optimizer: Any = "adam"
    learning_rate: float | None = None
    schedule: Callable | None = None
    epochs: int = 25
    batch_size: int | None = None
    gradient: str = "auto"
    sort_by: str = "auto"
    ensemble: Any = "auto"
    init_scale: float = 0.1
    optimizer_name: str | None = None

    def _check(self, name, v):
        if name == "rank":
            return _int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "bias_reg"):
            return _number(self, name, v, none=name == "bias_reg")
        if name == "optimizer":
            return _optimizer(self, v)
        if name == "learning_rate":
            return _number(self, name, v, positive=True, none=True)
        if name == "schedule":
            return _schedule(self, v)
        if name == "epochs":
            return _int(self, name, v, 1, MAX_EPOCHS)
        if name == "batch_size":
            return _int(self, name, v, 1, None, none=True)
        if name == "gradient":
            return _choice(self, name, v, GRADIENTS)
        if name == "sort_by":
            return _choice(self, name, v, ("auto", "users", "items"))
        if name == "ensemble":
            return v if isinstance(v, str) and v == "auto" else _int(self, name, v, 1, MAX_RANK)
        if name == "init_scale":
            return _number(self, name, v, positive=True)
        return v

    def _check_all(self):
        _optax_pair(self)
        if self.ensemble != "auto" and self.rank % self.ensemble:
            raise ValueError(f"MF: ensemble must be 'auto' or a divisor of rank={self.rank}, "
                             f"got {self.ensemble}")


@dataclasses.dataclass(frozen=True)
class ALS(Spec):
    """Explicit biased MF by exact alternating least squares (users, items, then μ).

    Each sweep minimises :func:`mfjax.loss` exactly over one block, so the objective
    never increases; a few sweeps suffice.

    Attributes:
        rank: latent factors k.
        reg: λ, L2 weight on the factors (per rating).
        bias_reg: λ_b on the biases; ``None``: ``reg``.
        epochs: sweeps.
        init_scale: standard deviation of the initial factors.
        kernel: the threaded C++ half-step (:mod:`mfjax.kernels.als`): ``"auto"`` on one
            CPU device when it builds, ``True`` requires it, ``False`` uses XLA.
            Same results either way.
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "als"

    rank: int = 10
    reg: float = 0.08
    bias_reg: float | None = 0.01
    epochs: int = 6
    init_scale: float = 0.1
    kernel: Any = "auto"

    def _check(self, name, v):
        if name == "rank":
            return _int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "bias_reg"):
            return _number(self, name, v, none=name == "bias_reg")
        if name == "epochs":
            return _int(self, name, v, 1, MAX_EPOCHS)
        if name == "init_scale":
            return _number(self, name, v, positive=True)
        if name == "kernel":
            return _kernel(self, v)
        return v


@dataclasses.dataclass(frozen=True)
class BayesianMF(Spec):
    """Bayesian PMF with biases (Salakhutdinov & Mnih 2008) by Gibbs sampling.

    The regularization is learned from Normal-Wishart hyperpriors. A run is
    ``burn_in + samples`` sweeps; the model is the posterior mean of the kept samples
    (every one, or every t-th when they would exceed a 1 GiB budget), and keeps the
    per-sample biases and noise precisions for ``predict(..., return_std=True)``.

    Attributes:
        rank: latent factors k of each sample.
        burn_in: sweeps discarded first.
        samples: sweeps averaged after burn-in.
        init_scale: standard deviation of the initial factors.
    """

    objective: ClassVar[str] = "explicit"
    solver_name: ClassVar[str] = "gibbs"

    rank: int = 10
    burn_in: int = 20
    samples: int = 80
    init_scale: float = 0.1

    def _check(self, name, v):
        if name == "rank":
            return _int(self, name, v, 1, MAX_RANK)
        if name == "burn_in":
            return _int(self, name, v, 0, MAX_EPOCHS)
        if name == "samples":
            return _int(self, name, v, 1, MAX_EPOCHS)
        if name == "init_scale":
            return _number(self, name, v, positive=True)
        return v

    @property
    def n_steps(self) -> int:
        return self.burn_in + self.samples


@dataclasses.dataclass(frozen=True)
class ImplicitALS(Spec):
    """iALS: implicit-feedback MF by weighted alternating least squares.

    Minimises (:mod:`mfjax.objectives.ials`), with confidence ``c = 1 + alpha·v``,

        L = Σ_(u,i)∈S c_ui (1 − <p_u, q_i>)² + α0 Σ_u Σ_i <p_u, q_i>²
            + λ [Σ_u λ̃_u ‖p_u‖² + Σ_i λ̃_i ‖q_i‖²],   λ̃_u = (|I_u| + α0 n_items)^ν.

    Attributes:
        rank: latent factors k.
        reg: λ.
        alpha: α, the confidence slope of an interaction's value.
        unobserved_weight: α0, the weight of every (user, item) pair.
        nu: ν in [0, 1], the frequency scaling of the regularization.
        epochs: sweeps (items, then users).
        cg_steps: ``solver="als"``: conjugate-gradient steps per row (1..rank), or 0 for
            exact (Cholesky) solves; ``None``: 3 on a CPU backend, exact elsewhere. After
            CG sweeps the users are re-solved exactly once.
        init_scale: standard deviation of the initial factors.
        kernel: ``solver="als"``: the threaded C++ half-steps (:mod:`mfjax.kernels.ials`):
            ``"auto"`` on one CPU device when it builds, ``True`` requires it, ``False``
            uses XLA. Same results either way.
        solver: ``"als"`` (alternating solves) or ``"optax"`` (full-batch gradient steps
            on the same L, a slow check of the ALS solver).
        optimizer: ``solver="optax"`` only: a name in :data:`mfjax.OPTIMIZERS` (``None``:
            ``"adam"``).
        learning_rate: ``solver="optax"`` only (``None``: the optimizer's default).
    """

    objective: ClassVar[str] = "ials"

    rank: int = 64
    reg: float = 0.01
    alpha: float = 1.0
    unobserved_weight: float = 0.3
    nu: float = 1.0
    epochs: int = 4
    cg_steps: int | None = None
    init_scale: float = 0.01
    kernel: Any = "auto"
    solver: str = "als"  # type: ignore[assignment]
    optimizer: Any = None
    learning_rate: float | None = None

    def _check(self, name, v):
        if name == "rank":
            return _int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "alpha", "unobserved_weight"):
            return _number(self, name, v)
        if name == "nu":
            return _number(self, name, v, hi=1.0)
        if name == "epochs":
            return _int(self, name, v, 1, MAX_EPOCHS)
        if name == "cg_steps":
            return _int(self, name, v, 0, None, none=True)
        if name == "init_scale":
            return _number(self, name, v, positive=True)
        if name == "kernel":
            return _kernel(self, v)
        if name == "solver":
            return _choice(self, name, v, ("als", "optax"))
        if name == "optimizer":
            return None if v is None else _optimizer(self, v)
        if name == "learning_rate":
            return _number(self, name, v, positive=True, none=True)
        return v

    def _check_all(self):
        if self.cg_steps is not None and self.cg_steps > self.rank:
            raise ValueError(f"ImplicitALS: cg_steps must be <= rank={self.rank} (conjugate "
                             f"gradient solves a rank x rank system exactly in rank steps), got "
                             f"{self.cg_steps}; cg_steps=0 asks for exact solves")
        if self.solver == "als" and (self.optimizer is not None or self.learning_rate is not None):
            raise ValueError("ImplicitALS: optimizer and learning_rate apply to solver='optax' "
                             "only; solver='als' solves each half-step exactly or by CG")
        if self.solver == "optax" and (self.cg_steps is not None or self.kernel is True):
            raise ValueError("ImplicitALS: cg_steps and kernel apply to solver='als' only")
        if self.solver == "optax" and not isinstance(self.optimizer, (str, type(None))):
            raise ValueError("ImplicitALS: solver='optax' takes an optimizer name")


@dataclasses.dataclass(frozen=True)
class BPR(Spec):
    """Bayesian personalized ranking by Optax minibatches of sampled triples.

    Per triple (u, i, j), j drawn uniformly from u's unseen items (:mod:`mfjax.objectives.bpr`):

        ℓ = −log σ(b_i − b_j + <p_u, q_i − q_j>) + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)
            + ½ λ_b (b_i² + b_j²).

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

    #: ``learning_rate`` when none is given and no schedule is.
    DEFAULT_LEARNING_RATE: ClassVar[float] = 0.01

    def _check(self, name, v):
        if name == "rank":
            return _int(self, name, v, 1, MAX_RANK)
        if name in ("reg", "bias_reg"):
            return _number(self, name, v, none=name == "bias_reg")
        if name == "optimizer":
            return _optimizer(self, v)
        if name == "learning_rate":
            return _number(self, name, v, positive=True, none=True)
        if name == "schedule":
            return _schedule(self, v)
        if name == "epochs":
            return _int(self, name, v, 1, MAX_EPOCHS)
        if name == "batch_size":
            return _int(self, name, v, 1)
        if name == "init_scale":
            return _number(self, name, v, positive=True)
        return v

    def _check_all(self):
        _optax_pair(self)


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
    cls = _LEGACY.get(key)
    if cls is None:
        raise ValueError(f"{where}: unknown objective/solver {key}")
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
    from .solvers.minibatch.optimizers import OPTIMIZERS

    return isinstance(name, str) and name in OPTIMIZERS
