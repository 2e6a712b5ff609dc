"""mfjax: matrix-factorization recommenders in JAX."""

from . import dense
from .core import Params, init_params, loss, manual_grad, predict, validate_ratings
from .gradcheck import GradientReport, numerical_grad, verify_gradients

__version__ = "0.1.0"
