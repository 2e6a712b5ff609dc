"""Explicit biased MF by exact alternating least squares (:class:`mfjax.ALS`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="ALS", package=__name__, objective="explicit", solvers=("als",),
    summary="explicit biased MF by exact alternating least squares",
    cli_defaults={"rank": 10, "reg": 0.08, "epochs": 6})
