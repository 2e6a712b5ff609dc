"""mfjax: matrix-factorization recommenders in JAX.

A model is a typed spec (:mod:`mfjax.specs`: :class:`MF`, :class:`ALS`,
:class:`BayesianMF`, :class:`ImplicitALS`, :class:`BPR`); :func:`fit` trains it and
returns a :class:`Model`. The packages follow a rating from a file to a served list:

- :mod:`mfjax.data`: the :class:`Ratings` container, readers, data sets and splits;
- :mod:`mfjax.objectives`: each loss with its hand-written gradient and its record;
- :mod:`mfjax.solvers`: how parameters are updated (minibatch/Optax, ALS, Gibbs, iALS,
  BPR), behind one ``Solver`` seam; :mod:`mfjax.kernels`: their C++ CPU kernels;
- :mod:`mfjax.training`: ``fit``, the solver-agnostic loop, checkpoints;
- :mod:`mfjax.serving`: ``Model``, top-N, fold-in, posterior uncertainty;
- :mod:`mfjax.evaluation`: metrics and gradient checks.
"""

from . import datasets, dense, distributed, split, training
from .data import Ratings, load_ratings
from .evaluation import gradcheck
from .evaluation.gradcheck import GradientReport, numerical_grad, verify_gradients
from .evaluation.metrics import evaluate, evaluate_fold_in, evaluate_ranking
from .objectives.explicit import Params, init_params, loss, manual_grad, predict, validate_ratings
from .serving.model import Model, load_model
from .selection import SearchResult, cross_validate, search
from .specs import ALS, BPR, MF, BayesianMF, ImplicitALS, Spec
from .training import OPTIMIZERS, auto_batch_size, fit, make_optimizer

__version__ = "0.1.0"

__all__ = [
    "MF", "ALS", "BayesianMF", "ImplicitALS", "BPR", "Spec", "fit",
    "Params", "init_params", "predict", "loss", "manual_grad", "validate_ratings",
    "distributed", "dense", "training", "numerical_grad", "verify_gradients", "GradientReport",
    "gradcheck", "Ratings", "load_ratings", "datasets", "split",
    "make_optimizer", "auto_batch_size", "OPTIMIZERS",
    "cross_validate", "search", "SearchResult",
    "Model", "load_model", "evaluate", "evaluate_ranking", "evaluate_fold_in",
]
