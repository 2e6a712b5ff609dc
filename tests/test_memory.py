"""Up-front memory estimates: hopeless fits are refused at once with the figure (#22 item 18)."""
import numpy as np
import pytest

import mfjax
from mfjax.solvers.memory import InsufficientMemoryError, available_bytes, check_memory

#: One spec per solver route, from the registry (ImplicitALS also by its Optax check).
ROUTES = {**{name: r.spec() for name, r in mfjax.models.REGISTRY.items()},
          "ImplicitALS-optax": mfjax.ImplicitALS(solver="optax")}


def estimate(spec, backend="cpu", **shape):
    return mfjax.models.record_of(spec).memory_bytes(spec, backend=backend, **shape)


def small(nonnegative=True):
    rng = np.random.default_rng(0)
    pairs = rng.choice(300 * 200, 3000, replace=False)
    values = rng.integers(1, 6, 3000).astype(float)
    return mfjax.Ratings.from_arrays(pairs // 200, pairs % 200, values)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec", [mfjax.MF, mfjax.ALS, mfjax.BayesianMF, mfjax.ImplicitALS,
                                  lambda **kw: mfjax.ImplicitALS(solver="optax", **kw), mfjax.BPR],
                         ids=["optax", "als", "gibbs", "ials", "ials-optax", "bpr"])
def test_a_rank_that_cannot_fit_is_refused_before_allocating(spec):
    # 10^7 users in the ID table at the largest rank a spec takes: the tables alone are
    # 10^7 x 65536 x 4 bytes = 2.6 TB; nothing is allocated
    r = small()
    wide = mfjax.Ratings(r.users, r.items, r.ratings, None, np.arange(10_000_000), r.item_ids)
    with pytest.raises(MemoryError, match=r"needs about [\d,.]+ GB, [\d,.]+ GB available.*reduce"):
        mfjax.fit(wide, spec(rank=mfjax.specs.MAX_RANK), progress=False)


def test_refusal_is_also_a_value_error_and_can_be_turned_off(monkeypatch):
    with pytest.raises(ValueError, match="where: needs about 1,000,000,000.0 GB"):
        check_memory(10**18, "where")
    assert issubclass(InsufficientMemoryError, MemoryError)
    monkeypatch.setenv("MFJAX_MEMORY_CHECK", "0")
    check_memory(10**18, "where")


def test_available_memory_is_known_here():
    free, where = available_bytes()
    assert free is not None and free > 0 and where


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_estimates_grow_with_the_problem_and_stay_small_for_small_fits(route):
    spec = ROUTES[route]
    base = dict(n_users=1000, n_items=500, nnz=100_000)
    small_fit = estimate(spec.replace(rank=16), **base)
    assert 0 < small_fit < 100e6  # ML-100K-sized fits are far below any machine's memory
    for key in ("n_users", "nnz"):
        assert estimate(spec.replace(rank=16), **{**base, key: base[key] * 10}) > small_fit
    assert estimate(spec.replace(rank=160), **base) > small_fit


def test_estimate_counts_the_row_systems():
    # iALS off the CPU: XLA's chunk of (256 + 32) k x k float32 systems dominates at k = 10^4
    got = estimate(mfjax.ImplicitALS(rank=10_000), backend="gpu", n_users=10, n_items=10, nnz=10)
    assert got >= 288 * 10_000 ** 2 * 4
