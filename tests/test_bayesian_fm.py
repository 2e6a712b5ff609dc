"""BayesianFM (mfjax.models.bayesian_fm): FM identities, relation blocks, conditionals, recovery.

float64 (tests/conftest.py enables x64).
"""
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import mfjax
from mfjax.solvers.als.layout import make_layout
from mfjax.solvers import fm_blocks as fmb
from mfjax.models.bayesian_fm.fm import block_predict, block_rows, fm_predict, fm_predict_pairwise
from mfjax.kernels import als as als_kernel
from mfjax.models.bayesian_fm.sampler import chunk_draw, draw_coefficients, row_features
from mfjax.solvers.gibbs.sampler import sample_side


class Table(NamedTuple):
    """The FeatureTable contract the solver reads (mfjax.Features is built elsewhere)."""

    ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    column_names: tuple
    groups: np.ndarray
    group_names: tuple

    @property
    def n_columns(self):
        return len(self.column_names)

    def rows_for(self, raw_ids):
        pos = {x: j for j, x in enumerate(self.ids)}
        rows = [pos.get(x, -1) for x in raw_ids]
        indptr, ind, val = [0], [], []
        for r in rows:
            if r >= 0:
                a, b = self.indptr[r], self.indptr[r + 1]
                ind += list(self.indices[a:b]); val += list(self.values[a:b])
            indptr.append(len(ind))
        return (np.array(indptr, np.int64), np.array(ind, np.int32),
                np.array(val, np.float32), np.array(rows) >= 0)


def random_csr(rng, n, m, density=0.5):
    X = sp.random(n, m, density=density, random_state=rng, format="csr")
    X.data = rng.normal(size=X.nnz)
    return X


def test_fm_identity_matches_the_pairwise_sum():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 7)) * (rng.random((6, 7)) < 0.6)
    w0, w, V = 0.3, rng.normal(size=7), rng.normal(size=(7, 3))
    np.testing.assert_allclose(fm_predict(X, w0, w, V), fm_predict_pairwise(X, w0, w, V),
                               rtol=1e-12, atol=1e-12)


def test_block_evaluation_matches_the_design_matrix():
    """Per-row terms gathered per rating == the FM on [x_u | x_i] (all pairs), and without
    the within-side pairs == the FM whose pairs are user-side x item-side only."""
    rng = np.random.default_rng(1)
    nu, ni, du, di, k = 4, 5, 3, 2, 3
    Xu = sp.hstack([sp.eye(nu), random_csr(rng, nu, du)]).tocsr()   # ID one-hot | features
    Xi = sp.hstack([sp.eye(ni), random_csr(rng, ni, di)]).tocsr()
    wu, wi = rng.normal(size=Xu.shape[1]), rng.normal(size=Xi.shape[1])
    Vu, Vi = rng.normal(size=(Xu.shape[1], k)), rng.normal(size=(Xi.shape[1], k))
    users, items = rng.integers(0, nu, 11), rng.integers(0, ni, 11)
    design = np.hstack([Xu.toarray()[users], Xi.toarray()[items]])
    w, V = np.concatenate([wu, wi]), np.vstack([Vu, Vi])
    Du = Xu.shape[1]
    for within in (True, False):
        got = block_predict(block_rows(Xu.indptr, Xu.indices, Xu.data, wu, Vu, within=within),
                            block_rows(Xi.indptr, Xi.indices, Xi.data, wi, Vi, within=within),
                            users, items, 0.7)
        pairs = None
        if not within:
            pairs = np.zeros((len(w), len(w)), bool)
            pairs[:Du, Du:] = True
        np.testing.assert_allclose(got, fm_predict_pairwise(design, 0.7, w, V, pairs), rtol=1e-10)


def test_sampler_rows_are_the_block_fm():
    """The sampler's rows θ = v + Bᵀx (laid out by side_blocks: grouped, padded columns)
    score as the FM without within-side pairs (ID one-hot weights = v)."""
    rng = np.random.default_rng(2)
    n, m, k = 6, 5, 2
    X = random_csr(rng, n, m)
    groups = np.array([1, 0, 1, 2, 0])
    blocks = fmb.side_blocks([(X, groups)], n, np.float64, chunk=4, window=3)
    B = rng.normal(size=(m, k + 1))
    coef = np.zeros((blocks.n_columns, k + 1))
    coef[np.asarray(blocks.columns)] = B
    v = rng.normal(size=(n, k + 1))
    theta = v + np.asarray(row_features(blocks, jnp.asarray(coef)))
    full = sp.hstack([sp.eye(n), X]).tocsr()
    P, b = block_rows(full.indptr, full.indices, full.data, np.concatenate([v[:, k], B[:, k]]),
                      np.vstack([v[:, :k], B[:, :k]]), within=False)
    np.testing.assert_allclose(theta[:, :k], P, rtol=1e-12)
    np.testing.assert_allclose(theta[:, k], b, rtol=1e-12)


def log_post_coef(Bflat, X, E, lam, alpha, mu_g):
    """log p(B | θ) + const, written out: −½ Σ_d λ_d ‖E_d − X B_d‖² − ½ Σ α (B − μ_g)²."""
    B = Bflat.reshape(X.shape[1], -1)
    R = E - X @ B
    return -0.5 * jnp.sum(lam[None] * R * R) - 0.5 * jnp.sum(alpha * (B - mu_g) ** 2)


@pytest.mark.slow
def test_chunk_conditional_matches_brute_force():
    """B_c | rest (one chunk = one group's columns) against the Hessian and gradient of
    the written-out log posterior, in float64: mean and covariance."""
    rng = np.random.default_rng(3)
    n, m, K, C = 9, 6, 3, 4
    X = random_csr(rng, n, m, 0.6)
    groups = np.array([0, 0, 0, 1, 1, 1])
    blocks = fmb.side_blocks([(X, groups)], n, np.float64, chunk=C, window=5)
    cols = np.asarray(blocks.columns)
    theta, mean = rng.normal(size=(n, K)), rng.normal(size=K)
    lam = rng.uniform(0.5, 2, K)
    gmean, gprec = rng.normal(size=(2, K)), rng.uniform(0.5, 3, (2, K))
    B = rng.normal(size=(m, K))
    Xd = X.toarray()
    E = theta - mean
    c = 1                                             # the chunk of group 1: columns 3..5
    own = np.flatnonzero(groups == 1)
    alpha = gprec[groups]
    mu_g = gmean[groups]
    H = -jax.hessian(log_post_coef)(jnp.asarray(B.ravel()), Xd, E, lam, alpha, mu_g)
    grad = jax.grad(log_post_coef)(jnp.asarray(B.ravel()), Xd, E, lam, alpha, mu_g)
    idx = (own[:, None] * K + np.arange(K)).ravel()
    Hcc = np.asarray(H)[np.ix_(idx, idx)]
    want_mean = B[own].ravel() + np.linalg.solve(Hcc, np.asarray(grad)[idx])
    want_cov = np.linalg.inv(Hcc)
    coef = np.zeros((blocks.n_columns, K)); coef[cols] = B
    F = E - Xd @ B
    sl = slice(c * C, (c + 1) * C)
    Xc = np.zeros((n, C)); Xc[:, cols[own] - c * C] = Xd[:, own]
    args = (blocks.basis[c], blocks.spectrum[c], Xc.T @ F, coef[sl], lam, gmean[1], gprec[1])
    real = cols[own] - c * C
    got_mean = np.asarray(chunk_draw(*args, np.zeros((C, K))))[real]
    np.testing.assert_allclose(got_mean.ravel(), want_mean, rtol=1e-9, atol=1e-10)
    cov = np.zeros((len(real) * K,) * 2)              # from the draws' linear map of ε
    for j in range(C):
        for d in range(K):
            e = np.zeros((C, K)); e[j, d] = 1.0
            col = (np.asarray(chunk_draw(*args, e))[real] - got_mean).ravel()
            cov += np.outer(col, col)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-8, atol=1e-10)


def test_one_chunk_pass_matches_brute_force_mean():
    """draw_coefficients with zero noise on a one-chunk side: B = its conditional mean."""
    rng = np.random.default_rng(4)
    n, m, K = 8, 3, 2
    X = random_csr(rng, n, m, 0.7)
    blocks = fmb.side_blocks([(X, np.zeros(m, np.int64))], n, np.float64, chunk=4, window=2)
    theta, mean, lam = rng.normal(size=(n, K)), rng.normal(size=K), rng.uniform(0.5, 2, K)
    gmean, gprec = rng.normal(size=(1, K)), rng.uniform(0.5, 2, (1, K))
    coef0 = np.zeros((4, K)); coef0[np.asarray(blocks.columns)] = rng.normal(size=(m, K))
    m0 = np.asarray(row_features(blocks, jnp.asarray(coef0)))
    coef, rows = draw_coefficients(blocks, *map(jnp.asarray, (theta, mean, lam, coef0, m0,
                                   gmean, gprec, np.zeros((4, K)))))
    Xd = X.toarray()
    for d in range(K):
        H = lam[d] * Xd.T @ Xd + gprec[0, d] * np.eye(m)
        want = np.linalg.solve(H, lam[d] * Xd.T @ (theta[:, d] - mean[d]) + gprec[0, d] * gmean[0, d])
        np.testing.assert_allclose(np.asarray(coef)[np.asarray(blocks.columns), d], want, rtol=1e-9)
    np.testing.assert_allclose(rows, np.asarray(row_features(blocks, coef)), rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # a CLI run or sampler compile per case (~10 s each on 2 cores)
@pytest.mark.parametrize("kernel", [False, True])
def test_row_conditional_with_feature_prior_matches_brute_force(kernel):
    """θ_u | B, items: the row draw with the per-row prior mean μ + m_u (XLA, and the C++
    kernel) against the Gaussian conditional of the written-out log posterior: mean
    (zero noise) and covariance (the draw's linear map of the noise)."""
    if kernel and als_kernel.unavailable_reason():
        pytest.skip(als_kernel.unavailable_reason())
    rng = np.random.default_rng(5)
    nu, ni, k, n = 4, 5, 2, 15
    u, i = rng.integers(0, nu, n).astype(np.int32), rng.integers(0, ni, n).astype(np.int32)
    r = rng.uniform(1, 5, n)
    Q, bi = rng.normal(size=(ni, k)), rng.normal(size=ni)
    m = rng.normal(size=(nu, k + 1))
    mean, prec, tau, w0 = rng.normal(size=k + 1), rng.uniform(0.5, 2, k + 1), 1.7, 3.0
    layout = make_layout(u, i, r, n_users=nu, n_items=ni, dtype=jnp.float64, rows_per_chunk=2)

    def draw(eps):
        F, b, _ = sample_side(None, layout.users, jnp.asarray(Q), jnp.asarray(bi), w0, tau,
                              jnp.asarray(mean[None] + m), jnp.diag(jnp.asarray(prec)),
                              window=64, solver="rowwise", with_sse=False,
                              kernel_threads=2 if kernel else 0, eps=jnp.asarray(eps))
        return np.concatenate([np.asarray(F), np.asarray(b)[:, None]], 1)

    got = draw(np.zeros((nu, k + 1)))
    maps = [draw(np.eye(k + 1)[[j] * nu]) - got for j in range(k + 1)]   # [nu, D] each
    for user in range(nu):
        def logp(th):
            e = r[u == user] - w0 - bi[i[u == user]] - Q[i[u == user]] @ th[:k] - th[k]
            d = th - mean - m[user]
            return -0.5 * tau * jnp.sum(e * e) - 0.5 * jnp.sum(prec * d * d)
        H = -np.asarray(jax.hessian(logp)(jnp.zeros(k + 1)))
        want = np.linalg.solve(H, np.asarray(jax.grad(logp)(jnp.zeros(k + 1))))
        np.testing.assert_allclose(got[user], want, rtol=1e-9, atol=1e-12)
        M = np.stack([mp[user] for mp in maps], 1)
        np.testing.assert_allclose(M @ M.T, np.linalg.inv(H), rtol=1e-9, atol=1e-12)


def planted(seed=0, n_users=300, n_items=120, k=3, n=7000, sigma=0.3):
    """Ratings from a model whose user vectors are mostly their group's (4 groups, the one
    user feature), a third of the users with only 2 ratings."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 4, n_users)
    A = rng.normal(size=(4, k))
    P = A[g] + 0.1 * rng.normal(size=(n_users, k))
    Q = rng.normal(size=(n_items, k))
    sparse = np.arange(n_users) % 3 == 0
    pool = np.concatenate([np.repeat(np.flatnonzero(sparse), 2),
                           rng.choice(np.flatnonzero(~sparse), n - 2 * sparse.sum())])
    pairs = np.unique(np.stack([pool, rng.integers(0, n_items, len(pool))], 1), axis=0)
    u, i = pairs[:, 0], pairs[:, 1]
    r = 3.0 + np.sum(P[u] * Q[i], 1) + sigma * rng.normal(size=len(u))
    ratings = mfjax.Ratings(u.astype(np.int32), i.astype(np.int32), r.astype(np.float32), None,
                            np.arange(n_users), np.arange(n_items))
    table = Table(np.arange(n_users), np.arange(n_users + 1), g.astype(np.int32),
                  np.ones(n_users, np.float32), ("g=0", "g=1", "g=2", "g=3"),
                  np.zeros(4, np.int32), ("g",))
    test_pairs = np.stack([np.arange(n_users), rng.integers(0, n_items, n_users)], 1)
    truth = 3.0 + np.sum(P[test_pairs[:, 0]] * Q[test_pairs[:, 1]], 1)
    return ratings, table, test_pairs, truth, sparse


def run_chain(train, spec, features):
    """fit's loop around the solver, with ``run.features`` (what fit(features=) will pass)."""
    record = mfjax.models.record_of(spec)
    solver = record.make_solver(spec)
    run = SimpleNamespace(seed=0, dtype=np.float64, features=features)
    state = solver.init(train, spec, run)
    for _ in range(spec.n_steps):
        state, _ = solver.step(state)
    return solver.params(state), state


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_sampler_recovers_a_planted_model():
    train, table, pairs, truth, sparse = planted()
    spec = mfjax.BayesianFM(rank=3, burn_in=30, samples=60, implicit_features=False, kernel=False)
    errs = {}
    for name, feats in (("ids", None), ("features", SimpleNamespace(users=table, items=None))):
        params, state = run_chain(train, spec, feats)
        pred = np.asarray(mfjax.models.record_of(spec).score(params, pairs[:, 0], pairs[:, 1]))
        errs[name] = np.sqrt(np.mean((pred - truth) ** 2 * sparse)) / np.sqrt(sparse.mean())
        taus = np.asarray(state.tau)[: state.kept]
        assert 0.6 / 0.09 < np.mean(taus) < 1.4 / 0.09        # τ ≈ 1/σ²
    # the users with 2 ratings are predicted from their group: far better with the feature
    assert errs["features"] < 0.6 * errs["ids"], errs
    assert errs["features"] < 0.5, errs
