"""Bayesian factorization machine by Gibbs sampling (:class:`mfjax.BayesianFM`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="BayesianFM", package=__name__, objective="explicit", solvers=("gibbs",),
    summary="Bayesian factorization machine over user/item features and implicit-feedback "
            "blocks by Gibbs sampling (grouped priors, per-prediction uncertainty)",
    cli_defaults={"rank": 16, "burn_in": 10, "samples": 90}, features=True, feature_ids=True)
