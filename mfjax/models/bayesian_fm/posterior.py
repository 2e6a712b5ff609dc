"""BayesianFM's ``Model.posterior``: Bayesian MF's per-sample arrays plus row priors.

Beyond :data:`mfjax.solvers.gibbs.posterior.SAMPLE_FIELDS` (per-sample biases, μ, τ), a
BayesianFM keeps, per kept sample s and side, the ID prior of the sweep that drew the
sample and, for a side trained with an attribute table, its attribute coefficients
(:mod:`mfjax.models.bayesian_fm.serving` serves IDs known only from features with them,
:mod:`mfjax.models.bayesian_fm.refresh` re-solves rows with them):

=========================== ============== ==========================================
field                       shape          what
=========================== ============== ==========================================
``user_row_mean``           [S, K]         μ_Uˢ, the ID prior's mean (K = k + 1)
``user_row_prec``           [S, K]         λ_Uˢ > 0, its precisions (diagonal)
``user_feature_coef``       [S, m_U, K]    B_Uˢ of the user table's m_U columns
``item_*``                  likewise       the item side
=========================== ============== ==========================================

A side's two prior arrays come together, its coefficients only with them. Files saved
before they were kept have none: they load; their feature-only IDs take the ID
fallback and partial fits take the ridge row.
"""
from __future__ import annotations

import numpy as np

from ...solvers.gibbs import posterior as gibbs

__all__ = ["FEATURE_FIELDS", "POSTERIOR_FIELDS", "check_posterior", "has_row_priors"]

FEATURE_FIELDS = tuple(f"{side}_{f}" for side in ("user", "item")
                       for f in ("row_mean", "row_prec", "feature_coef"))
#: Every array a BayesianFM ``Model.posterior`` may hold (``posterior/<field>`` in files).
POSTERIOR_FIELDS = gibbs.SAMPLE_FIELDS + FEATURE_FIELDS


def check_posterior(arrays: dict, params, where: str, config: dict | None = None) -> dict | None:
    """A model file's ``posterior/<field>`` arrays, checked; None if absent.

    The sample fields as :func:`mfjax.solvers.gibbs.posterior.check_posterior` checks
    them; each side's feature maps all or none, finite, of the model's dtype, of shapes
    [S, K], [S, K], [S, m, K] with S the samples and K = width / S + 1, precisions > 0.

    Raises:
        ValueError: naming ``where`` and the field.
    """
    feats = {k: arrays[f"posterior/{k}"] for k in FEATURE_FIELDS if f"posterior/{k}" in arrays}
    rest = {k: v for k, v in arrays.items()
            if not (k.startswith("posterior/") and k[len("posterior/"):] in FEATURE_FIELDS)}
    got = gibbs.check_posterior(rest, params, where, config)
    if got is None:
        if feats:
            raise ValueError(f"{where}: posterior/{next(iter(feats))} without the sample "
                             f"arrays ({', '.join('posterior/' + k for k in gibbs.SAMPLE_FIELDS)})")
        return None
    S = got["tau"].shape[0]
    K = params.user_factors.shape[1] // S + 1
    dtype = np.asarray(params.global_bias).dtype
    for side in ("user", "item"):
        _check_side(feats, side, S, K, dtype, where)
    return {**got, **feats}


def has_row_priors(posterior: dict | None, side: str) -> bool:
    """Whether ``posterior`` keeps the row priors of ``side`` (``"user"``/``"item"``)."""
    return posterior is not None and f"{side}_row_mean" in posterior


def _check_side(feats: dict, side: str, S: int, K: int, dtype, where: str) -> None:
    """One side's fields: prior mean and precisions together, coefficients only with
    them; each finite, of ``dtype`` and its shape; precisions > 0 (ValueError)."""
    names = [f"{side}_row_mean", f"{side}_row_prec", f"{side}_feature_coef"]
    have = [n for n in names if n in feats]
    if not have:
        return
    if names[0] not in feats or names[1] not in feats:
        raise ValueError(f"{where}: posterior/{have[0]} needs posterior/{names[0]} and "
                         f"posterior/{names[1]}")
    coef = feats.get(names[2])
    m = coef.shape[1] if coef is not None and coef.ndim == 3 else -1
    for name, shape in zip(names, ((S, K), (S, K), (S, m, K))):
        a = feats.get(name)
        if a is not None and (a.shape != shape or a.dtype != dtype or not np.isfinite(a).all()):
            raise ValueError(f"{where}: posterior/{name} must be finite {dtype} of shape "
                             f"{shape}, got {a.dtype} {a.shape}")
    if not (feats[names[1]] > 0).all():
        raise ValueError(f"{where}: posterior/{names[1]} must be > 0")
