"""verify_gradients and numerical_grad: they pass on the real gradient and fail on a broken one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax import objectives
from mfjax.objectives import explicit
from mfjax.models.bpr import objective as bpr
from mfjax.models.implicit_als import objective as ials

from mfjax.evaluation.gradcheck import check_gradient_terms

REAL_MANUAL_GRAD = explicit.manual_grad
from test_core import make_problem

DEFAULT_HYPER = {"reg": 0.0, "bias_reg": None, "alpha": 1.0, "unobserved_weight": 0.1, "nu": 0.5}


def check(p, u, i, r, *, objective="explicit", negatives=None, order=2, max_numerical=20_000,
          **hyper):
    """check_gradient_terms at a given point, the objective's record by name."""
    record = mfjax.models.objective_named(objective)
    full = {k: hyper.get(k, DEFAULT_HYPER[k]) for k in record.hyper}
    return check_gradient_terms(record, p, u, i, r, negatives, full, order=order,
                                max_numerical=max_numerical)


def test_numerical_grad_on_a_pytree():
    tree = {"a": jnp.arange(3.0), "b": jnp.array([[1.0, -2.0]])}
    f = lambda t: jnp.sum(t["a"] ** 3) + jnp.prod(t["b"])
    g = mfjax.numerical_grad(f, tree, eps=1e-5)
    np.testing.assert_allclose(g["a"], 3 * np.arange(3.0) ** 2, atol=1e-8)
    np.testing.assert_allclose(g["b"], [[-2.0, 1.0]], atol=1e-8)


# Each shape compiles its own order-2 programs (~20-35 s): one in the default run, the
# others in the slow run.
@pytest.mark.parametrize("shape", [pytest.param((6, 9, 4, 50), marks=pytest.mark.slow),
                                   (3, 3, 1, 1),
                                   pytest.param((5, 4, 2, 30), marks=pytest.mark.slow)])
@pytest.mark.parametrize("reg", [0.0, 0.25])
def test_verify_gradients_passes(shape, reg):
    p, u, i, r = make_problem(*shape)
    report = check(p, u, i, r, reg=reg, order=2)
    assert report.ok, str(report)
    assert report.manual_vs_numerical is not None
    assert all(err < 1e-10 for _, err in report.manual_vs_autodiff.values())
    assert all(v is None for v in report.check_grads.values())
    assert "OK" in str(report) and "check_grads" in str(report)


@pytest.mark.slow
def test_verify_gradients_float32():
    p, u, i, r = make_problem(6, 9, 4, 50, dtype=jnp.float32)
    report = check(p, u, i, r, reg=0.1)
    assert report.ok, str(report)
    assert report.dtype == "float32"


def _sign_flipped_item_grad(*args, **kwargs):
    g = REAL_MANUAL_GRAD(*args, **kwargs)
    return g._replace(item_factors=-g.item_factors)


def _missing_bias_reg(p, u, i, r, *, reg=0.0, bias_reg=None):
    return REAL_MANUAL_GRAD(p, u, i, r, reg=reg, bias_reg=0.0)


@pytest.mark.parametrize("broken", [_sign_flipped_item_grad, _missing_bias_reg])
def test_verify_gradients_catches_a_broken_manual_grad(monkeypatch, broken):
    p, u, i, r = make_problem(6, 9, 4, 50)
    monkeypatch.setattr(objectives.explicit, "manual_grad", broken)
    report = check(p, u, i, r, reg=0.3)
    assert not report.ok
    assert "FAIL" in str(report)
    assert report.check_grads["manual_grad as VJP, rev, order 1"] is not None


@pytest.mark.slow
def test_large_problem_skips_finite_differences():
    p, u, i, r = make_problem(40, 30, 8, 100)
    report = check(p, u, i, r, reg=0.1, order=1, max_numerical=100)
    assert report.ok and report.manual_vs_numerical is None
    assert "skipped" in str(report)


def test_verify_gradients_rejects_out_of_range_indices():
    p, u, i, r = make_problem(6, 9, 4, 50)
    u = u.copy()
    u[3] = 6
    with pytest.raises(ValueError, match=r"users\[3\] = 6"):
        check(p, u, i, r)


def implicit_problem(objective, n_users=7, n_items=9, rank=3, n=40, seed=0):
    """float64 params (random biases too) and interactions/triples for the implicit objectives."""
    p, u, i, r = make_problem(n_users, n_items, rank, n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    neg = rng.integers(0, n_items, n) if objective == "bpr" else None
    values = rng.integers(1, 5, n).astype(np.float64)
    return p, u, i, values, neg


# Order 2 on the implicit objectives (17-40 s of compile each); the default run checks
# them at order 1 in tests/test_contract.py.
@pytest.mark.slow
@pytest.mark.parametrize("objective", ["ials", "bpr"])
def test_verify_gradients_passes_on_implicit_objectives(objective):
    p, u, i, v, neg = implicit_problem(objective)
    report = check(p, u, i, v, reg=0.2, bias_reg=0.1, objective=objective,
                                    negatives=neg, alpha=2.0, unobserved_weight=0.3, nu=0.5)
    assert report.ok, str(report)
    assert report.manual_vs_numerical is not None
    assert all(err < 1e-10 for _, err in report.manual_vs_autodiff.values())


def _drop_first_factor_term(module, name):
    real = getattr(module, name)

    def broken(p, *args, **kwargs):
        g = real(p, *args, **kwargs)
        return g._replace(user_factors=-g.user_factors)
    return broken


@pytest.mark.parametrize("objective,mod,name", [
    ("ials", ials, "manual_grad"),
    ("bpr", bpr, "bpr_manual_grad"),
])
def test_verify_gradients_catches_a_broken_implicit_gradient(monkeypatch, objective, mod, name):
    monkeypatch.setattr(mod, name, _drop_first_factor_term(mod, name))
    p, u, i, v, neg = implicit_problem(objective)
    report = check(p, u, i, v, reg=0.2, objective=objective, negatives=neg)
    assert not report.ok and "FAIL" in str(report)


def test_verify_gradients_refuses_what_is_not_a_spec():
    ratings, _ = mfjax.datasets.synthetic(12, 9, 60, seed=1)
    with pytest.raises(TypeError, match="not a registered model spec"):
        mfjax.verify_gradients(object(), ratings)
    with pytest.raises(ValueError, match="order"):
        mfjax.verify_gradients(mfjax.ALS(rank=2), ratings, order=3)


def test_verify_gradients_bpr_needs_negatives():
    p, u, i, v, _ = implicit_problem("bpr")
    with pytest.raises(ValueError, match="negatives"):
        check(p, u, i, v, objective="bpr")
