"""Per-sample predictions of a posterior-mean (Gibbs) model, and their spread.

A Gibbs model (``fit(solver="gibbs")``) is one rank k·S model whose factors are
S samples' factors side by side, each scaled by 1/√S (:func:`mfjax.solvers.gibbs.chain.average_params`).
Block s of the factors (columns s·k … (s+1)·k − 1) therefore gives
⟨p_uˢ, q_iˢ⟩ / S, and with the per-sample biases, μ and noise precisions that
the model keeps (``Model.posterior``) each sample's prediction is recovered:

    r̂_s(u, i) = μ_s + b_uˢ + b_iˢ + S · ⟨P[u, block s], Q[i, block s]⟩.

The predictive standard deviation of a new rating is

    σ(u, i) = sqrt( var_s r̂_s(u, i) + mean_s 1/τ_s )

(the posterior spread of the mean rating plus the observation noise; population
variance over the S samples). An unknown user or item (index −1) drops that
side's bias and the factor term, as :meth:`mfjax.Model.predict` does.

The posterior also keeps each sample's prior hyperparameters (:data:`PRIOR_FIELDS`: the
Normal-Wishart draws μ_U, Λ_U, μ_V, Λ_V of the sweep that drew the sample, over rows
[p; b] of D = k+1 numbers), with which a partial fit re-solves a row per sample
(:mod:`mfjax.models.bayesian_mf.refresh`). Files saved before they were kept hold only
:data:`SAMPLE_FIELDS`; they load, and refresh with the ridge.
"""
from __future__ import annotations

import numpy as np

from ...objectives.explicit import Params

__all__ = ["POSTERIOR_FIELDS", "SAMPLE_FIELDS", "PRIOR_FIELDS", "has_priors",
           "sample_predictions", "predictive_std", "check_posterior", "posterior_samples"]

#: Arrays every ``Model.posterior`` holds: per-sample biases [S, n], μ [S], noise precisions τ [S].
SAMPLE_FIELDS = ("user_bias", "item_bias", "global_bias", "tau")
#: Each sample's row priors: means μ_U, μ_V [S, D] and precisions Λ_U, Λ_V [S, D, D], D = k+1
#: (all four or none: files saved before they were kept have none).
PRIOR_FIELDS = ("user_prior_mean", "user_prior_prec", "item_prior_mean", "item_prior_prec")
#: Every array ``Model.posterior`` may hold (``posterior/<field>`` in a model file).
POSTERIOR_FIELDS = SAMPLE_FIELDS + PRIOR_FIELDS


def has_priors(posterior: dict | None) -> bool:
    """Whether ``posterior`` holds the samples' prior hyperparameters (:data:`PRIOR_FIELDS`)."""
    return posterior is not None and all(k in posterior for k in PRIOR_FIELDS)


def sample_predictions(params: Params, posterior: dict, users, items) -> np.ndarray:
    """Each sample's (unclipped) prediction [S, n] for row indices (−1: unknown).

    Args:
        params: the rank k·S averaged model.
        posterior: ``{"user_bias" [S, n_users], "item_bias" [S, n_items],
            "global_bias" [S], "tau" [S]}``.
        users, items: row indices [n]; −1 marks an unknown ID.
    """
    u, i = np.asarray(users), np.asarray(items)
    S = int(np.shape(posterior["tau"])[0])
    P, Q = np.asarray(params.user_factors), np.asarray(params.item_factors)
    k = P.shape[1] // S
    ku, ki = u >= 0, i >= 0
    both = ku & ki
    pu = P[np.where(ku, u, 0)].reshape(-1, S, k)
    qi = Q[np.where(ki, i, 0)].reshape(-1, S, k)
    dot = S * np.einsum("nsk,nsk->sn", pu, qi) * both[None]
    bu = np.asarray(posterior["user_bias"])[:, np.where(ku, u, 0)] * ku[None]
    bi = np.asarray(posterior["item_bias"])[:, np.where(ki, i, 0)] * ki[None]
    return np.asarray(posterior["global_bias"])[:, None] + bu + bi + dot


def predictive_std(params: Params, posterior: dict, users, items, *, chunk: int = 1 << 16):
    """σ(u, i) [n] (module docstring), computed ``chunk`` pairs at a time."""
    u, i = np.asarray(users), np.asarray(items)
    noise = float(np.mean(1.0 / np.asarray(posterior["tau"], np.float64)))
    out = np.empty(u.shape[0], np.float64)
    for a in range(0, u.shape[0], chunk):
        pred = sample_predictions(params, posterior, u[a:a + chunk], i[a:a + chunk]).astype(np.float64)
        out[a:a + chunk] = np.sqrt(pred.var(axis=0) + noise)
    return out


def posterior_samples(config: dict | None) -> tuple[int | None, int | None]:
    """(S, k): the samples a Gibbs model kept and its per-sample rank, as its config
    records them (None where it does not). The one place that reads them."""
    config = config or {}
    S = config.get("gibbs_kept", (config.get("options") or {}).get("samples"))
    k = config.get("rank")
    as_int = lambda v: int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None
    return as_int(S), as_int(k)


def check_posterior(arrays: dict, params: Params, where: str,
                    config: dict | None = None) -> dict | None:
    """A model file's ``posterior/<field>`` arrays, checked against ``params``; None if absent.

    The file holds :data:`SAMPLE_FIELDS`, and :data:`PRIOR_FIELDS` (all four) unless it
    was saved before they were kept. Beyond shapes, the S samples must be the ones the
    averaged model was made of (:func:`mfjax.solvers.gibbs.chain.average_params`): their
    biases and μ average to the model's, and, where ``config`` records them, S is the
    number of samples kept and the factor width is S times the per-sample rank. A
    posterior cut to fewer samples would otherwise load and give a wrong
    ``predict(return_std=True)``. The prior precisions must be symmetric positive definite.

    Raises:
        ValueError: naming ``where``, if a field is missing or extra, of the wrong shape,
            dtype or not finite, τ ≤ 0, the sample count S does not divide the rank, a
            prior precision is not symmetric positive definite, or the samples are not
            the model's (above).
    """
    got = {k: arrays[f"posterior/{k}"] for k in POSTERIOR_FIELDS if f"posterior/{k}" in arrays}
    extra = sorted(k for k in arrays if k.startswith("posterior/") and k[10:] not in POSTERIOR_FIELDS)
    if not got and not extra:
        return None
    priors = [k for k in PRIOR_FIELDS if k in got]
    if extra or any(k not in got for k in SAMPLE_FIELDS) or len(priors) not in (0, 4):
        raise ValueError(f"{where}: posterior arrays must be exactly "
                         f"{', '.join('posterior/' + k for k in SAMPLE_FIELDS)}, and all or "
                         f"none of {', '.join('posterior/' + k for k in PRIOR_FIELDS)}")
    S = got["tau"].shape[0] if got["tau"].ndim == 1 else 0
    n_users, n_items = params.user_factors.shape[0], params.item_factors.shape[0]
    width = params.user_factors.shape[1]
    D = width // max(S, 1) + 1
    want = {"user_bias": (S, n_users), "item_bias": (S, n_items), "global_bias": (S,), "tau": (S,),
            "user_prior_mean": (S, D), "user_prior_prec": (S, D, D),
            "item_prior_mean": (S, D), "item_prior_prec": (S, D, D)}
    dtype = np.asarray(params.global_bias).dtype
    _check_shapes(got, SAMPLE_FIELDS, want, dtype, where)
    if S < 1 or width % S or not (got["tau"] > 0).all():
        raise ValueError(f"{where}: posterior holds {S} samples for rank {width} (S must "
                         "divide it) and τ must be > 0")
    _check_same_samples(got, params, S, config, where)  # before the priors: names truncation
    _check_shapes(got, priors, want, dtype, where)
    for k in ("user_prior_prec", "item_prior_prec") if priors else ():
        _check_precisions(got[k], f"{where}: posterior/{k}")
    return got


def _check_shapes(got: dict, fields, want: dict, dtype, where: str) -> None:
    """Each of ``fields`` finite, of ``dtype`` and of shape ``want[field]``, else ValueError."""
    for k in fields:
        a = got[k]
        if a.shape != want[k] or a.dtype != dtype or not np.isfinite(a).all():
            raise ValueError(f"{where}: posterior/{k} must be finite {dtype} of shape {want[k]}, "
                             f"got {a.dtype} {a.shape}")


def _check_precisions(prec: np.ndarray, where: str) -> None:
    """Each [D, D] matrix of ``prec`` [S, D, D] symmetric positive definite, else ValueError."""
    a = np.asarray(prec, np.float64)
    scale = 1.0 + float(np.max(np.abs(a), initial=0.0))
    try:
        if np.max(np.abs(a - np.swapaxes(a, 1, 2)), initial=0.0) > 1e-5 * scale:
            raise np.linalg.LinAlgError("not symmetric")
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise ValueError(f"{where}: a prior precision is not symmetric positive definite") from None


def _check_same_samples(got: dict, params: Params, S: int, config, where: str) -> None:
    """The posterior's S samples average to ``params`` and match ``config`` (see check_posterior)."""
    kept, k = posterior_samples(config)
    width = params.user_factors.shape[1]
    if kept is not None and k is not None and (S != kept or width != S * k):
        raise ValueError(f"{where}: the posterior holds {S} samples but the model was averaged "
                         f"over {kept} samples of rank {k} (factor width {width}); the posterior "
                         "arrays are truncated or belong to another model")
    for name, mine in (("user_bias", params.user_bias), ("item_bias", params.item_bias),
                       ("global_bias", params.global_bias)):
        mean = np.asarray(got[name], np.float64).mean(axis=0)
        mine = np.asarray(mine, np.float64)
        tol = 1e-4 * (1.0 + float(np.max(np.abs(mine), initial=0.0)))
        if np.max(np.abs(mean - mine), initial=0.0) > tol:
            raise ValueError(f"{where}: the mean over the posterior's {S} samples of "
                             f"posterior/{name} is not the model's {name}; the posterior arrays "
                             "are truncated or belong to another model")
