"""mfjax: matrix-factorization recommenders in JAX.

The functional core (``Params``, ``init_params``, ``predict``, ``loss``,
``manual_grad``) is pure JAX; ``fit`` trains it with Optax; ``Model`` is the
thin user-facing shell (raw IDs, predict, save/load).
"""

from . import datasets, dense, distributed, gradcheck, split
from .core import Params, init_params, loss, manual_grad, predict, validate_ratings
from .data import Ratings, load_ratings
from .gradcheck import GradientReport, numerical_grad, verify_gradients
from .metrics import evaluate_ranking
from .model import Model, evaluate, load_model
from .train import DEFAULTS, OPTIMIZERS, auto_batch_size, fit, make_optimizer

__version__ = "0.1.0"

__all__ = [
    "Params", "init_params", "predict", "loss", "manual_grad", "validate_ratings",
    "distributed", "dense", "numerical_grad", "verify_gradients", "GradientReport", "gradcheck",
    "Ratings", "load_ratings", "datasets", "split",
    "fit", "make_optimizer", "auto_batch_size", "DEFAULTS", "OPTIMIZERS",
    "Model", "load_model", "evaluate", "evaluate_ranking",
]
