"""The matrix-factorization model: parameters, prediction, objective and its gradient.

The model (biased MF, as in Koren et al. and Surprise's ``SVD``) predicts

    r̂(u, i) = μ + b_u + b_i + <p_u, q_i>

with a global bias μ, user and item biases ``b``, and user and item factors
``p_u, q_i ∈ R^k``. Over a set of observed ratings ``D = {(u, i, r)}`` it minimizes

    L = ½ Σ_(u,i,r)∈D (r̂(u,i) − r)²
        + ½ Σ_(u,i,r)∈D [ λ (‖p_u‖² + ‖q_i‖²) + λ_b (b_u² + b_i²) ]

where λ is ``reg`` and λ_b is ``bias_reg`` (equal to ``reg`` unless given). The
regularizer sits inside the sum over ratings, so a row is penalized once per
rating it appears in (the form of Surprise's SVD and of ALS-WR). That makes the
loss of a minibatch an unbiased slice of the full objective. μ is not
regularized.

For one rating with residual e = r̂(u,i) − r the gradient is

    ∂/∂p_u = e q_i + λ p_u      ∂/∂q_i = e p_u + λ q_i
    ∂/∂b_u = e + λ_b b_u        ∂/∂b_i = e + λ_b b_i      ∂/∂μ = e

and the full gradient is the sum of these per-rating terms, accumulated into
the rows they touch. :func:`manual_grad` computes exactly that, by hand, with
``jax.vmap`` over ratings and ``segment_sum`` per row (the λ p_u terms of a
row's ratings are added at once, as λ c_u p_u with c_u its rating count).

Note on the seed notebook: it wrote the regularizer as ``reg * np.sum(U) / 2``
(a typo for the squared norm, whose gradient would be a constant, not
``reg * U``), and its hand-written gradient ignored ``reg``. mfjax uses the
squared norm throughout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .params import Params


__all__ = [
    "Params",
    "init_params",
    "predict",
    "predict_with_fallback",
    "loss",
    "manual_grad",
]


def init_params(
    key: jax.Array,
    n_users: int,
    n_items: int,
    rank: int,
    *,
    init_scale: float = 0.1,
    global_bias: float = 0.0,
    dtype=jnp.float32,
) -> Params:
    """Random initial parameters.

    Factors are drawn i.i.d. from N(0, init_scale²); biases start at 0 and the
    global bias at ``global_bias`` (the training mean is the usual choice; ``fit``'s
    solvers draw their own on the host, :func:`mfjax.solvers.minibatch.epoch.host_init`).

    Args:
        key: a PRNG key.
        n_users, n_items: table sizes.
        rank: the number of latent factors k.
        init_scale: standard deviation of the factors.
        global_bias: the initial μ.
        dtype: floating dtype of every field.

    Returns:
        A :class:`Params` with shapes [n_users, k], [n_items, k], [n_users],
        [n_items] and [].
    """
    if n_users < 1 or n_items < 1 or rank < 1:
        raise ValueError(
            f"init_params needs n_users, n_items and rank >= 1, got "
            f"n_users={n_users}, n_items={n_items}, rank={rank}"
        )
    ku, ki = jax.random.split(key)
    return Params(
        user_factors=init_scale * jax.random.normal(ku, (n_users, rank), dtype),
        item_factors=init_scale * jax.random.normal(ki, (n_items, rank), dtype),
        user_bias=jnp.zeros((n_users,), dtype),
        item_bias=jnp.zeros((n_items,), dtype),
        global_bias=jnp.asarray(global_bias, dtype),
    )


def predict(params: Params, users: jax.Array, items: jax.Array) -> jax.Array:
    """Predicted ratings ``μ + b_u + b_i + <p_u, q_i>``.

    Args:
        params: model parameters.
        users: user indices [n], in [0, n_users).
        items: item indices [n], in [0, n_items).

    Returns:
        Predictions [n]. No clipping: :meth:`mfjax.Model.predict` clips to the
        rating range. Indices are not checked here (JAX clamps out-of-range
        gathers); call :func:`validate_ratings` at the API boundary.
    """
    p = params.user_factors[users]
    q = params.item_factors[items]
    return (
        params.global_bias
        + params.user_bias[users]
        + params.item_bias[items]
        + jnp.sum(p * q, axis=-1)
    )


@jax.jit
def predict_with_fallback(params: Params, users: jax.Array, items: jax.Array) -> jax.Array:
    """:func:`predict` where index -1 means unknown: its bias and factor count as 0.

    An unknown user gets ``μ + b_i``, an unknown item ``μ + b_u``, both unknown ``μ``.

    Args:
        params: model parameters (plain, no member axis).
        users, items: indices [n], -1 for unknown.

    Returns:
        Predictions [n].
    """
    ku, ki = users >= 0, items >= 0
    uu, ii = jnp.where(ku, users, 0), jnp.where(ki, items, 0)
    dot = jnp.sum(params.user_factors[uu] * params.item_factors[ii], axis=-1)
    return (params.global_bias
            + jnp.where(ku, params.user_bias[uu], 0.0)
            + jnp.where(ki, params.item_bias[ii], 0.0)
            + jnp.where(ku & ki, dot, 0.0))


def resolve_bias_reg(reg, bias_reg):
    """λ_b: ``bias_reg``, or ``reg`` when it is None."""
    return reg if bias_reg is None else bias_reg


#: Accepted values of ``sort_by`` in :func:`loss` and :func:`manual_grad`: the index
#: array promised sorted (the one name for the sort key across mfjax).
SORT_BY = (None, "users", "items")


def _check_sort_by(sort_by, sorted_by=None):
    if sorted_by is not None:  # the keyword's name before 0.2; same meaning
        if sort_by is not None and sort_by != sorted_by:
            raise ValueError(f"sort_by={sort_by!r} and its old name sorted_by={sorted_by!r} disagree")
        sort_by = sorted_by
    if sort_by not in SORT_BY:
        raise ValueError(f"sort_by must be one of {SORT_BY}, got {sort_by!r}")
    return sort_by == "users", sort_by == "items"


def _rows(table, idx, is_sorted: bool):
    """``table[idx]``, telling XLA when ``idx`` is sorted (a cheaper sorted gather,
    and a transposed scatter-add that GPUs can pre-reduce instead of contending
    on atomics)."""
    return table.at[idx].get(indices_are_sorted=True) if is_sorted else table[idx]


def _segment_sum(x, idx, n, is_sorted: bool):
    return jax.ops.segment_sum(x, idx, num_segments=n, indices_are_sorted=is_sorted)


def rating_weights(weights, users, dtype):
    """The per-rating weights [n] in ``dtype``: ``weights``, or ones shaped like ``users``."""
    return jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)


def trailing_axes(x, ndim: int):
    """``x`` with trailing unit axes up to ``ndim`` (explicit broadcasting over members/k)."""
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def row_sq_norms(t):
    """Σ of squares over all but the row axis: ‖p_u‖² (summed over members) [n]."""
    return jnp.sum(t * t, axis=tuple(range(1, t.ndim)))


def row_penalty(params: Params, cu, ci, reg, bias_reg):
    """``Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + Σ_i c_i (λ‖q_i‖² + λ_b b_i²)``."""
    return (reg * (jnp.sum(cu * row_sq_norms(params.user_factors)) + jnp.sum(ci * row_sq_norms(params.item_factors)))
            + bias_reg * (jnp.sum(cu * row_sq_norms(params.user_bias)) + jnp.sum(ci * row_sq_norms(params.item_bias))))


def loss(
    params: Params,
    users: jax.Array,
    items: jax.Array,
    ratings: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    weights: jax.Array | None = None,
    sort_by: str | None = None,
    sorted_by: str | None = None,
) -> jax.Array:
    """The regularized squared-error objective over the given ratings.

    ``L = ½ Σ (r̂ − r)² + ½ Σ [λ (‖p_u‖² + ‖q_i‖²) + λ_b (b_u² + b_i²)]``, both
    sums over the ratings passed in (see the module docstring). With
    ``weights`` w, each rating's whole term (error and penalty) is scaled by
    its w; the training loop pads minibatches with w = 0.

    The penalty is evaluated per row, not per rating: with c_u = Σ_{r: u_r = u} w_r
    the (weighted) number of ratings of user u in the batch,
    ``Σ_r w_r ‖p_{u_r}‖² = Σ_u c_u ‖p_u‖²`` (the same for items and biases).
    That is the same number, but it reads each table row once instead of once
    per rating, and its gradient ``λ c_u p_u`` is a dense [n_users, k] update
    rather than one more per-rating term to scatter (a third fewer bytes moved
    per step in training).

    Args:
        params: model parameters.
        users, items: indices [n].
        ratings: observed ratings [n].
        reg: λ, the L2 weight on the factors.
        bias_reg: λ_b, the L2 weight on the biases; ``None`` means ``reg``.
        weights: optional per-rating weights [n]; ``None`` means all 1.
        sort_by: ``"users"`` or ``"items"`` promises that that index array is
            sorted (non-decreasing), which lets XLA use sorted gathers and
            scatters; a false promise gives wrong results. ``None``: no promise.
        sorted_by: the old name of ``sort_by`` (still accepted).

    Returns:
        The scalar loss.
    """
    bias_reg = resolve_bias_reg(reg, bias_reg)
    su, si = _check_sort_by(sort_by, sorted_by)
    dtype = params.global_bias.dtype
    w = rating_weights(weights, users, dtype)
    p = _rows(params.user_factors, users, su)
    q = _rows(params.item_factors, items, si)
    bu = _rows(params.user_bias, users, su)
    bi = _rows(params.item_bias, items, si)
    nd = bu.ndim  # 1, or 2 with a member axis
    err = params.global_bias[None] + bu + bi + jnp.sum(p * q, axis=-1) - trailing_axes(ratings, nd)
    # Ratings per row; no gradient flows through the counts (w is data).
    cu = _segment_sum(w, users, params.n_users, su)
    ci = _segment_sum(w, items, params.n_items, si)
    return 0.5 * (jnp.sum(trailing_axes(w, nd) * err * err) + row_penalty(params, cu, ci, reg, bias_reg))


def _rating_grad(p, q, bu, bi, mu, r, w):
    """Gradient of one rating's (weighted) squared error, for ONE rating.

    Returns (∂p_u [k], ∂q_i [k], ∂b_u [], ∂b_i [], ∂μ []) of ½ w e², e = r̂ − r
    (with a member axis: p, q [K, k], biases and μ [K], and so the results).
    The penalty's part, w λ p_u per rating, is summed per row in
    :func:`manual_grad` as λ c_u p_u.
    """
    we = w * (mu + bu + bi + jnp.sum(p * q, axis=-1) - r)
    return we[..., None] * q, we[..., None] * p, we, we, we


def manual_grad(
    params: Params,
    users: jax.Array,
    items: jax.Array,
    ratings: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    weights: jax.Array | None = None,
    sort_by: str | None = None,
    sorted_by: str | None = None,
) -> Params:
    """The gradient of :func:`loss`, written by hand (no autodiff).

    The per-rating gradient of the error term (module docstring) is written
    for a single rating, ``jax.vmap``-ed over the ratings, and summed into
    rows with ``jax.ops.segment_sum``. The penalty's per-rating terms
    ``w λ p_u`` sum to ``λ c_u p_u`` per row, with c_u = Σ_{r: u_r = u} w_r, and
    are added densely (as in :func:`loss`). Repeated (user, item) pairs
    contribute once per occurrence, exactly as in the loss; rows with no
    ratings get zero.

    Args:
        params: model parameters.
        users, items: indices [n].
        ratings: observed ratings [n].
        reg: λ, the L2 weight on the factors.
        bias_reg: λ_b, the L2 weight on the biases; ``None`` means ``reg``.
        weights: optional per-rating weights [n], as in :func:`loss`.
        sort_by: ``"users"``/``"items"``: that index array is sorted, as in
            :func:`loss`.
        sorted_by: the old name of ``sort_by`` (still accepted).

    Returns:
        A :class:`Params` with the same shapes as ``params``.
    """
    bias_reg = resolve_bias_reg(reg, bias_reg)
    su, si = _check_sort_by(sort_by, sorted_by)
    dtype = params.global_bias.dtype
    w = rating_weights(weights, users, dtype)
    per_rating = jax.vmap(_rating_grad, in_axes=(0, 0, 0, 0, None, 0, 0))
    dp, dq, dbu, dbi, dmu = per_rating(
        _rows(params.user_factors, users, su),
        _rows(params.item_factors, items, si),
        _rows(params.user_bias, users, su),
        _rows(params.item_bias, items, si),
        params.global_bias,
        ratings.astype(dtype),
        w,
    )
    nu, ni = params.n_users, params.n_items
    cu = _segment_sum(w, users, nu, su)
    ci = _segment_sum(w, items, ni, si)
    P, Q, bu, bi = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    return Params(
        user_factors=_segment_sum(dp, users, nu, su) + reg * trailing_axes(cu, P.ndim) * P,
        item_factors=_segment_sum(dq, items, ni, si) + reg * trailing_axes(ci, Q.ndim) * Q,
        user_bias=_segment_sum(dbu, users, nu, su) + bias_reg * trailing_axes(cu, bu.ndim) * bu,
        item_bias=_segment_sum(dbi, items, ni, si) + bias_reg * trailing_axes(ci, bi.ndim) * bi,
        global_bias=jnp.sum(dmu, axis=0),
    )


def _gradient_terms(users, items, ratings, negatives, hyper):
    kw = dict(reg=hyper["reg"], bias_reg=hyper.get("bias_reg"))
    return (lambda p: loss(p, users, items, ratings, **kw),
            lambda p: manual_grad(p, users, items, ratings, **kw))


def _record():
    from . import Objective

    return Objective(name="explicit", ranking=False,
                     biases=True, gradient_terms=_gradient_terms,
                     hyper=("reg", "bias_reg"))


#: This objective's record (:class:`mfjax.objectives.Objective`).
OBJECTIVE = _record()
