"""Logistic matrix factorization for implicit feedback (Johnson 2014; :class:`mfjax.LogisticMF`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="LogisticMF", package=__name__, objective="logistic", solvers=("newton",),
    summary="logistic MF (Johnson 2014) by alternating Newton-CG sweeps")
