"""iALS: implicit-feedback MF by weighted alternating least squares (:class:`mfjax.ImplicitALS`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="ImplicitALS", package=__name__, objective="ials", solvers=("als", "optax"),
    summary="iALS (weighted ALS on implicit feedback)", meshes=True,
    default_for="interactions", features=True, feature_ids=True)
