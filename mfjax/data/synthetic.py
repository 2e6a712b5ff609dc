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
    (``popularity="uniform"``). Pairs are sampled independently, so a
    (user, item) pair can repeat, as a re-rating would; the Ratings are built
    directly (no de-duplication), which the objective handles by counting the
    pair twice. Users or items that draw no rating keep their ID and
    parameters, so indices match ``Params`` rows exactly.

    Args:
        n_users, n_items: ID space sizes; IDs are ``0..n-1``.
        n_ratings: number of ratings.
        rank: k, the planted rank.
        noise: standard deviation of ε.
        popularity: "zipf" or "uniform".
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        ``(ratings, params)``: :class:`Ratings` with random timestamps over one
        year, and the true :class:`mfjax.core.Params` (float32).
    """
    import jax.numpy as jnp

    from ..core import Params

    for name, val in (("n_users", n_users), ("n_items", n_items), ("n_ratings", n_ratings), ("rank", rank)):
        if int(val) != val or val < 1:
            raise ValueError(f"synthetic: {name} must be a positive integer, got {val!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"synthetic: noise must be >= 0, got {noise!r}")
    if popularity not in ("zipf", "uniform"):
        raise ValueError(f"synthetic: popularity must be 'zipf' or 'uniform', got {popularity!r}")
    if n_users > np.iinfo(np.int32).max or n_items > np.iinfo(np.int32).max:
        raise ValueError("synthetic: n_users and n_items must fit in int32")

    rng = np.random.default_rng(seed)
    P, Q, bu, bi, mu = planted_params(rng, n_users, n_items, rank)

    users = _sample(rng, n_users, n_ratings, popularity, exponent=0.7)
    items = _sample(rng, n_items, n_ratings, popularity, exponent=1.0)

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


def _sample(rng, n: int, size: int, popularity: str, exponent: float) -> np.ndarray:
    """``size`` int32 draws from 0..n-1, uniform or with power-law weights."""
    if popularity == "uniform":
        return rng.integers(0, n, size, dtype=np.int32)
    # Inverse CDF: weight 1/rank^a, ranks shuffled so popularity is not ID order.
    cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(size), side="right")
    np.minimum(ranks, n - 1, out=ranks)  # guards u == cdf[-1] rounding
    return rng.permutation(n).astype(np.int32)[ranks]
