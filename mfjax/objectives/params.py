"""The biased-MF parameter pytree, :class:`Params`, that every registered model holds.

It lives apart from the loss (:mod:`mfjax.objectives.explicit`, which re-exports it) so
what a model's parameters are, and how stored arrays become them again
(:meth:`Params.from_arrays`, for model files and checkpoints), is one small module.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Params"]


class Params(NamedTuple):
    """Parameters of a biased MF model (a pytree).

    Attributes:
        user_factors: ``p`` [n_users, k].
        item_factors: ``q`` [n_items, k].
        user_bias: ``b_u`` [n_users].
        item_bias: ``b_i`` [n_items].
        global_bias: ``μ`` [] (a scalar array).

    K independent models of the same tables ("members", as ``fit``'s
    ``ensemble`` trains) can share one Params with a member axis after the
    row axis: factors [n, K, k], biases [n, K], global bias [K]. :func:`loss`,
    :func:`manual_grad` and :func:`blocked_value_and_grad` then treat each
    member as its own model and sum the members' objectives.

    Every model's parameter pytree (``PARAMS`` of its package's ``parts``) is a
    NamedTuple of arrays like this one: its ``_fields`` name the ``params/<field>``
    arrays of saved models and checkpoints, ``n_users``/``n_items`` its rows, and
    :meth:`from_arrays` rebuilds and validates it from stored arrays.
    """

    user_factors: jax.Array
    item_factors: jax.Array
    user_bias: jax.Array
    item_bias: jax.Array
    global_bias: jax.Array

    @property
    def n_users(self) -> int:
        return self.user_factors.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]

    @property
    def rank(self) -> int:
        return self.user_factors.shape[1]

    @classmethod
    def from_arrays(cls, arrays: dict, where: str) -> "Params":
        """The parameters stored as ``arrays`` (field name -> NumPy array, every field),
        validated: one float dtype (float32/float64) for all, finite, each field's
        dimensions, a shared rank >= 1 and one bias per factor row.

        Raises:
            ValueError: naming ``where`` (the file) and the field at fault.
        """
        p = arrays
        dtype = p["global_bias"].dtype
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"{where}: params/global_bias has dtype {dtype}; expected "
                             "float32/float64")
        for k, a in p.items():
            if a.dtype != dtype:
                raise ValueError(f"{where}: params/{k} has dtype {a.dtype}, params/global_bias "
                                 f"{dtype}")
            if not np.isfinite(a).all():
                raise ValueError(f"{where}: params/{k} holds NaN or infinity")
        uf, itf = p["user_factors"], p["item_factors"]
        want = {"user_factors": 2, "item_factors": 2, "user_bias": 1, "item_bias": 1,
                "global_bias": 0}
        for k, nd in want.items():
            if p[k].ndim != nd:
                raise ValueError(f"{where}: params/{k} must be {nd}-D, got shape {p[k].shape}")
        if uf.shape[1] != itf.shape[1] or uf.shape[1] < 1:
            raise ValueError(f"{where}: user_factors {uf.shape} and item_factors {itf.shape} "
                             "must share a rank >= 1")
        for side, f in (("user", uf), ("item", itf)):
            if p[f"{side}_bias"].shape != (f.shape[0],):
                raise ValueError(f"{where}: params/{side}_bias has shape "
                                 f"{p[f'{side}_bias'].shape}; expected ({f.shape[0]},), one per "
                                 f"row of {side}_factors")
        return cls(**{k: jnp.asarray(v) for k, v in p.items()})
