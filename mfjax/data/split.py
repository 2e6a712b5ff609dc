"""Train/test splits of :class:`~mfjax.data.Ratings`.

Every split checks its arguments (``r``, ``test_fraction``, ``seed``, ...)
and names the function and the argument in the ValueError. Every split returns Ratings that share the parent's ``user_ids``/``item_ids``
(so a user index means the same in train and test), keeps the parent's order
within each part, and is deterministic for a given seed. Test users or items
with no training ratings are possible (cold start); the evaluation code
decides what to do with them.

Example:
    >>> from mfjax import datasets, split
    >>> ratings, _ = datasets.synthetic(100, 50, 2_000, seed=0)
    >>> train, test = split.holdout(ratings, test_fraction=0.2, seed=0)
    >>> (len(train), len(test))
    (1600, 400)

References:
    G. Shani, A. Gunawardana, "Evaluating Recommendation Systems",
    Recommender Systems Handbook, Springer, 2011 (random, per-user and
    temporal splits).
"""

from __future__ import annotations

import numpy as np

from .ratings import Ratings

__all__ = ["holdout", "kfold", "per_user", "temporal", "leave_k_out", "users", "cold_items",
           "cold_users"]


def _check_ratings(r, where: str) -> None:
    if not isinstance(r, Ratings):
        raise ValueError(f"{where}: r must be a Ratings, got {type(r).__name__}")


def _check_fraction(test_fraction, where: str = "split", name: str = "test_fraction") -> float:
    ok = isinstance(test_fraction, (int, float, np.integer, np.floating)) and not isinstance(
        test_fraction, (bool, np.bool_))
    if not ok or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"{where}: {name} must be in (0, 1), a number, got {test_fraction!r}")
    return float(test_fraction)


def _check_seed(seed, where: str) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_count(x, name: str, where: str, low: int, high: float = np.inf) -> int:
    """``x`` as an int in [low, high]: an integer (or integral float); not bool, None, NaN or str."""
    ok = (isinstance(x, (int, np.integer, float, np.floating)) and not isinstance(x, (bool, np.bool_))
          and np.isfinite(x) and int(x) == x and low <= x <= high)
    if not ok:
        rng = f"in [{low}, {int(high)}]" if np.isfinite(high) else f">= {low}"
        raise ValueError(f"{where}: {name} must be an integer {rng}, got {x!r}")
    return int(x)


def _n_test(n: int, fraction: float, what: str) -> int:
    if n < 2:
        raise ValueError(f"{what}: need at least 2 ratings to split, got {n}")
    # At least one rating on each side.
    return min(max(int(round(fraction * n)), 1), n - 1)


def _parts(r: Ratings, test_mask: np.ndarray) -> tuple[Ratings, Ratings]:
    return r.subset(~test_mask), r.subset(test_mask)


def holdout(r: Ratings, test_fraction: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
    """A uniformly random test set of ``round(test_fraction * n)`` ratings.

    Args:
        r: the ratings.
        test_fraction: share of ratings in the test set, in (0, 1).
        seed: seed for the permutation.

    Returns:
        ``(train, test)``.
    """
    _check_ratings(r, "holdout")
    f = _check_fraction(test_fraction, "holdout")
    n_test = _n_test(len(r), f, "holdout")
    perm = np.random.default_rng(_check_seed(seed, "holdout")).permutation(len(r))
    mask = np.zeros(len(r), dtype=bool)
    mask[perm[:n_test]] = True
    return _parts(r, mask)


def kfold(r: Ratings, k: int = 5, seed: int = 0) -> list[tuple[Ratings, Ratings]]:
    """k-fold cross-validation splits.

    A seeded permutation deals the ratings into k folds of sizes differing by
    at most one; fold j is the test set of the j-th pair. The test sets are
    disjoint and together cover every rating once.

    Args:
        r: the ratings.
        k: number of folds, >= 2 and <= len(r).
        seed: seed for the permutation.

    Returns:
        A list of k ``(train, test)`` pairs.
    """
    _check_ratings(r, "kfold")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float)) or int(k) != k or k < 2:
        raise ValueError(f"kfold: k must be an integer >= 2, got {k!r}")
    k = int(k)
    if len(r) < k:
        raise ValueError(f"kfold: need at least k={k} ratings, got {len(r)}")
    perm = np.random.default_rng(_check_seed(seed, "kfold")).permutation(len(r))
    fold = np.empty(len(r), dtype=np.int32)
    fold[perm] = np.arange(len(r)) % k
    return [_parts(r, fold == j) for j in range(k)]


def per_user(
    r: Ratings, test_fraction: float = 0.2, seed: int = 0, min_train: int = 1
) -> tuple[Ratings, Ratings]:
    """Hold out a random share of each user's ratings.

    User u with c ratings puts ``min(round(test_fraction * c), c - min_train)``
    of them (at least 0) in the test set, so every user keeps ``min_train``
    training ratings where it has them, and users with ``c <= min_train``
    stay entirely in train. Vectorized: one sort by (user, random key).

    Args:
        r: the ratings.
        test_fraction: share of each user's ratings to test on, in (0, 1).
        seed: seed for the random keys.
        min_train: ratings each user keeps in train, >= 0.

    Returns:
        ``(train, test)``.
    """
    _check_ratings(r, "per_user")
    f = _check_fraction(test_fraction, "per_user")
    seed = _check_seed(seed, "per_user")
    if (isinstance(min_train, (bool, np.bool_)) or not isinstance(min_train, (int, np.integer))
            or min_train < 0):
        raise ValueError(f"per_user: min_train must be an integer >= 0, got {min_train!r}")
    n = len(r)
    if n == 0:
        raise ValueError("per_user: no ratings to split")
    counts = np.bincount(r.users, minlength=r.n_users)
    n_test = np.clip(np.floor(f * counts + 0.5).astype(np.int64), 0, np.maximum(counts - int(min_train), 0))
    key = np.random.default_rng(seed).random(n)
    order = np.lexsort((key, r.users))  # by user, random within user
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    u_sorted = r.users[order]
    rank_in_user = np.arange(n) - starts[u_sorted]
    mask = np.zeros(n, dtype=bool)
    mask[order[rank_in_user < n_test[u_sorted]]] = True
    return _parts(r, mask)


def temporal(r: Ratings, test_fraction: float = 0.2) -> tuple[Ratings, Ratings]:
    """A global time cut: the latest ratings are the test set.

    The cut time t is the timestamp of the rating at position
    ``n - round(test_fraction * n)`` in time order; test holds every rating
    at or after t, train every rating before it. So no training rating is
    later than any test rating, and the test share can exceed
    ``test_fraction`` when many ratings share the cut time.

    Args:
        r: ratings with timestamps.
        test_fraction: target share of ratings in the test set, in (0, 1).

    Returns:
        ``(train, test)``.

    Raises:
        ValueError: no timestamps, or all ratings share one timestamp.
    """
    _check_ratings(r, "temporal")
    f = _check_fraction(test_fraction, "temporal")
    if r.timestamps is None:
        raise ValueError("temporal: these ratings have no timestamps; use holdout or per_user")
    n_test = _n_test(len(r), f, "temporal")
    ts = r.timestamps
    cut = np.partition(ts, len(r) - n_test)[len(r) - n_test]
    mask = ts >= cut
    if mask.all():
        # The cut landed on the earliest time; move it to the next distinct time.
        later = ts[ts > cut]
        if not later.size:
            raise ValueError("temporal: all ratings have the same timestamp, so no time cut exists")
        mask = ts >= later.min()
    return _parts(r, mask)


def leave_k_out(r: Ratings, k: int = 1, seed: int = 0) -> tuple[Ratings, Ratings]:
    """Hold out k interactions of every user who has more than k.

    With timestamps the held-out ones are each user's k latest (ties broken by a
    seeded random key, so the split is deterministic); without, k chosen at
    random (seeded). A user with c <= k interactions stays entirely in train, so
    every test user has at least one training interaction.

    Args:
        r: the ratings or interactions.
        k: interactions held out per user, >= 1.
        seed: seed of the random keys.

    Returns:
        ``(train, test)``; test has exactly ``min(k, c_u)`` rows of every user
        with ``c_u > k``, none of the others.
    """
    _check_ratings(r, "leave_k_out")
    k, n = _check_count(k, "k", "leave_k_out", 1), len(r)
    seed = _check_seed(seed, "leave_k_out")
    if n == 0:
        raise ValueError("leave_k_out: no ratings to split")
    counts = np.bincount(r.users, minlength=r.n_users)
    key = np.random.default_rng(seed).random(n)
    latest = -r.timestamps.astype(np.float64) if r.timestamps is not None else np.zeros(n)
    order = np.lexsort((key, latest, r.users))  # by user, latest first, then random
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    u_sorted = r.users[order]
    rank_in_user = np.arange(n) - starts[u_sorted]
    mask = np.zeros(n, dtype=bool)
    mask[order[(rank_in_user < k) & (counts[u_sorted] > k)]] = True
    return _parts(r, mask)


def users(r: Ratings, n_test_users: int, fold_in_fraction: float = 0.8,
          seed: int = 0) -> tuple[Ratings, Ratings, Ratings]:
    """Strong generalization (Liang et al. 2018): held-out users, each split in two.

    ``n_test_users`` users drawn at random (seeded) leave the training data
    entirely. Of each such user's c interactions, ``round(fold_in_fraction c)``
    (at least 1, and at most c − 1 when c >= 2) are the fold-in part, given to
    the model at evaluation time (:func:`mfjax.evaluation.metrics.evaluate_fold_in`), and
    the rest are the evaluated part. A held-out user with one interaction has
    only a fold-in part.

    Args:
        r: the interactions.
        n_test_users: users to hold out, in [1, n_users with interactions − 1].
        fold_in_fraction: share of a held-out user's interactions given, in (0, 1).
        seed: seed of the user draw and of the per-user split.

    Returns:
        ``(train, fold_in, test)``: disjoint, together ``r``; fold_in and test
        hold only the held-out users, train none of them.

    References:
        D. Liang, R. G. Krishnan, M. D. Hoffman, T. Jebara, "Variational
        Autoencoders for Collaborative Filtering", WWW 2018.
    """
    _check_ratings(r, "users")
    f = _check_fraction(fold_in_fraction, "users", "fold_in_fraction")
    seed = _check_seed(seed, "users")
    active = np.flatnonzero(np.bincount(r.users, minlength=r.n_users))
    n_test_users = _check_count(n_test_users, "n_test_users", "users", 1, len(active) - 1)
    rng = np.random.default_rng(seed)
    held = np.zeros(r.n_users, bool)
    held[rng.choice(active, int(n_test_users), replace=False)] = True
    n = len(r)
    counts = np.bincount(r.users, minlength=r.n_users)
    n_fold = np.clip(np.floor(f * counts + 0.5).astype(np.int64), 1, np.maximum(counts - 1, 1))
    order = np.lexsort((rng.random(n), r.users))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    u_sorted = r.users[order]
    in_fold = np.zeros(n, bool)
    in_fold[order[np.arange(n) - starts[u_sorted] < n_fold[u_sorted]]] = True
    is_held = held[r.users]
    return r.subset(~is_held), r.subset(is_held & in_fold), r.subset(is_held & ~in_fold)


def cold_items(r: Ratings, fraction: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
    """Cold-start items: a seeded share of the items leaves training entirely.

    ``round(fraction · n)`` of the n items with interactions (at least 1, at most
    n − 1) are drawn at random; every interaction of theirs goes to test, every other
    one to train. The model never sees a cold item's interactions, only (with
    ``features=``) its metadata; rank the test users within the cold items with
    ``evaluate_ranking(..., candidates=np.unique(test.item_ids[test.items]))``.

    Args:
        r: the interactions.
        fraction: share of the items (with interactions) made cold, in (0, 1).
        seed: seed of the draw.

    Returns:
        ``(train, test)``: disjoint, together ``r``; test holds exactly the cold items'
        interactions.
    """
    return _cold(r, fraction, seed, "cold_items", r.items, r.n_items)


def cold_users(r: Ratings, fraction: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
    """Cold-start users: as :func:`cold_items` with users (their features known, none
    of their interactions)."""
    return _cold(r, fraction, seed, "cold_users", r.users, r.n_users)


def _cold(r, fraction, seed, where, side, n):
    _check_ratings(r, where)
    f = _check_fraction(fraction, where, "fraction")
    seed = _check_seed(seed, where)
    active = np.flatnonzero(np.bincount(side, minlength=n))
    if len(active) < 2:
        raise ValueError(f"{where}: needs at least 2 {where[5:]} with interactions, got "
                         f"{len(active)}")
    n_cold = min(max(1, int(round(f * len(active)))), len(active) - 1)
    cold = np.zeros(n, bool)
    cold[np.random.default_rng(seed).choice(active, n_cold, replace=False)] = True
    test = cold[side]
    return r.subset(~test), r.subset(test)
