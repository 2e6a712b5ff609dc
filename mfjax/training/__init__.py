"""Training: ``fit``, the solver-agnostic epoch loop, and what it is made of.

=================== =========================================================
module              owns
=================== =========================================================
``loop``            :func:`fit`: validation, early stopping, checkpoints, progress
``config``          the spec from ``fit``'s arguments, every ``"auto"``, the
                    :class:`Hardware` decision
``checkpoint``      atomic checkpoints of any solver's state
=================== =========================================================

The solvers themselves live in :mod:`mfjax.solvers`; the models they train are the
specs of :mod:`mfjax.specs`.
"""
from ..solvers.minibatch.optimizers import OPTIMIZERS, make_optimizer
from .checkpoint import Best, load_checkpoint, save_checkpoint
from .config import (AUTO_BLOCKED_MIN_RATINGS, DEFAULTS, GRADIENTS, Hardware, Run,
                     auto_batch_size, detect_hardware, resolve, scatter_add_is_slow, spec_for)
from .loop import fit

__all__ = ["fit", "DEFAULTS", "OPTIMIZERS", "GRADIENTS", "AUTO_BLOCKED_MIN_RATINGS",
           "make_optimizer", "auto_batch_size", "Hardware", "Run", "detect_hardware", "resolve",
           "spec_for", "scatter_add_is_slow", "Best", "save_checkpoint", "load_checkpoint"]
