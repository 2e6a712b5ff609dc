"""A factorization machine over user/item features trained by Optax minibatches (:class:`mfjax.FM`)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="FM", package=__name__, objective="fm", solvers=("optax",),
    summary="factorization machine over user/item features and implicit-feedback blocks "
            "by Optax minibatches (hand-written O(nk) gradient)", meshes=True,
    cli_defaults={"rank": 32, "reg": 0.05, "epochs": 30}, features=True, feature_ids=True)
