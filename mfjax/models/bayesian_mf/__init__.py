"""Bayesian PMF with biases by Gibbs sampling (:class:`mfjax.BayesianMF`)."""
from ..record import ModelRecord

#: ``fit(train)`` / ``fit(objective="explicit")`` train Bayesian MF up to this many
#: ratings (ML-100K, ML-1M: the most accurate, in seconds) and :class:`mfjax.MF` above
#: (a 100-sweep Gibbs run would take minutes at ML-10M/20M, MF's 25 epochs well under one).
GIBBS_MAX_RATINGS = 2_000_000

RECORD = ModelRecord(
    name="BayesianMF", package=__name__, objective="explicit", solvers=("gibbs",),
    summary="Bayesian PMF with biases by Gibbs sampling (per-prediction uncertainty)",
    default_for="ratings", data_size_default=GIBBS_MAX_RATINGS,
    cli_defaults={"rank": 12, "burn_in": 10, "samples": 90})
