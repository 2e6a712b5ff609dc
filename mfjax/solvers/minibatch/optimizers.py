"""Optimizers by name for the minibatch solver, and their compiled ``init``.

``fit(optimizer="adam")`` takes a name from :data:`OPTIMIZERS` (with its default
learning rate) or any ``optax.GradientTransformation``. The minibatch gradient is a
*sum* over the batch: Adam-type optimizers are invariant to that scale, SGD is not
(its learning rate is per rating, as in Surprise), hence the small SGD defaults.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import numpy as np
import optax

__all__ = ["OPTIMIZERS", "make_optimizer", "opt_init"]

#: Optimizer names accepted by ``fit`` -> (factory taking a learning rate or schedule, default lr).
OPTIMIZERS: dict[str, tuple[Callable, float]] = {
    # The gradient sums over the batch, so SGD-family rates shrink with batch size.
    "sgd": (optax.sgd, 1e-4),
    "momentum": (lambda lr: optax.sgd(lr, momentum=0.9), 1e-5),
    "nesterov": (lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True), 1e-5),
    "adam": (optax.adam, 0.01),
    "adamw": (optax.adamw, 0.01),
    "adamax": (optax.adamax, 0.01),
    "nadam": (optax.nadam, 0.01),
    "radam": (optax.radam, 0.01),
    "adabelief": (optax.adabelief, 0.01),
    "yogi": (optax.yogi, 0.01),
    "lamb": (optax.lamb, 0.01),
    "lion": (optax.lion, 0.001),
    "adagrad": (optax.adagrad, 0.1),
    "rmsprop": (optax.rmsprop, 0.001),
}


def make_optimizer(optimizer="adam", learning_rate=None, schedule=None):
    """An ``optax.GradientTransformation`` from a name or as given.

    Args:
        optimizer: a name in :data:`OPTIMIZERS` or a ``GradientTransformation``.
        learning_rate: the step size; ``None`` takes the name's default.
        schedule: an optax schedule (step -> learning rate) used instead of
            ``learning_rate``; steps count minibatches. Giving both is an error.

    Raises:
        ValueError: an unknown name, a bad learning rate, or both a learning rate
            and a schedule.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None or schedule is not None:
            raise ValueError("learning_rate/schedule apply to optimizer names only; a "
                             "GradientTransformation already has its step size")
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)} "
                         "or pass an optax.GradientTransformation")
    factory, default_lr = OPTIMIZERS[optimizer]
    if schedule is not None:
        if learning_rate is not None:
            raise ValueError(f"learning_rate={learning_rate!r} and schedule= were both given; the "
                             "schedule sets every step's learning rate, so pass only one")
        if not callable(schedule):
            raise ValueError(f"schedule must be an optax schedule (step -> learning rate), "
                             f"got {schedule!r}")
        return factory(schedule)
    lr = default_lr if learning_rate is None else learning_rate
    if (isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating))
            or not (lr > 0 and math.isfinite(lr))):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    return factory(float(lr))


@functools.lru_cache(maxsize=8)
def opt_init(opt):
    """``opt.init`` as one compiled program (eagerly it is a compile per leaf shape)."""
    return jax.jit(opt.init)
