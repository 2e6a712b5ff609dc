"""BayesianFM's ``Model.posterior``: Bayesian MF's per-sample arrays plus feature maps.

Beyond :data:`mfjax.solvers.gibbs.posterior.SAMPLE_FIELDS` (per-sample biases, μ, τ),
a BayesianFM trained with a side's attribute table keeps, per kept sample s, that
side's ID-prior mean and precisions and its attribute coefficients
(:mod:`mfjax.models.bayesian_fm.serving` serves IDs known only from features with them):

=========================== ============== ==========================================
field                       shape          what
=========================== ============== ==========================================
``user_feature_mean``       [S, K]         μ_Uˢ, the ID prior's mean (K = k + 1)
``user_feature_prec``       [S, K]         λ_Uˢ > 0, its precisions (diagonal)
``user_feature_coef``       [S, m_U, K]    B_Uˢ of the user table's m_U columns
``item_feature_*``          likewise       the item side
=========================== ============== ==========================================

All three of a side or none. Files saved before they were kept (or trained without
attributes) have none: they load, and their feature-only IDs take the ID fallback.
"""
from __future__ import annotations

import numpy as np

from ...solvers.gibbs import posterior as gibbs

__all__ = ["FEATURE_FIELDS", "POSTERIOR_FIELDS", "check_posterior"]

FEATURE_FIELDS = tuple(f"{side}_feature_{f}" for side in ("user", "item")
                       for f in ("mean", "prec", "coef"))
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
        names = [f"{side}_feature_{f}" for f in ("mean", "prec", "coef")]
        have = [n for n in names if n in feats]
        if not have:
            continue
        if len(have) != 3:
            raise ValueError(f"{where}: posterior needs all or none of "
                             f"{', '.join('posterior/' + n for n in names)}; got {have}")
        coef = feats[names[2]]
        m = coef.shape[1] if coef.ndim == 3 else -1
        for name, shape in zip(names, ((S, K), (S, K), (S, m, K))):
            a = feats[name]
            if a.shape != shape or a.dtype != dtype or not np.isfinite(a).all():
                raise ValueError(f"{where}: posterior/{name} must be finite {dtype} of shape "
                                 f"{shape}, got {a.dtype} {a.shape}")
        if not (feats[names[1]] > 0).all():
            raise ValueError(f"{where}: posterior/{names[1]} must be > 0")
    return {**got, **feats}
