"""Explicit biased MF by Optax minibatches (:class:`mfjax.MF`, the seed notebook's model)."""
from ..record import ModelRecord

RECORD = ModelRecord(
    name="MF", package=__name__, objective="explicit", solvers=("optax",),
    summary="explicit biased MF by minibatches of any Optax optimizer", meshes=True,
    default_for="ratings",
    cli_defaults={"rank": 128, "reg": 0.1, "bias_reg": 0.01, "optimizer": "adam",
                  "epochs": 25, "init_scale": 0.1})
