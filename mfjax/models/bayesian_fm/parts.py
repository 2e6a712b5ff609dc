""":class:`~mfjax.BayesianFM` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Trained by the block Gibbs sampler of :mod:`mfjax.models.bayesian_fm`. A sample's rows
θ_u = v_u + B_Uᵀx_u already hold the feature and implicit-block terms, so the model is
the posterior mean of the kept samples as one rank k·S biased MF
(:mod:`mfjax.objectives.explicit`), with the per-sample biases, μ and τ kept like
Bayesian MF's (the same ``posterior/*`` arrays and ``predict(return_std=True)``).
Fold-in and partial fits solve each row per kept sample as its conditional posterior
mean, with the prior mean μˢ + Bˢᵀx from the row's features when it has them
(:mod:`mfjax.models.bayesian_fm.refresh`); fold-in with ``reg=`` (and files saved
before the row priors were kept) solve the ridge row of the posterior mean
(λ = λ_b = :data:`FOLD_IN_REG`).

IDs with features and no ratings (#27 item 4) are served from the kept samples'
feature maps (:mod:`mfjax.models.bayesian_fm.serving`): ``fit`` makes them rows (the
record's ``feature_ids``) holding their exact posterior mean, later ones come in by
``partial_fit_users/items(features=F)`` (:func:`feature_rows`), and ``predict`` /
``evaluate`` score raw IDs the model lacks from the features they are given
(:func:`score_features`).
"""
from __future__ import annotations

import dataclasses

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers.hardware import resolve_kernel
from ...solvers.rows import ridge_row_solve
from ...solvers.gibbs.posterior import predictive_std
from .posterior import POSTERIOR_FIELDS, check_posterior
from .refresh import feature_row_solve, posterior_row_solve
from .serving import feature_rows, score_features
from .spec import BayesianFM

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "MEMORY_HINT", "FOLD_IN_REG",
           "check_posterior", "predictive_std", "gradient_hyperparameters", "POSTERIOR_FIELDS",
           "score_features", "feature_rows", "posterior_row_solve", "feature_row_solve"]

SPEC = BayesianFM
OBJECTIVE = explicit.OBJECTIVE
PARAMS = Params
MEMORY_HINT = "rank or samples"
#: λ (and λ_b) of the ridge fold-in of the posterior-mean model (MF's default ``reg``).
FOLD_IN_REG = 0.1
score = explicit.predict
row_solve = ridge_row_solve


def make_solver(spec):
    from .solver import BayesianFMSolver

    return BayesianFMSolver()


def resolve(spec: BayesianFM, train, run) -> BayesianFM:
    """``kernel``: Bayesian MF's C++ row draws on one CPU device when the kernel is built."""
    from ...kernels import als as kernel

    return dataclasses.replace(spec, kernel=resolve_kernel(spec, kernel, run, "explicit ALS/Gibbs"))


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """Peak bytes: the ratings' two sorted layouts (about 4 numbers a rating each), the
    implicit blocks in both orders (3 numbers per entry, nnz entries per side, twice),
    the row draws' Gram windows, the regression residuals and per-rating shifts
    (n·K each), and the kept samples with their average (S n K, capped at the sample
    budget, twice); K = k + 1, n = users + items. The user and item attribute blocks
    are not counted (their nnz is not known here; a few per row)."""
    from ...solvers.gibbs.solver import SAMPLE_BUDGET_BYTES

    K, n = spec.rank + 1, n_users + n_items
    layout = 2 * 4 * nnz * itemsize
    blocks = (12 * nnz * itemsize) if spec.implicit_features else 0
    work = (4 * n * K + 2 * nnz) * itemsize + (32 << 20)
    kept = spec.samples * n * K * itemsize
    return layout + blocks + work + 2 * min(kept, SAMPLE_BUDGET_BYTES)


def row_hyperparameters(spec) -> dict:
    return {"reg": FOLD_IN_REG, "bias_reg": FOLD_IN_REG}


def gradient_hyperparameters(spec) -> dict:
    """The explicit loss :func:`mfjax.verify_gradients` checks: the negative log posterior
    of the rows at fixed priors, λ = λ_b = :data:`FOLD_IN_REG`."""
    return {"reg": FOLD_IN_REG, "bias_reg": FOLD_IN_REG}
