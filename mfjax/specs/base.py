"""The spec base class and the field checks every spec uses.

:class:`Spec` is a frozen dataclass whose ``__post_init__`` runs one check per field
(each naming the spec and the field) and one check across fields; the checks below
turn NumPy scalars into plain Python values, so a spec is always JSON-able.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import optax

__all__ = ["Spec", "Recorded", "MAX_RANK", "MAX_SEED", "MAX_EPOCHS", "GRADIENTS", "field_name",
           "check_int", "check_number", "check_choice", "check_kernel", "check_optimizer",
           "check_schedule", "check_optax_pair", "rank_check", "steps_check", "non_negative",
           "non_negative_or_none", "positive", "positive_or_none", "kernel_check",
           "OPTAX_CHECKS"]

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


def field_name(spec, name: str) -> str:
    """``'<Spec>: <field>'`` for error messages."""
    return f"{type(spec).__name__}: {name}"


def check_int(spec, name, v, lo: int = 1, hi: int | None = None, none: bool = False):
    if v is None and none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{field_name(spec, name)} must be an integer, got {v!r} "
                        f"({type(v).__name__})")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{field_name(spec, name)} must be an integer {bound}, got {v}")
    return v


def check_number(spec, name, v, *, positive: bool = False, hi: float | None = None,
            none: bool = False):
    if v is None and none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field_name(spec, name)} must be a real number, got {v!r} "
                        f"({type(v).__name__})")
    try:
        v = float(v)
    except OverflowError:  # an int beyond the float range (10**400)
        raise ValueError(f"{field_name(spec, name)} must be a finite number, got an integer "
                         f"of {len(str(abs(int(v))))} digits, beyond the float range") from None
    ok = math.isfinite(v) and (v > 0 if positive else v >= 0) and (hi is None or v <= hi)
    if not ok:
        what = "> 0" if positive else ">= 0"
        what += "" if hi is None else f" and <= {hi:g}"
        raise ValueError(f"{field_name(spec, name)} must be a finite number {what}, got {v!r}")
    return v


def check_choice(spec, name, v, choices):
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{field_name(spec, name)} must be one of {choices}, got {v!r}")
    return v


def check_kernel(spec, v):
    if v == "auto" and isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"{field_name(spec, 'kernel')} must be 'auto', True or False, got {v!r}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base of every model spec (see the module docstring).

    Class attributes:
        objective: the objective's name (:func:`mfjax.models.objective_names`).
        solver: the solver's name.
    """

    objective: ClassVar[str] = ""
    solver_name: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._check(f.name, getattr(self, f.name)))
        self._check_all()

    #: field name -> ``check(spec, name, value) -> value`` (the checks below).
    CHECKS: ClassVar[dict] = {}

    def _check(self, name: str, value):
        return self.CHECKS[name](self, name, value)

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


def check_optimizer(spec, v):
    from ..solvers.minibatch.optimizers import OPTIMIZERS

    if isinstance(v, (optax.GradientTransformation, Recorded)):
        return v
    if isinstance(v, str) and v in OPTIMIZERS:
        return v
    raise ValueError(f"{field_name(spec, 'optimizer')} must be one of {sorted(OPTIMIZERS)} or an "
                     f"optax.GradientTransformation, got {v!r}")


def check_schedule(spec, v):
    if v is None or isinstance(v, Recorded) or callable(v):
        return v
    raise ValueError(f"{field_name(spec, 'schedule')} must be an optax schedule (step -> learning "
                     f"rate) or None, got {v!r}")


def check_optax_pair(spec) -> None:
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
        raise ValueError(f"{field_name(spec, 'optimizer_name')} must be a non-empty string, got {name!r}")


# Field checks shared by the specs, as ``check(spec, name, value) -> value``.
def rank_check(spec, name, v):
    return check_int(spec, name, v, 1, MAX_RANK)


def steps_check(spec, name, v):
    return check_int(spec, name, v, 1, MAX_EPOCHS)


def non_negative(spec, name, v):
    return check_number(spec, name, v)


def non_negative_or_none(spec, name, v):
    return check_number(spec, name, v, none=True)


def positive(spec, name, v):
    return check_number(spec, name, v, positive=True)


def positive_or_none(spec, name, v):
    return check_number(spec, name, v, positive=True, none=True)


def kernel_check(spec, name, v):
    return check_kernel(spec, v)


def optimizer_check(spec, name, v):
    return check_optimizer(spec, v)


def schedule_check(spec, name, v):
    return check_schedule(spec, v)


def name_check(spec, name, v):
    return v  # checked with the optimizer (check_optax_pair)


#: The checks of the Optax fields that :class:`~mfjax.MF` and :class:`~mfjax.BPR` share.
OPTAX_CHECKS = {"optimizer": optimizer_check, "learning_rate": positive_or_none,
                "schedule": schedule_check, "optimizer_name": name_check}
