"""mfjax: matrix-factorization recommenders in JAX.

The functional core (``Params``, ``init_params``, ``predict``, ``loss``,
``manual_grad``; :mod:`mfjax.objectives.explicit`) is pure JAX. :mod:`mfjax.solvers.minibatch.gradients` holds every
route that computes a minibatch's gradient behind one contract; :mod:`mfjax.training`
has ``fit``, an epoch loop around a pluggable ``Solver``; :mod:`mfjax.data` reads and
splits ratings; the solvers' math lives beside the core (:mod:`mfjax.solvers.als.sweep`,
:mod:`mfjax.solvers.gibbs.sampler` for ratings; :mod:`mfjax.objectives.ials`, :mod:`mfjax.solvers.ials.solve`,
:mod:`mfjax.objectives.bpr` for implicit feedback); ``Model`` (:mod:`mfjax.serving.model`,
:mod:`mfjax.serving.recommend`, :mod:`mfjax.evaluation.metrics`) is the thin user-facing shell (raw IDs,
predict, recommend, fold-in, save/load, evaluation).
"""

from . import datasets, dense, distributed, split
from .evaluation import gradcheck
from .solvers.minibatch import gradients
from . import training
from .solvers.als import sweep as als
from .solvers.gibbs import sampler as gibbs
from .objectives import ials as implicit, bpr as implicit_bpr
from .solvers.ials import solve as implicit_als
from .objectives.explicit import Params, init_params, loss, manual_grad, predict, validate_ratings
from .data import Ratings, load_ratings
from .evaluation.gradcheck import GradientReport, numerical_grad, verify_gradients
from .evaluation.metrics import evaluate, evaluate_fold_in, evaluate_ranking
from .serving.model import Model, load_model
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
