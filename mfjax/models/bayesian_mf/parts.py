""":class:`~mfjax.BayesianMF` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Bayesian PMF with biases by Gibbs sampling (:mod:`mfjax.solvers.gibbs`); the model is
the posterior mean of the kept samples, one rank k·S biased MF
(:mod:`mfjax.objectives.explicit`). Partial fits and fold-in (without ``reg=``/``bias_reg=``)
re-solve a row per kept sample as its conditional posterior mean given that sample's other
side and hyperparameters (:func:`posterior_row_solve`, :mod:`mfjax.models.bayesian_mf.refresh`).
``row_solve`` is the ridge row of the averaged model with λ = λ_b = :data:`FOLD_IN_REG` (the
sampler learned its regularization, the spec has no ``reg``): what ``fold_in`` with an
explicit ``reg=`` or ``bias_reg=`` solves, and what a model saved without the samples'
prior hyperparameters is refreshed with (with a warning).
"""
from __future__ import annotations

import dataclasses

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers.hardware import resolve_kernel
from ...solvers.rows import ridge_row_solve
from ...solvers.als.solver import sweep_bytes
from ...solvers.gibbs.posterior import POSTERIOR_FIELDS, check_posterior, predictive_std
from .refresh import posterior_row_solve
from ..record import legacy_fields
from .spec import BayesianMF

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "posterior_row_solve", "score", "legacy_spec", "MEMORY_HINT", "FOLD_IN_REG",
           "check_posterior", "predictive_std", "gradient_hyperparameters", "POSTERIOR_FIELDS"]

SPEC = BayesianMF
OBJECTIVE = explicit.OBJECTIVE
PARAMS = Params
MEMORY_HINT = "rank or samples"
#: λ (and λ_b) of the ridge row solve of a Bayesian MF model (MF's default ``reg``): fold-in
#: with an explicit ``reg=``/``bias_reg=`` left out, and refreshes of models without priors.
FOLD_IN_REG = 0.1
score = explicit.predict
row_solve = ridge_row_solve


def make_solver(spec):
    from ...solvers.gibbs.solver import GibbsSolver

    return GibbsSolver()


def resolve(spec: BayesianMF, train, run) -> BayesianMF:
    """``kernel``: the C++ row draws on one CPU device when the kernel is built."""
    from ...kernels import als as kernel

    return dataclasses.replace(spec, kernel=resolve_kernel(spec, kernel, run, "explicit ALS/Gibbs"))


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """The ALS-shaped sweep (XLA's chunk of row systems) plus the kept samples,
    S n (k+1) z capped at the sample budget (the solver thins to it), twice (the
    samples and their average)."""
    from ...solvers.gibbs.solver import SAMPLE_BUDGET_BYTES

    kept = spec.samples * (n_users + n_items) * (spec.rank + 1) * itemsize
    return (sweep_bytes(spec.rank, n_users=n_users, n_items=n_items, nnz=nnz,
                               itemsize=itemsize, backend=backend, kernel=False)
            + 2 * min(kept, SAMPLE_BUDGET_BYTES))


def row_hyperparameters(spec) -> dict:
    return {"reg": FOLD_IN_REG, "bias_reg": FOLD_IN_REG}


def gradient_hyperparameters(spec) -> dict:
    """The explicit loss whose gradient :func:`mfjax.verify_gradients` checks: the
    negative log posterior of the factors at fixed priors, λ = λ_b = :data:`FOLD_IN_REG`
    (the sampler draws from it; its gradient is the one the row conditionals complete)."""
    return {"reg": FOLD_IN_REG, "bias_reg": FOLD_IN_REG}


def legacy_spec(config: dict, solver: str) -> dict:
    return legacy_fields(config, BayesianMF)
