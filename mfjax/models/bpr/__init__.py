"""Bayesian personalized ranking by Optax minibatches of sampled triples (:class:`mfjax.BPR`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="BPR", package=__name__, objective="bpr", solvers=("optax",),
    summary="Bayesian personalized ranking by Optax minibatches", meshes=True,
    features=True, feature_ids=True)
