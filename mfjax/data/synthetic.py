"""Synthetic ratings from a planted biased low-rank model, so tests and benchmarks know the answer.

:func:`synthetic` draws a log whose true parameters are returned with it: the
RMSE those parameters score is the noise level ``noise`` (the floor a fitted
model can reach). :func:`planted_params` draws the same model without the
ratings, for benchmarks that stream their own.

Example:
    >>> from mfjax import datasets
    >>> ratings, truth = datasets.synthetic(100, 50, 2_000, rank=4, seed=0)
    >>> (len(ratings), ratings.n_users, ratings.n_items)
    (2000, 100, 50)

References:
    Y. Koren, R. Bell, C. Volinsky, "Matrix Factorization Techniques for
    Recommender Systems", IEEE Computer 42(8), 2009 (the biased model).
"""

from __future__ import annotations

import numpy as np

from .ratings import Ratings

__all__ = ["synthetic", "planted_params"]


def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    rank: int = 8,
    noise: float = 0.5,
    popularity: str = "zipf",
    seed: int = 0,
):
    """Ratings drawn from a planted biased low-rank model.

    ``r = μ + b_u + b_i + <p_u, q_i> + ε`` with μ = 3.5, ``b_u ~ N(0, 0.3²)``,
    ``b_i ~ N(0, 0.5²)``, factor entries ``~ N(0, σ²)`` with ``σ² = sqrt(0.5 / k)``
    so the interaction ``<p_u, q_i>`` has variance 0.5 whatever the rank,
    and ``ε ~ N(0, noise²)``. Ratings are not clipped or rounded, so the true
    parameters score an RMSE of ``noise`` (up to sampling error): the floor a
    fitted model can reach. The scale is roughly that of 1-5 star ratings.

    Who rates what follows a power law like real logs (``popularity="zipf"``:
    the j-th most active user/popular item has weight ``1/j^0.7`` resp.
    ``1/j``, with ranks shuffled over the IDs), or is uniform
    (``popularity="uniform"``). A pair's weight is the product of its user's
    and its item's, and the ``n_ratings`` pairs are **distinct**, drawn by
    weight without replacement (successive sampling: draw by weight, skip a
    pair already drawn), so no pair is in both parts of a split and a file
    round trip keeps every row. Where a head user or item would want more
    ratings than there are partners, it is capped at all of them, so the
    counts are flatter at the very top than the weights. Users or items that
    draw no rating keep their ID and parameters, so indices match ``Params``
    rows exactly.

    Args:
        n_users, n_items: ID space sizes; IDs are ``0..n-1``.
        n_ratings: number of ratings, at most ``n_users * n_items``.
        rank: k, the planted rank.
        noise: standard deviation of ε.
        popularity: "zipf" or "uniform".
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        ``(ratings, params)``: :class:`Ratings` with random timestamps over one
        year, and the true :class:`mfjax.objectives.explicit.Params` (float32).

    Raises:
        ValueError: a bad argument, or more ratings than (user, item) pairs.
    """
    import jax.numpy as jnp

    from ..objectives.explicit import Params

    for name, val in (("n_users", n_users), ("n_items", n_items), ("n_ratings", n_ratings), ("rank", rank)):
        if int(val) != val or val < 1:
            raise ValueError(f"synthetic: {name} must be a positive integer, got {val!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"synthetic: noise must be >= 0, got {noise!r}")
    if popularity not in ("zipf", "uniform"):
        raise ValueError(f"synthetic: popularity must be 'zipf' or 'uniform', got {popularity!r}")
    if n_users > np.iinfo(np.int32).max or n_items > np.iinfo(np.int32).max:
        raise ValueError("synthetic: n_users and n_items must fit in int32")
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"synthetic: n_ratings={n_ratings:,} is more than the {n_users * n_items:,} "
            f"distinct (user, item) pairs of {n_users:,} users x {n_items:,} items"
        )

    rng = np.random.default_rng(seed)
    P, Q, bu, bi, mu = planted_params(rng, n_users, n_items, rank)

    users, items = _distinct_pairs(rng, n_users, n_items, n_ratings, popularity)

    ratings = np.empty(n_ratings, dtype=np.float32)
    chunk = 1 << 20  # bounds the [chunk, k] gathers to a few tens of MB
    for s in range(0, n_ratings, chunk):
        u, i = users[s : s + chunk], items[s : s + chunk]
        ratings[s : s + chunk] = np.einsum("nk,nk->n", P[u], Q[i]) + bu[u] + bi[i] + mu
    ratings += np.float32(noise) * rng.standard_normal(n_ratings, dtype=np.float32)
    # One year of made-up times from 2020-01-01, so temporal splits can be tried.
    timestamps = rng.integers(1_577_836_800, 1_577_836_800 + 365 * 86_400, n_ratings, dtype=np.int64)

    r = Ratings(users, items, ratings, timestamps, np.arange(n_users), np.arange(n_items))
    params = Params(
        user_factors=jnp.asarray(P, jnp.float32),
        item_factors=jnp.asarray(Q, jnp.float32),
        user_bias=jnp.asarray(bu, jnp.float32),
        item_bias=jnp.asarray(bi, jnp.float32),
        global_bias=jnp.asarray(mu, jnp.float32),
    )
    return r, params


def planted_params(rng, n_users: int, n_items: int, rank: int):
    """The planted model's parameters as float32 NumPy arrays ``(P, Q, b_u, b_i, μ)``.

    Factors ~ N(0, sqrt(0.5 / rank)) so ``<p_u, q_i>`` has variance 0.5 at any
    rank; b_u ~ N(0, 0.3²), b_i ~ N(0, 0.5²), μ = 3.5. Draws from ``rng`` in
    that order (benchmarks rebuild the same model without the ratings).
    """
    scale = (0.5 / rank) ** 0.25
    P = (scale * rng.standard_normal((n_users, rank), dtype=np.float32)).astype(np.float32)
    Q = (scale * rng.standard_normal((n_items, rank), dtype=np.float32)).astype(np.float32)
    bu = (0.3 * rng.standard_normal(n_users, dtype=np.float32)).astype(np.float32)
    bi = (0.5 * rng.standard_normal(n_items, dtype=np.float32)).astype(np.float32)
    return P, Q, bu, bi, np.float32(3.5)


def _weights(rng, n: int, popularity: str, exponent: float) -> np.ndarray:
    """Draw probabilities [n]: uniform, or 1/rank^a with the ranks shuffled over the IDs."""
    if popularity == "uniform":
        return np.full(n, 1.0 / n)
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return (w / w.sum())[rng.permutation(n)]


def _distinct_pairs(rng, n_users: int, n_items: int, n: int, popularity: str):
    """``n`` distinct (user, item) pairs as int32 arrays, by weight without replacement, shuffled.

    Sparse requests draw pairs with replacement in vectorised rounds (user
    and item counts from a multinomial, so no per-draw search) and keep the
    pairs not drawn in an earlier round (successive sampling), topping up
    until ``n``; each round is sized by the last round's share of new pairs.
    Where a round overshoots, the new pairs kept are those drawn first: a
    pair drawn c times in the round first appears at a Beta(1, c) time.
    Dense requests (at least a quarter of all pairs, or under 2^20 pairs)
    use the equivalent Efraimidis-Spirakis keys over every pair, so asking
    for all pairs does not wait on the rarest ones.
    """
    wu = _weights(rng, n_users, popularity, 0.7)
    wi = _weights(rng, n_items, popularity, 1.0)
    n_pairs = n_users * n_items
    if n_pairs <= max(4 * n, 1 << 20):
        # Key E/w with E ~ Exp(1): the n smallest are a successive weighted sample.
        key = rng.standard_exponential(n_pairs, dtype=np.float32)
        key /= np.outer(wu.astype(np.float32), wi.astype(np.float32)).ravel()
        pick = np.argpartition(key, n - 1)[:n] if n < n_pairs else np.arange(n_pairs)
        del key
    else:
        taken = np.empty(0, dtype=np.int64)  # sorted pairs drawn so far
        share = 1.0
        while len(taken) < n:
            need = n - len(taken)
            m = int(min(need / max(share, 1e-3) * 1.1, 1 << 26)) + 1024
            u = np.repeat(np.arange(n_users, dtype=np.int64), rng.multinomial(m, wu))
            i = np.repeat(np.arange(n_items, dtype=np.int64), rng.multinomial(m, wi))
            k = np.sort(u * n_items + rng.permutation(i))
            del u, i
            start = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
            counts = np.diff(np.append(start, m))
            k = k[start]
            if len(taken):
                pos = np.minimum(np.searchsorted(taken, k), len(taken) - 1)
                new = taken[pos] != k
                k, counts = k[new], counts[new]
            share = max(len(k) / m, 1e-6)
            if len(k) > need:
                first = 1.0 - rng.random(len(k)) ** (1.0 / counts)  # Beta(1, c)
                k = np.sort(k[np.argpartition(first, need - 1)[:need]])
            taken = np.sort(np.concatenate((taken, k)))
        pick = taken
    pick = pick[rng.permutation(n)]
    return (pick // n_items).astype(np.int32), (pick % n_items).astype(np.int32)
