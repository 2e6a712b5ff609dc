"""Gradient verification: hand-written vs autodiff vs finite differences.

For any registered model's objective (its record's loss/gradient pair:
:func:`mfjax.loss`, :func:`mfjax.models.implicit_als.objective.loss`, :func:`mfjax.models.bpr.objective.bpr_loss`,
the logistic MF likelihood, ...), three independent witnesses for its gradient:

1. ``jax.grad(loss)`` (reverse-mode autodiff);
2. the hand-derived gradient (:func:`mfjax.manual_grad`, ...), vmapped over ratings,
   interactions or triples;
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

from ..plumbing import validate_ratings

__all__ = ["numerical_grad", "verify_gradients", "check_gradient_terms", "GradientReport",
           "sample_problem"]

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


def _field_errors(a, b) -> dict[str, tuple[float, float]]:
    """Per field of two parameter pytrees: (max |a − b|, max |a − b| / max(max |b|, tiny))."""
    out = {}
    for name, x, y in zip(a._fields, a, b):
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


def verify_gradients(spec, ratings, *, order: int = 2, seed: int = 0,
                     max_numerical: int = 20_000) -> GradientReport:
    """Check a registered model's hand-written gradient against ``jax.grad``, finite
    differences and ``jax.test_util.check_grads``, with the spec's own hyperparameters.

    The loss is the model's objective (its record's
    :attr:`~mfjax.objectives.Objective.gradient_terms`) on ``ratings`` (users and items
    re-indexed to the rows they touch, so finite differences stay cheap) at a random
    point of rank ``spec.rank`` drawn from ``seed``; a triple loss (BPR) gets one
    negative item per interaction, drawn from ``seed``. Everything runs in float64 under
    ``jax_enable_x64`` (tight tolerances), else float32 (looser, ``GradientReport.tol``).

    Args:
        spec: a model spec (``mfjax.ALS(reg=0.1)``); its objective's hyperparameters
            (``spec.reg``, ``spec.alpha``, ...) define the loss (a model whose spec has
            none, Bayesian MF, says which through its package's ``gradient_hyperparameters``).
        ratings: an :class:`mfjax.Ratings` (implicit objectives: the interactions).
        order: the highest derivative order for ``check_grads`` (1 or 2).
        seed: seeds the point and the negatives.
        max_numerical: finite differences run only when the number of parameters is
            at most this.

    Returns:
        A :class:`GradientReport`; ``report.ok`` says whether all passed.

    Raises:
        TypeError: ``spec`` is not a registered spec or ``ratings`` not a Ratings.
        ValueError: ``order`` is not 1 or 2, or ``ratings`` is empty.
    """
    from .. import models
    from ..data import Ratings

    record = models.record_of(spec)
    if not isinstance(ratings, Ratings):
        raise TypeError(f"verify_gradients: ratings must be an mfjax.Ratings, got "
                        f"{type(ratings).__name__}")
    if len(ratings) == 0:
        raise ValueError("verify_gradients: ratings is empty")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"verify_gradients: order must be 1 or 2, got {order!r}")
    objective = record.objective_record
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    _, users = np.unique(ratings.users, return_inverse=True)
    _, items = np.unique(ratings.items, return_inverse=True)
    users, items = users.reshape(-1), items.reshape(-1)
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    r = np.asarray(ratings.ratings, dtype)
    point = getattr(record.parts, "gradient_point", None)
    if point is None:
        from ..objectives.explicit import init_params

        mu = 0.0 if objective.ranking else float(r.mean())
        params = init_params(jax.random.PRNGKey(seed), n_users, n_items, spec.rank,
                             init_scale=0.3, global_bias=mu, dtype=dtype)
    else:
        params = point(jax.random.PRNGKey(seed), n_users, n_items, spec, dtype)
    negatives = None
    if objective.negatives:
        negatives = np.random.default_rng(seed).integers(0, n_items, len(users))
    own = getattr(record.parts, "gradient_hyperparameters", None)
    hyper = own(spec) if own is not None else {k: getattr(spec, k) for k in objective.hyper}
    return check_gradient_terms(objective, params, users, items, r, negatives, hyper,
                                order=order, max_numerical=max_numerical)


def check_gradient_terms(objective, params, users, items, ratings, negatives, hyper: dict, *,
                         order: int = 2, max_numerical: int = 20_000) -> GradientReport:
    """:func:`verify_gradients` at a given point: the hand-written gradient and
    ``jax.grad(loss)`` against each other and against finite differences, and
    ``jax.test_util.check_grads``, in the dtype of ``params``.

    Args:
        objective: an :class:`mfjax.objectives.Objective` record.
        params: the point (a parameter pytree with ``user_factors``/``item_factors``).
        users, items, ratings: the terms of the loss [n] (implicit: interactions and
            their values; a triple loss: users and positive items).
        negatives: a triple loss's negative item per term [n], else None.
        hyper: the objective's hyperparameters by name (``objective.hyper``).
        order: the highest derivative order for ``check_grads`` (1 or 2).
        max_numerical: finite differences run only up to this many parameters.
    """
    dtype = np.dtype(params.user_factors.dtype)
    if dtype not in _TOL:
        raise ValueError(f"verify_gradients needs float32 or float64 params, got {dtype}")
    n_users, n_items = params.user_factors.shape[0], params.item_factors.shape[0]
    if objective.negatives:
        if negatives is None:
            raise ValueError(f"verify_gradients: objective {objective.name!r} needs negatives= "
                             "(one item per triple)")
        ratings = np.zeros(len(np.asarray(users)))
        validate_ratings(users, negatives, ratings, n_users=n_users, n_items=n_items,
                         where="verify_gradients (negatives)")
        negatives = jnp.asarray(negatives, jnp.int32)
    validate_ratings(users, items, ratings, n_users=n_users, n_items=n_items,
                     where="verify_gradients")
    users = jnp.asarray(users, jnp.int32)
    items = jnp.asarray(items, jnp.int32)
    ratings = jnp.asarray(ratings, dtype)
    tol_exact, tol_num = _TOL[dtype]
    f, grad_fn = objective.gradient_terms(users, items, ratings, negatives, hyper)

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
    rank = params.user_factors.shape[1]
    return GradientReport(
        ok=ok,
        dtype=str(dtype),
        shape=(n_users, n_items, rank, int(users.shape[0])),
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
