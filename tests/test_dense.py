"""mfjax.dense against a NumPy port of the seed notebook."""

import jax
import numpy as np
import pytest

from mfjax import dense


# --- The seed's three functions, ported to Python 3 as an oracle. ---------------------
def seed_loss(U, M, R, reg=0.0):
    diff = np.dot(U, M.T) - R
    loss = 0.5 * np.sum(diff * diff)
    loss += reg * np.sum(U) / 2  # the seed's typo: not the squared norm
    loss += reg * np.sum(M) / 2
    return loss


def seed_compute_grad(U, M, R):
    u_grad, m_grad = np.zeros(U.shape), np.zeros(M.shape)
    num_user, _ = U.shape
    num_movie, _ = M.shape
    diff = np.dot(U, M.T) - R
    for i in range(num_user):
        u_grad[i] = np.sum(diff[i].reshape(num_movie, 1) * M, axis=0)
    for j in range(num_movie):
        m_grad[j] = np.sum(diff.T[j].reshape(num_user, 1) * U, axis=0)
    return u_grad, m_grad


def seed_compute_num_grad(U, M, R, loss_func, h=1e-5):
    U, M = U.copy(), M.copy()
    num_grad_u, num_grad_m = np.zeros(U.shape), np.zeros(M.shape)
    for X, G in ((U, num_grad_u), (M, num_grad_m)):
        for idx in np.ndindex(X.shape):
            old = X[idx]
            X[idx] = old + h
            fp = loss_func(U, M, R)
            X[idx] = old - h
            fm = loss_func(U, M, R)
            X[idx] = old
            G[idx] = (fp - fm) / (2 * h)
    return num_grad_u, num_grad_m
# ---------------------------------------------------------------------------------------


def corrected_loss(U, M, R, reg):
    diff = U @ M.T - R
    return 0.5 * np.sum(diff**2) + 0.5 * reg * (np.sum(U**2) + np.sum(M**2))


SHAPES = [(3, 3, 4), (7, 11, 5), (1, 6, 2)]


def random_problem(n_users, n_items, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n_users, k)), rng.standard_normal((n_items, k)), rng.random((n_users, n_items))


@pytest.mark.parametrize("shape", SHAPES)
def test_seed_parity_without_reg(shape):
    U, M, R = random_problem(*shape)
    np.testing.assert_allclose(dense.loss(U, M, R), seed_loss(U, M, R), rtol=1e-12)
    for got, want in zip(dense.manual_grad(U, M, R), seed_compute_grad(U, M, R)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for got, want in zip(dense.manual_grad(U, M, R), seed_compute_num_grad(U, M, R, seed_loss)):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reg", [0.1, 2.0])
def test_reg_uses_the_squared_norm(shape, reg):
    U, M, R = random_problem(*shape, seed=1)
    np.testing.assert_allclose(dense.loss(U, M, R, reg), corrected_loss(U, M, R, reg), rtol=1e-12)
    num = seed_compute_num_grad(U, M, R, lambda U, M, R: corrected_loss(U, M, R, reg))
    g_auto = jax.grad(dense.loss, argnums=(0, 1))(U, M, R, reg)
    for got, want, auto in zip(dense.manual_grad(U, M, R, reg), num, g_auto):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(got, auto, rtol=1e-12, atol=1e-13)
    # The seed's loss differs once reg > 0: its penalty is linear, not quadratic.
    assert abs(seed_loss(U, M, R, reg) - corrected_loss(U, M, R, reg)) > 1e-3


def test_mask_ignores_masked_entries():
    U, M, R = random_problem(7, 11, 5, seed=2)
    mask = (np.random.default_rng(3).random(R.shape) < 0.5).astype(float)
    garbage = R + (1 - mask) * 1e6  # masked entries must not matter
    base_loss = dense.loss(U, M, R, 0.3, mask)
    np.testing.assert_allclose(dense.loss(U, M, garbage, 0.3, mask), base_loss, rtol=1e-12)
    masked_loss = lambda U, M, R: 0.5 * np.sum((mask * (U @ M.T - R)) ** 2) + 0.15 * (np.sum(U**2) + np.sum(M**2))
    num = seed_compute_num_grad(U, M, garbage, masked_loss)
    for got, want in zip(dense.manual_grad(U, M, garbage, 0.3, mask), num):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_jits_in_float32():
    U, M, R = (x.astype(np.float32) for x in random_problem(7, 11, 5))
    dU, dM = jax.jit(dense.manual_grad)(U, M, R, 0.1)
    assert dU.dtype == np.float32 and dU.shape == U.shape and dM.shape == M.shape
    np.testing.assert_allclose(dU, dense.manual_grad(U, M, R, 0.1)[0], rtol=1e-5, atol=1e-5)
