"""Averaged ensembles: K members of rank k/K trained side by side, returned as one model.

``fit(ensemble=K)`` trains K independently initialized models of rank ``k/K`` on the
same minibatches, as a member axis in :class:`mfjax.Params` (factors
``[n, K, k/K]``, biases ``[n, K]``, μ ``[K]``); the routes take that axis as is, so
the members' objectives add and their gradients never mix. The average prediction

    (1/K) Σ_j (μ_j + b_uj + b_ij + <p_uj, q_ij>) = μ̄ + b̄_u + b̄_i + <P_u, Q_i>,
    P_u = [p_u1, ..., p_uK] / √K   (Q alike)

is itself one rank-k model (:func:`combine`), so predict, save and recommend are
unchanged. Averaging removes much of a single fit's variance (ML-100K, 5 folds: one
rank-128 model 0.910 RMSE, 16 averaged rank-8 members 0.904).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...objectives.explicit import Params

__all__ = ["MIN_MEMBER_RANK", "MAX_MEMBERS", "n_members", "split_members", "combine",
           "combine_members"]

#: Members of the ``ensemble="auto"`` setting have at least this rank.
MIN_MEMBER_RANK = 8
MAX_MEMBERS = 16


def n_members(rank: int, ensemble) -> int:
    """``ensemble="auto"``: as many members as keeps each at rank >= 8, at most 16."""
    if ensemble == "auto":
        cap = max(1, min(MAX_MEMBERS, rank // MIN_MEMBER_RANK))
        return max(d for d in range(1, cap + 1) if rank % d == 0)
    if not isinstance(ensemble, (int, np.integer)) or ensemble < 1 or rank % ensemble:
        raise ValueError(f"fit: ensemble must be 'auto' or a positive divisor of rank={rank}, "
                         f"got {ensemble!r}")
    return int(ensemble)


def split_members(p: Params, members: int) -> Params:
    """A plain rank-k model's init as ``members`` models of rank k/members.

    One member keeps the plain layout (a unit member axis makes XLA's CPU
    gathers ~3x slower).
    """
    if members == 1:
        return p
    nu, ni = p.n_users, p.n_items
    return Params(
        user_factors=p.user_factors.reshape(nu, members, -1),
        item_factors=p.item_factors.reshape(ni, members, -1),
        user_bias=jnp.repeat(p.user_bias[:, None], members, axis=1),
        item_bias=jnp.repeat(p.item_bias[:, None], members, axis=1),
        global_bias=jnp.repeat(p.global_bias[None], members),
    )


def combine(p: Params) -> Params:
    """The members as one plain model whose prediction is their average.

    ``(1/K) Σ_j (μ_j + b_uj + b_ij + <p_uj, q_ij>) = μ̄ + b̄_u + b̄_i + <P_u, Q_i>``
    with ``P_u = [p_u1, ..., p_uK] / √K`` (and Q alike): exact, and the same
    size as a single rank-k model. Plain parameters come back as they are.
    """
    return p if p.global_bias.ndim == 0 else combine_members(p)


@jax.jit
def combine_members(p: Params) -> Params:
    """:func:`combine` for parameters with a member axis (jitted)."""
    members = p.global_bias.shape[0]
    scale = 1.0 / math.sqrt(members)
    return Params(
        user_factors=p.user_factors.reshape(p.user_factors.shape[0], -1) * scale,
        item_factors=p.item_factors.reshape(p.item_factors.shape[0], -1) * scale,
        user_bias=jnp.mean(p.user_bias, axis=1),
        item_bias=jnp.mean(p.item_bias, axis=1),
        global_bias=jnp.mean(p.global_bias),
    )
