"""Training: any Optax optimizer over shuffled minibatches, one jit per epoch.

Each step takes a minibatch B of ratings and applies the optimizer to the
gradient of the minibatch's slice of the objective (see :mod:`mfjax.core`),

    g = ∇θ ½ Σ_(u,i,r)∈B [(r̂(u,i) − r)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)]
    (updates, state) = optimizer.update(g, state, θ);   θ ← θ + updates

with ``g`` from ``jax.grad(mfjax.loss)`` (``gradient="autodiff"``) or from the
hand-written :func:`mfjax.manual_grad` (``gradient="manual"``): both drive the
same jitted step. Note the gradient is a *sum* over the batch; Adam-type
optimizers are invariant to that scale, plain SGD is not (its learning rate is
per rating, as in Surprise).

Hot path: the ratings go to the device once, shuffled once on the host. An
epoch is one jitted ``lax.scan`` over minibatches with donated parameter and
optimizer buffers. The per-epoch reshuffle is cheap and happens inside the
jit: viewing the (pre-shuffled, padded) ratings as a [B, n_batches] grid,
batch b takes from row j the entry in column ``(π(b) + o_j) mod n_batches``,
with a fresh random offset o_j per row and a random batch order π each epoch.
Every epoch therefore mixes different ratings into each batch at O(B) random
numbers, instead of a 20M-element sort (``jax.random.permutation`` of 20M
indices costs ~17 s on a 2-core CPU). Padding entries carry weight 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .core import Params, init_params, loss, manual_grad
from .data import Ratings
from .model import Model, _model_indices, _predict_with_fallback, atomic_savez, read_npz, seen_index

__all__ = ["fit", "make_optimizer", "auto_batch_size", "DEFAULTS", "OPTIMIZERS"]

# Tuned on ML-100K (scripts/train.py and benchmarks/ record the runs).
DEFAULTS = dict(
    rank=128,
    reg=0.1,
    bias_reg=0.01,
    optimizer="adam",
    learning_rate=None,
    epochs=25,
    batch_size=None,
    init_scale=0.1,
)

#: Optimizer names accepted by ``fit`` -> (factory taking a learning rate or schedule, default lr).
OPTIMIZERS: dict[str, tuple[Callable, float]] = {
    # The gradient sums over the batch, so SGD-family rates shrink with batch size.
    "sgd": (optax.sgd, 1e-4),
    "momentum": (lambda lr: optax.sgd(lr, momentum=0.9), 1e-5),
    "nesterov": (lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True), 1e-5),
    "adam": (optax.adam, 0.01),
    "adamw": (optax.adamw, 0.01),
    "adamax": (optax.adamax, 0.01),
    "nadam": (optax.nadam, 0.01),
    "radam": (optax.radam, 0.01),
    "adabelief": (optax.adabelief, 0.01),
    "yogi": (optax.yogi, 0.01),
    "lamb": (optax.lamb, 0.01),
    "lion": (optax.lion, 0.001),
    "adagrad": (optax.adagrad, 0.1),
    "rmsprop": (optax.rmsprop, 0.001),
}

CHECKPOINT = "mfjax-checkpoint"


def make_optimizer(optimizer="adam", learning_rate=None, schedule=None):
    """An ``optax.GradientTransformation`` from a name or as given.

    Args:
        optimizer: a name in :data:`OPTIMIZERS` or a ``GradientTransformation``.
        learning_rate: the step size; ``None`` takes the name's default.
        schedule: an optax schedule (step -> learning rate) used instead of
            ``learning_rate``; steps count minibatches.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None or schedule is not None:
            raise ValueError("learning_rate/schedule apply to optimizer names only; a "
                             "GradientTransformation already has its step size")
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)} "
                         "or pass an optax.GradientTransformation")
    factory, default_lr = OPTIMIZERS[optimizer]
    if schedule is not None:
        return factory(schedule)
    lr = default_lr if learning_rate is None else learning_rate
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    return factory(lr)


def auto_batch_size(n_ratings: int, n_users: int, n_items: int) -> int:
    """A batch size that keeps per-step overhead small at any data size.

    About 1/20 of the data per step, but never below 1024, and at most 2^20
    so one step's gathers stay well inside memory (20M ratings -> 2^20). A
    power of two.
    """
    target = max(1024, min(n_ratings // 20, 1 << 20))
    return min(1 << int(round(math.log2(target))), max(n_ratings, 1))


def _grad_fn(gradient: str, reg: float, bias_reg, sorted_by=None):
    """(params, u, i, r, w) -> (loss, grads) for the chosen gradient route."""
    kw = dict(reg=reg, bias_reg=bias_reg, sorted_by=sorted_by)
    if gradient == "autodiff":
        vg = jax.value_and_grad(loss)
        return lambda p, u, i, r, w: vg(p, u, i, r, weights=w, **kw)
    if gradient == "manual":
        return lambda p, u, i, r, w: (
            loss(p, u, i, r, weights=w, **kw),
            manual_grad(p, u, i, r, weights=w, **kw),
        )
    raise ValueError(f"gradient must be 'autodiff' or 'manual', got {gradient!r}")


def _resolve_sort_by(sort_by: str) -> str:
    """``"auto"``: items on GPUs, users elsewhere (see :func:`_layout`)."""
    if sort_by == "auto":
        return "items" if jax.default_backend() == "gpu" else "users"
    if sort_by not in ("users", "items"):
        raise ValueError(f"fit: sort_by must be 'auto', 'users' or 'items', got {sort_by!r}")
    return sort_by


def _sorted_order(keys: np.ndarray, seed: int) -> np.ndarray:
    """A permutation sorting ``keys`` (int32 in [0, 2^31)), random within equal keys.

    A random permutation, then a stable LSD radix sort on two 16-bit halves:
    NumPy's stable argsort of uint16 is a counting sort, so this takes ~2 s
    for 20M keys instead of ~3.5 s for a comparison sort of (key, random).
    """
    order = np.random.default_rng(seed).permutation(len(keys))
    for shift in (0, 16):
        half = ((keys[order] >> shift) & 0xFFFF).astype(np.uint16)
        if shift and not half.any():
            break  # keys < 2^16: one pass sorted them
        order = order[np.argsort(half, kind="stable")]
    return order


def _layout(train: Ratings, sort_by: str, batch_size: int, n_batches: int, seed: int):
    """The training arrays on the device: sorted once, padded to the batch grid.

    The ratings are sorted by ``sort_by`` (random order within a user or
    item) and padded at the end to ``n_batches * batch_size``. Viewed as the
    [batch_size, n_batches] grid of :func:`_make_epoch`, row j holds
    ``n_batches`` consecutive sorted ratings and every batch takes one entry
    from each row, in row order, so **every minibatch comes out sorted** by
    ``sort_by`` whatever the per-epoch remix. Its gathers then read the big
    table nearly in order, and its scatter-adds are sorted: on a CPU that is
    cache locality (users, the larger table); on a GPU it lets XLA's sorted
    scatter pre-reduce runs of equal indices instead of contending on f32
    atomics, which jaxlib 0.10.2-0.11.0 compiles into a slow compare-and-swap
    loop (jax issue 38806), so there it is the items, whose popular rows take
    the most updates per batch. A batch still holds ~1/n_batches of every
    user's (item's) ratings, a stratified sample.

    Padding repeats the largest index (keeping the order) and has weight 0.
    """
    n = len(train)
    keys = train.users if sort_by == "users" else train.items
    order = _sorted_order(keys, seed)
    pad = n_batches * batch_size - n
    fill = {"users": train.n_users - 1, "items": train.n_items - 1}
    out = []
    for name, a in (("users", train.users), ("items", train.items), ("ratings", train.ratings)):
        dev = np.empty(n + pad, a.dtype)
        np.take(a, order, out=dev[:n])
        dev[n:] = fill.get(name, 0)
        out.append(jnp.asarray(dev))
        del dev
    return out


def _make_epoch(opt, grad_fn, n: int, batch_size: int, n_batches: int):
    """The jitted epoch: params, opt_state, data, key -> params, opt_state, loss sum.

    Data and parameters are arguments, not closed-over constants, so one
    compiled epoch serves every call (and can later be sharded).
    """

    def epoch(params, opt_state, users, items, ratings, key):
        k_order, k_off = jax.random.split(key)
        order = jax.random.permutation(k_order, n_batches)
        offsets = jax.random.randint(k_off, (batch_size,), 0, n_batches)
        rows = jnp.arange(batch_size, dtype=jnp.int32) * n_batches

        def step(carry, b):
            params, opt_state = carry
            idx = rows + (b + offsets) % n_batches
            w = (idx < n).astype(ratings.dtype)  # padding has weight 0
            value, grads = grad_fn(params, users[idx], items[idx], ratings[idx], w)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.sum(losses)

    return jax.jit(epoch, donate_argnums=(0, 1))


@jax.jit
def _sq_abs_err(params, u, i, r, lo, hi):
    """Sums of squared and absolute clipped errors, in chunks to bound memory."""
    chunk = 1 << 16
    pad = (-u.shape[0]) % chunk
    valid = jnp.pad(jnp.ones(u.shape, r.dtype), (0, pad)).reshape(-1, chunk)
    u, i, r = (jnp.pad(x, (0, pad)).reshape(-1, chunk) for x in (u, i, r))

    def body(acc, x):
        uu, ii, rr, vv = x
        e = jnp.clip(_predict_with_fallback(params, uu, ii), lo, hi) - rr
        return (acc[0] + jnp.sum(vv * e * e), acc[1] + jnp.sum(vv * jnp.abs(e))), None

    zero = jnp.zeros((), r.dtype)
    (sq, ab), _ = jax.lax.scan(body, (zero, zero), (u, i, r, valid))
    return sq, ab


@dataclasses.dataclass
class _Best:
    rmse: float = math.inf
    epoch: int = 0
    bad_epochs: int = 0
    params: dict | None = None  # host copies of the best params


def fit(
    train: Ratings,
    *,
    rank: int = DEFAULTS["rank"],
    reg: float = DEFAULTS["reg"],
    bias_reg: float | None = DEFAULTS["bias_reg"],
    optimizer="adam",
    learning_rate: float | None = DEFAULTS["learning_rate"],
    epochs: int = DEFAULTS["epochs"],
    batch_size: int | None = DEFAULTS["batch_size"],
    seed: int = 0,
    gradient: str = "autodiff",
    sort_by: str = "auto",
    validation: Ratings | None = None,
    patience: int | None = None,
    schedule=None,
    init_scale: float = DEFAULTS["init_scale"],
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
) -> Model:
    """Train a biased MF model on ``train`` with an Optax optimizer.

    Args:
        train: the training ratings.
        rank: number of latent factors k.
        reg: λ, L2 weight on factors (per rating, see :func:`mfjax.loss`).
        bias_reg: λ_b, L2 weight on biases; ``None`` means ``reg``.
        optimizer: a name in :data:`OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size for a named optimizer; ``None`` = its default.
        epochs: passes over the data.
        batch_size: ratings per step; ``None`` = :func:`auto_batch_size`.
        seed: seeds the initialization and every shuffle; the same seed gives
            the same result on the same backend.
        gradient: ``"autodiff"`` (``jax.grad(mfjax.loss)``) or ``"manual"``
            (:func:`mfjax.manual_grad`).
        sort_by: the order of the ratings inside every minibatch: ``"users"``,
            ``"items"``, or ``"auto"`` (items on a GPU, users elsewhere). It
            changes speed, not the objective; see :func:`_layout`.
        validation: ratings scored after every epoch (RMSE/MAE in the history).
        patience: stop after this many epochs without a better validation RMSE
            and keep the best parameters (needs ``validation``).
        schedule: an optax schedule replacing ``learning_rate`` (steps = minibatches).
        init_scale: standard deviation of the initial factors.
        checkpoint_dir: write ``checkpoint.npz`` here every ``checkpoint_every``
            epochs (params, optimizer state, RNG key, epoch, history), atomically.
        resume: continue from ``checkpoint_dir``'s checkpoint if there is one.
            The run then ends with the same parameters as an uninterrupted one.
        progress: show a tqdm bar with the loss and validation RMSE.
        callbacks: called as ``cb(epoch, metrics, params)`` after each epoch
            (after its checkpoint); an exception stops training.

    Returns:
        A :class:`mfjax.Model`. ``model.history`` has one dict per epoch:
        ``epoch``, ``loss`` (objective per rating), ``val_rmse``, ``val_mae``, ``seconds``.

    Raises:
        ValueError: on bad arguments or empty data.
        FloatingPointError: when the loss becomes non-finite (names the epoch).
    """
    if not isinstance(train, Ratings):
        raise TypeError(f"train must be an mfjax.Ratings, got {type(train).__name__}")
    n = len(train)
    if n == 0:
        raise ValueError("fit: the training set is empty")
    for name, v in (("rank", rank), ("epochs", epochs), ("checkpoint_every", checkpoint_every)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"fit: {name} must be a positive integer, got {v!r}")
    for name, v in (("reg", reg), ("bias_reg", 0.0 if bias_reg is None else bias_reg)):
        if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
            raise ValueError(f"fit: {name} must be a non-negative number, got {v!r}")
    if patience is not None and (validation is None or patience < 1):
        raise ValueError("fit: patience needs a validation set and must be >= 1")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    if batch_size is None:
        batch_size = auto_batch_size(n, train.n_users, train.n_items)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(min(batch_size, n))
    n_batches = -(-n // batch_size)
    opt = make_optimizer(optimizer, learning_rate, schedule)
    sort_by = _resolve_sort_by(sort_by)
    grad_fn = _grad_fn(gradient, reg, bias_reg, sorted_by=sort_by)

    config = dict(
        rank=int(rank), reg=float(reg), bias_reg=bias_reg,
        optimizer=optimizer if isinstance(optimizer, str) else repr(optimizer),
        learning_rate=(OPTIMIZERS[optimizer][1] if isinstance(optimizer, str) and learning_rate is None
                       and schedule is None else learning_rate),
        schedule=None if schedule is None else repr(schedule),
        epochs=int(epochs), batch_size=batch_size, seed=int(seed), gradient=gradient,
        sort_by=sort_by,
        init_scale=float(init_scale), patience=patience,
        n_ratings=n, n_users=train.n_users, n_items=train.n_items,
    )

    key = jax.random.PRNGKey(seed)
    k_init, k_shuffle = jax.random.split(key)
    params = init_params(k_init, train.n_users, train.n_items, rank, init_scale=init_scale,
                         global_bias=train.mean)
    opt_state = opt.init(params)
    indptr, seen = seen_index(train)
    model = Model(params, train.user_ids, train.item_ids, train.rating_range, config, [],
                  indptr, seen)

    # Data to the device once: sorted and shuffled on the host once, padded to the grid.
    users, items, ratings = _layout(train, sort_by, batch_size, n_batches, seed)
    val = None
    if validation is not None:
        vu, vi = _model_indices(model, validation)
        val = (jnp.asarray(vu), jnp.asarray(vi), jnp.asarray(validation.ratings), len(validation))
    lo, hi = train.rating_range

    start, history, best = 0, [], _Best()
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir),
                                                                   "checkpoint.npz")
    if resume and os.path.exists(ckpt_path):
        params, opt_state, start, history, best = _load_checkpoint(ckpt_path, config, params,
                                                                   opt_state)
    run_epoch = _make_epoch(opt, grad_fn, n, batch_size, n_batches)

    bar = _progress(range(start, epochs), progress, start, epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        params, opt_state, total = run_epoch(params, opt_state, users, items, ratings,
                                             jax.random.fold_in(k_shuffle, epoch))
        epoch_loss = float(total) / n
        if not math.isfinite(epoch_loss):
            where = f"; the last good checkpoint is {ckpt_path}" if ckpt_path and history else ""
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1}: the loss is {epoch_loss}. "
                f"Try a smaller learning_rate (now {config['learning_rate']}){where}")
        row = {"epoch": epoch + 1, "loss": epoch_loss}
        if val is not None:
            sq, ab = _sq_abs_err(params, val[0], val[1], val[2], lo, hi)
            row["val_rmse"] = math.sqrt(float(sq) / val[3])
            row["val_mae"] = float(ab) / val[3]
            if row["val_rmse"] < best.rmse:
                best = _Best(row["val_rmse"], epoch + 1, 0,
                             {k: np.array(v) for k, v in params._asdict().items()})
            else:
                best.bad_epochs += 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", "val_rmse")})
        if ckpt_path and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
            _save_checkpoint(ckpt_path, config, params, opt_state, epoch + 1, history, best)
        for cb in callbacks:
            cb(epoch + 1, dict(row), params)
        if patience is not None and best.bad_epochs >= patience:
            break
    if hasattr(bar, "close"):
        bar.close()

    if patience is not None and best.params is not None:
        params = Params(**{k: jnp.asarray(v) for k, v in best.params.items()})
        config["best_epoch"] = best.epoch
    model.params = params
    model.history = history
    return model


def _progress(it, progress: bool, start: int, total: int):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=start, total=total, unit="epoch", desc="fit")


_COMPAT_KEYS = ("rank", "n_ratings", "n_users", "n_items", "batch_size", "optimizer", "gradient",
                "seed", "reg", "bias_reg", "sort_by")


def _save_checkpoint(path, config, params, opt_state, epoch, history, best: _Best):
    arrays = {f"params/{k}": np.asarray(v) for k, v in params._asdict().items()}
    for j, leaf in enumerate(jax.tree.leaves(opt_state)):
        arrays[f"opt/{j}"] = np.asarray(leaf)
    if best.params is not None:
        arrays.update({f"best/{k}": v for k, v in best.params.items()})
    meta = {"format": CHECKPOINT, "epoch": epoch, "history": history, "config": config,
            "best": {"rmse": best.rmse if math.isfinite(best.rmse) else None,
                     "epoch": best.epoch, "bad_epochs": best.bad_epochs}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_savez(path, arrays)


def _load_checkpoint(path, config, params, opt_state):
    meta, arrays = read_npz(path, CHECKPOINT)
    old = meta.get("config", {})
    diff = {k: (old.get(k), config[k]) for k in _COMPAT_KEYS if old.get(k) != config[k]}
    if diff:
        raise ValueError(f"cannot resume from {path}: the run differs in {diff} "
                         "(checkpoint value, this call's value)")
    try:
        params = Params(**{k: jnp.asarray(arrays[f"params/{k}"]) for k in Params._fields})
        leaves, treedef = jax.tree.flatten(opt_state)
        opt_state = jax.tree.unflatten(
            treedef, [jnp.asarray(arrays[f"opt/{j}"]) for j in range(len(leaves))])
    except KeyError as e:
        raise ValueError(f"{path}: checkpoint is missing {e}") from None
    b = meta.get("best", {})
    best_params = ({k: arrays[f"best/{k}"] for k in Params._fields}
                   if f"best/{Params._fields[0]}" in arrays else None)
    best = _Best(b.get("rmse") if b.get("rmse") is not None else math.inf, b.get("epoch", 0),
                 b.get("bad_epochs", 0), best_params)
    return params, opt_state, int(meta["epoch"]), list(meta.get("history", [])), best
