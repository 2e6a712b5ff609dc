"""Gradient verification: hand-written vs autodiff vs finite differences.

For each objective (``"explicit"``: :func:`mfjax.loss`; ``"ials"``:
:func:`mfjax.objectives.ials.loss`; ``"bpr"``: :func:`mfjax.objectives.bpr.bpr_loss`), three
independent witnesses for its gradient:

1. ``jax.grad(loss)`` (reverse-mode autodiff);
2. the hand-derived gradient (:func:`mfjax.manual_grad`,
   :func:`mfjax.objectives.ials.manual_grad`, :func:`mfjax.objectives.bpr.bpr_manual_grad`),
   vmapped over ratings, interactions or triples;
3. central differences, ``(f(θ + ε e_j) − f(θ − ε e_j)) / 2ε`` for every entry j
   (:func:`numerical_grad`, the seed's ``compute_num_grad`` generalized to
   pytrees).

On top of these, ``jax.test_util.check_grads`` checks the loss in forward and
reverse mode up to ``order`` (a random-direction finite-difference test of
the JVP/VJP, and of their derivatives for order 2), and checks a copy of the
loss whose VJP is the hand-written gradient, so JAX's own checker vouches for it too.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

from .. import objectives
from ..objectives.explicit import Params
from ..plumbing import validate_ratings

__all__ = ["numerical_grad", "verify_gradients", "GradientReport", "sample_problem", "OBJECTIVES"]

# Relative tolerances by dtype: (manual vs autodiff, finite differences).
_TOL = {
    np.dtype(np.float64): (1e-10, 1e-6),
    np.dtype(np.float32): (2e-5, 2e-2),
}


def numerical_grad(f, tree, *, eps: float = 1e-5, chunk: int = 1024):
    """Central-difference gradient of a scalar function over every pytree entry.

    ``g_j = (f(θ + ε e_j) − f(θ − ε e_j)) / (2ε)`` for each scalar entry j of
    ``tree``. Costs 2 evaluations of ``f`` per entry (batched with ``vmap`` in
    chunks), so it is meant for small problems; use float64 for accuracy.

    Args:
        f: scalar function of one pytree argument.
        tree: pytree of float arrays, the point θ.
        eps: the step ε.
        chunk: entries perturbed per vmapped batch.

    Returns:
        A pytree shaped like ``tree`` holding the estimate.
    """
    flat, unravel = ravel_pytree(tree)
    n = flat.size
    f_flat = jax.jit(jax.vmap(lambda x: f(unravel(x))))
    out = []
    for start in range(0, n, chunk):
        idx = jnp.arange(start, min(start + chunk, n))
        steps = jnp.zeros((idx.size, n), flat.dtype).at[jnp.arange(idx.size), idx].set(eps)
        out.append((f_flat(flat[None, :] + steps) - f_flat(flat[None, :] - steps)) / (2 * eps))
    return unravel(jnp.concatenate(out) if out else flat)


def _with_manual_vjp(f, grad_fn):
    """``f`` (a loss of params) whose reverse pass is the hand-written ``grad_fn``."""

    @jax.custom_vjp
    def g(params):
        return f(params)

    def fwd(params):
        return g(params), params

    def bwd(params, ct):
        return (jax.tree.map(lambda x: ct * x, grad_fn(params)),)

    g.defvjp(fwd, bwd)
    return g


#: Objectives :func:`verify_gradients` checks.
OBJECTIVES = ("explicit", "ials", "bpr")


def _objective(objective, users, items, ratings, negatives, reg, bias_reg, alpha,
               unobserved_weight, nu):
    """``(loss(params), manual_grad(params))`` closures for one objective (its record's)."""
    record = objectives.get(objective)
    hyper = dict(reg=reg, bias_reg=bias_reg, alpha=alpha, unobserved_weight=unobserved_weight,
                 nu=nu)
    return record.gradient_terms(users, items, ratings, negatives, hyper)


def _field_errors(a: Params, b: Params) -> dict[str, tuple[float, float]]:
    """Per field: (max |a − b|, max |a − b| / max(max |b|, tiny))."""
    out = {}
    for name, x, y in zip(Params._fields, a, b):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        err = float(np.max(np.abs(x - y))) if x.size else 0.0
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        out[name] = (err, err / max(scale, 1e-30))
    return out


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """What :func:`verify_gradients` found.

    Attributes:
        ok: True when every comparison is within tolerance and check_grads passed.
        dtype: the floating dtype the checks ran in.
        shape: ``(n_users, n_items, rank, n_ratings)``.
        manual_vs_autodiff: field -> (max abs error, max relative error).
        manual_vs_numerical: same against finite differences, or None if skipped.
        autodiff_vs_numerical: same, or None if skipped.
        check_grads: check name -> None if it passed, else the failure message.
        tol: (relative tolerance for manual vs autodiff, for finite differences).
    """

    ok: bool
    dtype: str
    shape: tuple[int, int, int, int]
    manual_vs_autodiff: dict
    manual_vs_numerical: dict | None
    autodiff_vs_numerical: dict | None
    check_grads: dict
    tol: tuple[float, float]

    def __str__(self) -> str:
        nu, ni, k, n = self.shape
        lines = [
            f"gradient check: {nu} users x {ni} items, rank {k}, {n} ratings, {self.dtype}"
            f" -> {'OK' if self.ok else 'FAILED'}",
            f"{'comparison':<24}{'field':<14}{'max abs err':>13}{'max rel err':>13}{'tol':>9}  ",
        ]
        blocks = [
            ("manual vs autodiff", self.manual_vs_autodiff, self.tol[0]),
            ("manual vs numerical", self.manual_vs_numerical, self.tol[1]),
            ("autodiff vs numerical", self.autodiff_vs_numerical, self.tol[1]),
        ]
        for title, errs, tol in blocks:
            if errs is None:
                lines.append(f"{title:<24}(skipped: problem too large for finite differences)")
                continue
            for field, (a, r) in errs.items():
                mark = "ok" if r <= tol else "FAIL"
                lines.append(f"{title:<24}{field:<14}{a:>13.2e}{r:>13.2e}{tol:>9.0e}  {mark}")
        for name, msg in self.check_grads.items():
            status = "ok" if msg is None else "FAIL: " + msg.strip().splitlines()[0][:120]
            lines.append(f"{'check_grads':<24}{name:<38}{status}")
        return "\n".join(lines)


def verify_gradients(
    params: Params,
    users,
    items,
    ratings,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    order: int = 2,
    max_numerical: int = 20_000,
    objective: str = "explicit",
    negatives=None,
    alpha: float = 1.0,
    unobserved_weight: float = 0.1,
    nu: float = 0.5,
) -> GradientReport:
    """Check the hand-written gradient and ``jax.grad(loss)`` against each other and
    against finite differences, and run ``jax.test_util.check_grads``.

    All checks run in the dtype of ``params`` (float64 needs ``jax_enable_x64``;
    float32 gets looser tolerances, see ``GradientReport.tol``).

    Args:
        params: the point at which to check.
        users, items, ratings: the ratings defining the loss [n] (``"ials"``: the
            interactions and their values; ``"bpr"``: users and positive items,
            ``ratings`` unused).
        reg, bias_reg: as in :func:`mfjax.loss` (``"ials"`` uses ``reg`` only).
        order: the highest derivative order for ``check_grads`` (1 or 2).
        max_numerical: finite differences run only when the number of
            parameters is at most this.
        objective: ``"explicit"``, ``"ials"`` or ``"bpr"``.
        negatives: ``"bpr"``: the negative item of each triple [n].
        alpha, unobserved_weight, nu: ``"ials"``'s confidence weight, weight of
            the unobserved pairs and regularization exponent.

    Returns:
        A :class:`GradientReport`; ``report.ok`` says whether all passed.
    """
    dtype = np.dtype(params.user_factors.dtype)
    if dtype not in _TOL:
        raise ValueError(f"verify_gradients needs float32 or float64 params, got {dtype}")
    if objective not in OBJECTIVES:
        raise ValueError(f"verify_gradients: objective must be one of {OBJECTIVES}, got {objective!r}")
    if objectives.get(objective).negatives:
        if negatives is None:
            raise ValueError("verify_gradients: objective='bpr' needs negatives= (one item per triple)")
        ratings = np.zeros(len(np.asarray(users)))
        validate_ratings(users, negatives, ratings, n_users=params.n_users, n_items=params.n_items,
                         where="verify_gradients (negatives)")
        negatives = jnp.asarray(negatives, jnp.int32)
    validate_ratings(users, items, ratings, n_users=params.n_users, n_items=params.n_items,
                     where="verify_gradients")
    users = jnp.asarray(users, jnp.int32)
    items = jnp.asarray(items, jnp.int32)
    ratings = jnp.asarray(ratings, dtype)
    tol_exact, tol_num = _TOL[dtype]
    f, grad_fn = _objective(objective, users, items, ratings, negatives, reg, bias_reg, alpha,
                            unobserved_weight, nu)

    g_auto = jax.jit(jax.grad(f))(params)
    g_manual = jax.jit(grad_fn)(params)
    m_vs_a = _field_errors(g_manual, g_auto)

    n_params = ravel_pytree(params)[0].size
    m_vs_n = a_vs_n = None
    if n_params <= max_numerical:
        # float32 central differences need a larger step to beat rounding.
        eps = 1e-5 if dtype == np.float64 else 1e-2
        g_num = numerical_grad(f, params, eps=eps)
        m_vs_n = _field_errors(g_manual, g_num)
        a_vs_n = _field_errors(g_auto, g_num)

    checks = {}
    cg_tol = None if dtype == np.float64 else 5e-2
    targets = {
        f"loss, fwd+rev, order {order}": (f, order, ("fwd", "rev")),
        "manual_grad as VJP, rev, order 1": (_with_manual_vjp(f, grad_fn), 1, ("rev",)),
    }
    for name, (fn, o, modes) in targets.items():
        try:
            check_grads(fn, (params,), o, modes=modes, atol=cg_tol, rtol=cg_tol)
            checks[name] = None
        except AssertionError as e:
            checks[name] = str(e) or "assertion failed"

    ok = (
        all(r <= tol_exact for _, r in m_vs_a.values())
        and all(r <= tol_num for d in (m_vs_n, a_vs_n) if d for _, r in d.values())
        and all(v is None for v in checks.values())
    )
    return GradientReport(
        ok=ok,
        dtype=str(dtype),
        shape=(params.n_users, params.n_items, params.rank, int(users.shape[0])),
        manual_vs_autodiff=m_vs_a,
        manual_vs_numerical=m_vs_n,
        autodiff_vs_numerical=a_vs_n,
        check_grads=checks,
        tol=(tol_exact, tol_num),
    )


def sample_problem(ratings, sample: int = 300, *, rank: int = 4, seed: int = 0, dtype=np.float32):
    """A small gradient-check problem from real ratings.

    Draws ``sample`` ratings at random, re-indexes the users and items they
    touch to contiguous rows (so finite differences stay cheap), and draws
    initial parameters around the sample's mean.

    Args:
        ratings: an :class:`mfjax.Ratings`.
        sample: how many ratings to draw.
        rank: the rank of the parameters.
        seed: seeds the draw and the parameters.
        dtype: float dtype of the parameters.

    Returns:
        ``(params, users, items, ratings)`` for :func:`verify_gradients`.
    """
    from ..objectives.explicit import init_params

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ratings), size=min(sample, len(ratings)), replace=False)
    _, users = np.unique(ratings.users[idx], return_inverse=True)
    _, items = np.unique(ratings.items[idx], return_inverse=True)
    r = ratings.ratings[idx].astype(dtype)
    params = init_params(jax.random.PRNGKey(seed), int(users.max()) + 1, int(items.max()) + 1,
                         rank, init_scale=0.3, global_bias=float(r.mean()), dtype=dtype)
    return params, users.astype(np.int32), items.astype(np.int32), r
