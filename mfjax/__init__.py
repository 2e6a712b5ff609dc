"""mfjax: matrix-factorization recommenders in JAX.

The functional core (``Params``, ``init_params``, ``predict``, ``loss``,
``manual_grad``; :mod:`mfjax.core`) is pure JAX. :mod:`mfjax.gradients` holds every
route that computes a minibatch's gradient behind one contract; :mod:`mfjax.training`
has ``fit``, an epoch loop around a pluggable ``Solver``; :mod:`mfjax.data` reads and
splits ratings; the solvers' math lives beside the core (:mod:`mfjax.als`,
:mod:`mfjax.gibbs` for ratings; :mod:`mfjax.implicit`, :mod:`mfjax.implicit_als`,
:mod:`mfjax.implicit_bpr` for implicit feedback); ``Model`` (:mod:`mfjax.model`,
:mod:`mfjax.recommend`, :mod:`mfjax.metrics`) is the thin user-facing shell (raw IDs,
predict, recommend, fold-in, save/load, evaluation).
"""

from . import datasets, dense, distributed, gradcheck, split
from . import gradients, training
from . import als, gibbs, implicit, implicit_als, implicit_bpr
from .core import Params, init_params, loss, manual_grad, predict, validate_ratings
from .data import Ratings, load_ratings
from .gradcheck import GradientReport, numerical_grad, verify_gradients
from .metrics import evaluate, evaluate_fold_in, evaluate_ranking
from .model import Model, load_model
from .training import DEFAULTS, OPTIMIZERS, auto_batch_size, fit, make_optimizer

__version__ = "0.1.0"

__all__ = [
    "Params", "init_params", "predict", "loss", "manual_grad", "validate_ratings",
    "distributed", "dense", "gradients", "training", "numerical_grad", "verify_gradients", "GradientReport", "gradcheck",
    "Ratings", "load_ratings", "datasets", "split",
    "fit", "make_optimizer", "auto_batch_size", "DEFAULTS", "OPTIMIZERS",
    "Model", "load_model", "evaluate", "evaluate_ranking", "evaluate_fold_in",
    "als", "gibbs", "implicit", "implicit_als", "implicit_bpr",
]
