"""The threaded C++ Gibbs row draws (mfjax.kernels.als.gibbs_call) against NumPy and XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax import kernels
from mfjax.kernels import als as ak
from mfjax.solvers.als import layout as als_layout
from mfjax.solvers.gibbs import sampler

# Only a missing compiler may skip these: a kernel that fails to build or load must fail them.
pytestmark = pytest.mark.skipif(kernels.find_compiler() is None, reason="no C++ compiler")


@pytest.fixture(autouse=True, scope="module")
def _compiled():
    """Fits take the kernel only once it is compiled (``kernel="auto"`` never compiles)."""
    ak.available()


def problem(n_users=157, n_items=93, n=2500, k=10, seed=0, weights=False):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users - 7, n), rng.integers(0, n_items - 3, n)  # trailing rows empty
    r = rng.integers(1, 6, n).astype(np.float64)
    w = rng.random(n) + 0.5 if weights else None
    layout = als_layout.make_layout(u, i, r, n_users=n_users, n_items=n_items, weights=w,
                             dtype=jnp.float64, rows_per_chunk=32)
    Q = 0.3 * rng.standard_normal((n_items, k))
    bi = 0.1 * rng.standard_normal(n_items)
    A = rng.standard_normal((k + 1, k + 1))
    prec = A @ A.T + np.eye(k + 1)
    return layout, (u, i, r, w), Q, bi, prec, rng.standard_normal(k + 1)


def dense_draws(u, i, r, w, Q, bi, mu, tau, prec, m0, eps, n_rows):
    """NumPy: x_u = M⁻¹(Λ m0 + τ Σ w t z) + L⁻ᵀ ε_u, M = Λ + τ Σ w z zᵀ = L Lᵀ, row by row."""
    w = np.ones(len(r)) if w is None else w
    out = []
    for a in range(n_rows):
        M, b = prec.copy(), prec @ m0
        for j in np.flatnonzero(u == a):
            z = np.append(Q[i[j]], 1.0)
            M += tau * w[j] * np.outer(z, z)
            b += tau * w[j] * (r[j] - mu - bi[i[j]]) * z
        L = np.linalg.cholesky(M)
        out.append(np.linalg.solve(M, b) + np.linalg.solve(L.T, eps[a]))
    return np.array(out)


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("k", [10, 7])
def test_row_draws_equal_the_dense_conditional(weights, k):
    layout, (u, i, r, w), Q, bi, prec, m0 = problem(k=k, weights=weights)
    mu, tau = 3.5, 1.7
    eps = np.random.default_rng(1).standard_normal((layout.n_users, k + 1))
    x, b, sse = ak.gibbs_call(layout.users, jnp.asarray(Q), jnp.asarray(bi), mu, tau,
                              jnp.asarray(prec), jnp.asarray(prec @ m0), jnp.asarray(eps),
                              n_threads=2)
    want = dense_draws(u, i, r, w, Q, bi, mu, tau, prec, m0, eps, layout.n_users)
    np.testing.assert_allclose(x, want[:, :k], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b, want[:, k], rtol=1e-9, atol=1e-10)
    # Empty rows draw from the prior N(m0, Λ⁻¹), with the same ε.
    L = np.linalg.cholesky(prec)
    np.testing.assert_allclose(want[-1], m0 + np.linalg.solve(L.T, eps[-1]), rtol=1e-9)
    pred = mu + b[u] + bi[i] + np.sum(np.asarray(x)[u] * Q[i], 1)
    ww = np.ones(len(r)) if w is None else w
    np.testing.assert_allclose(sse, np.sum(ww * (r - pred) ** 2), rtol=1e-9)


@pytest.mark.parametrize("k", [10, 5])
@pytest.mark.slow
def test_kernel_sweep_equals_the_xla_sweep_from_the_same_draws(k):
    layout, _, _, _, _, _ = problem(k=k, weights=True)
    p = mfjax.init_params(jax.random.PRNGKey(0), layout.n_users, layout.n_items, k,
                          init_scale=0.3, global_bias=3.0, dtype=jnp.float64)
    states = {}
    for threads in (0, 2):
        s = sampler.gibbs_init(p, layout, scale=1.3)
        for t in range(3):
            draws = sampler.host_draws(np.random.default_rng([5, t]), layout, k,
                                       dtype=np.float64)
            s = sampler.gibbs_sweep(s, layout, None, t, draws=draws, scale=1.3,
                                    kernel_threads=threads)
        states[threads] = s
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[2])):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)


def test_thread_count_does_not_change_the_draws():
    layout, _, Q, bi, prec, m0 = problem(n_users=900, n=20000)
    eps = jnp.asarray(np.random.default_rng(2).standard_normal((900, 11)))
    call = lambda t: ak.gibbs_call(layout.users, jnp.asarray(Q), jnp.asarray(bi), 3.0, 2.0,
                                   jnp.asarray(prec), jnp.asarray(prec @ m0), eps, n_threads=t)
    for a, b in zip(call(1), call(3)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_an_out_of_range_index_is_an_error_naming_the_row():
    layout, _, Q, bi, prec, m0 = problem()
    side = layout.users
    others = np.asarray(side.others).copy()
    pos = int(np.searchsorted(np.asarray(side.keys), 42))
    others[pos] = Q.shape[0] + 5
    bad = side.__class__(**{**side.__dict__, "others": jnp.asarray(others)})
    eps = jnp.zeros((side.n_rows, 11))
    with pytest.raises(Exception, match=r"mfjax_gibbs: row 42 has the out-of-range index 98"):
        jax.block_until_ready(ak.gibbs_call(bad, jnp.asarray(Q), jnp.asarray(bi), 3.0, 1.0,
                                            jnp.asarray(prec), jnp.asarray(m0), eps, n_threads=2))


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_fit_with_the_kernel_follows_the_same_chain():
    ratings, _ = mfjax.datasets.synthetic(200, 150, 6000, rank=3, noise=0.3, seed=0)
    fits = {on: mfjax.fit(ratings, mfjax.BayesianMF(rank=4, burn_in=3, samples=5, kernel=on),
                          seed=2, progress=False) for on in (True, False)}
    assert fits[True].spec.kernel is True and fits[False].spec.kernel is False
    for a, b in zip(fits[True].params, fits[False].params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([h["loss"] for h in fits[True].history],
                               [h["loss"] for h in fits[False].history], rtol=1e-7)
