"""Training: ``fit`` and the pieces its epoch loop is made of.

=================== =========================================================
module              owns
=================== =========================================================
``loop``            :func:`fit`: validation, early stopping, checkpoints, progress
``config``          argument checks, every ``"auto"``, the :class:`Hardware` decision
``solver``          the :class:`Solver` seam and the solver registry
``minibatch``       the Optax minibatch solver (``solver="optax"``)
``layout``          host sort, the device grid of minibatches, the seen-item index
``epoch``           the compiled epoch (one ``lax.scan``), reshuffle, init
``ensemble``        averaged members as one rank-k model
``checkpoint``      atomic checkpoints of any solver's state
``optimizers``      optimizer names and defaults
=================== =========================================================
"""
from .checkpoint import Best, load_checkpoint, save_checkpoint
from .config import (
    AUTO_BLOCKED_MIN_RATINGS,
    DEFAULTS,
    GRADIENTS,
    FitConfig,
    Hardware,
    auto_batch_size,
    detect_hardware,
    resolve,
    scatter_add_is_slow)
from .loop import DEFAULT_SOLVERS, fit
from ..solvers.minibatch.solver import OptaxSolver, OptaxState
from ..solvers.minibatch.optimizers import OPTIMIZERS, make_optimizer
from ..solvers.base import SOLVERS, Solver, make_solver, register_solver

__all__ = ["fit", "DEFAULTS", "OPTIMIZERS", "GRADIENTS", "AUTO_BLOCKED_MIN_RATINGS",
           "make_optimizer", "auto_batch_size", "FitConfig", "Hardware", "detect_hardware",
           "resolve", "scatter_add_is_slow", "Solver", "SOLVERS", "register_solver", "make_solver",
           "DEFAULT_SOLVERS", "OptaxSolver", "OptaxState", "Best", "save_checkpoint",
           "load_checkpoint"]
