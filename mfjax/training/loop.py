"""``fit``: the epoch loop around a :class:`~mfjax.solvers.base.Solver`.

It owns what every solver shares (argument checks, validation, early stopping,
checkpoints, callbacks, the progress bar) and nothing solver-specific: see
:mod:`mfjax.solvers.minibatch.solver` for the Optax minibatch solver and
:mod:`mfjax.training.config` for how each ``"auto"`` is resolved.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import distributed
from ..objectives.explicit import Params
from ..data import Ratings
from ..evaluation.metrics import error_sums
from ..data.ids import model_indices
from ..serving.model import Model
from ..solvers.bpr import solver as bpr  # noqa: F401  (register the solvers)
from ..solvers.als import solver as explicit
from ..solvers.ials import solver as ials
from ..solvers.minibatch import solver as minibatch
from .checkpoint import Best, load_checkpoint, save_checkpoint
from .config import DEFAULTS, resolve
from ..solvers.minibatch.layout import seen_index
from ..solvers.base import make_solver

__all__ = ["fit", "DEFAULT_SOLVERS"]

#: ``solver="auto"`` per objective.
#: (explicit: "auto" means by data size, see :func:`mfjax.solvers.als.solver.explicit_defaults`).
DEFAULT_SOLVERS = {"explicit": "auto", "ials": "als", "bpr": "optax"}


def fit(
    train: Ratings,
    *,
    rank: int | None = None,
    reg: float | None = None,
    bias_reg: float | None = DEFAULTS["bias_reg"],
    optimizer="adam",
    learning_rate: float | None = DEFAULTS["learning_rate"],
    epochs: int | None = None,
    batch_size: int | None = DEFAULTS["batch_size"],
    seed: int = 0,
    gradient: str = "auto",
    sort_by: str = "auto",
    validation: Ratings | None = None,
    patience: int | None = None,
    schedule=None,
    init_scale: float | None = None,
    ensemble=DEFAULTS["ensemble"],
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    mesh=None,
    table_sharding: str = "auto",
    objective: str = "explicit",
    solver: str = "auto",
    optimizer_name: str | None = None,
    alpha: float | None = None,
    unobserved_weight: float | None = None,
    nu: float | None = None,
    cg_steps: int | None = None,
    burn_in: int | None = None,
    samples: int | None = None,
) -> Model:
    """Train a biased MF model on ``train``.

    The loop: check and resolve every argument once (:func:`mfjax.training.config.resolve`),
    let the solver lay out the data and initialise (:class:`mfjax.training.Solver`),
    then per epoch: one solver step, the validation metrics, early stopping, a
    checkpoint, the callbacks and the progress bar. Example::

        train, test = mfjax.split.holdout(ratings, 0.2, seed=0)
        model = mfjax.fit(train, rank=32, epochs=20, validation=test, patience=3)

    Args:
        train: the training ratings.
        rank: number of latent factors k (of each Gibbs sample). ``rank``, ``reg``,
            ``epochs``, ``init_scale`` (and ``batch_size``, ``learning_rate``) given as
            ``None`` take the default of the objective and solver: for explicit
            ratings :data:`mfjax.solvers.als.solver.SOLVER_DEFAULTS` (optax: rank 128,
            reg 0.1, 25 epochs; als: rank 10, reg 0.08, 6 sweeps; gibbs: rank 10),
            for ials/bpr ``OBJECTIVE_DEFAULTS`` (:mod:`mfjax.training.config`).
        reg: λ, L2 weight on factors (per rating, see :func:`mfjax.loss`); Gibbs
            learns its regularization (unused).
        bias_reg: λ_b, L2 weight on biases; ``None`` means ``reg``.
        optimizer: a name in :data:`OPTIMIZERS` or an ``optax.GradientTransformation``.
        learning_rate: step size for a named optimizer; ``None`` = its default.
        epochs: passes over the data (ALS: sweeps). Gibbs runs ``burn_in + samples``
            sweeps instead.
        batch_size: ratings per step (the data makes ``ceil(n / batch_size)``
            minibatches); ``None`` = :func:`auto_batch_size`.
        seed: seeds the initialization and every shuffle; the same seed gives
            the same result on the same backend.
        gradient: ``"autodiff"`` (``jax.grad(mfjax.loss)``), ``"manual"``
            (:func:`mfjax.manual_grad`), ``"blocked"``
            (:func:`mfjax.solvers.minibatch.gradients.blocked_value_and_grad`, XLA's fastest route at
            scale, but ~1.5 s more to compile) or ``"fused"``
            (:func:`mfjax.kernels.fused.value_and_grad`, a C++ kernel compiled on first
            use; single CPU device only; 2.5x the blocked route's speed at the
            ML-20M shape). All give the same minibatches and, to float
            tolerance, the same trajectory. ``"auto"``: autodiff below 2^20
            ratings. From 2^20 on, fused on one CPU device when the kernel is
            available, otherwise blocked.
        sort_by: the key the ratings are grouped by: ``"users"``, ``"items"``,
            or ``"auto"`` (users on a CPU, items on a GPU). It changes speed,
            not the objective; see :func:`mfjax.solvers.minibatch.layout.build_grid`.
        validation: ratings scored after every epoch (RMSE/MAE in the history).
        patience: stop after this many epochs without a better validation RMSE
            and keep the best parameters (needs ``validation``).
        schedule: an optax schedule replacing ``learning_rate`` (steps = minibatches).
        init_scale: standard deviation of the initial factors.
        ensemble: train this many independently initialized models of rank
            ``rank / ensemble`` side by side on the same minibatches and
            return their average, which is itself one rank-``rank`` model
            (factors concatenated and scaled by 1/√ensemble, biases averaged),
            so predict, save and recommend are unchanged. Averaging removes
            much of a single fit's variance (ML-100K, 5 folds: one rank-128
            model 0.910 RMSE, 16 averaged rank-8 members 0.904) at the cost of
            one rank-``rank`` model. ``"auto"``: members of rank >= 8, at most
            16 (rank 128 -> 16 x 8, rank 64 -> 8 x 8, rank 8 -> 1). With
            ``ensemble=1`` this is plain MF.
        checkpoint_dir: write ``checkpoint.npz`` here every ``checkpoint_every``
            epochs (params, optimizer state, RNG key, epoch, history), atomically.
        resume: continue from ``checkpoint_dir``'s checkpoint if there is one.
            The run then ends with the same parameters as an uninterrupted one.
        progress: show a tqdm bar with the loss and validation RMSE.
        callbacks: called as ``cb(epoch, metrics, params)`` after each epoch
            (after its checkpoint), ``params`` a copy the callback may keep; an
            exception stops training.
        mesh: ``None`` (one device), ``"auto"`` (every device; see
            :func:`mfjax.distributed.resolve_mesh`) or a ``jax.sharding.Mesh``
            with axes ``("data", "model")`` (:func:`mfjax.distributed.make_mesh`).
            Each minibatch is split over ``data``; iALS by ALS instead splits each
            half-step's rows over every device (:mod:`mfjax.solvers.ials.mesh`). The
            result matches single-device training to float tolerance for the same
            seed. Explicit ``"als"``/``"gibbs"`` run on one device only.
        table_sharding: ``"replicated"`` tables on every device, ``"sharded"``
            rows split over ``model``, or ``"auto"`` (sharded when the mesh's
            model axis is larger than 1). Minibatch (``"optax"``) solvers only: iALS
            by ALS keeps the tables replicated between sweeps.
        optimizer_name: a name for a custom ``optimizer``/``schedule``, stored in
            the model and checkpoints; resuming with a custom one needs it (their
            repr holds memory addresses).
        objective: ``"explicit"``: the squared error of :func:`mfjax.loss` on
            ratings; ``"ials"``: implicit-feedback ALS (:mod:`mfjax.objectives.ials`);
            ``"bpr"``: Bayesian personalized ranking (:mod:`mfjax.objectives.bpr`).
        solver: ``"optax"`` (minibatches with ``optimizer``), ``"als"`` (exact
            alternating solves) or ``"gibbs"`` (Bayesian MF by Gibbs sampling);
            ``"auto"`` picks the objective's default (:data:`DEFAULT_SOLVERS`); for
            explicit ratings by size: ``"gibbs"`` up to 2M ratings, ``"optax"`` above,
            and ``"optax"`` whenever an argument only it uses is given (``epochs``,
            ``reg``, ``optimizer``, ``learning_rate``, ``batch_size``, ``schedule``,
            ``gradient``, ``patience``, ``mesh``, ``ensemble``), so such calls keep
            their meaning, and ``"gibbs"`` when ``burn_in`` or ``samples`` is given
            (:func:`mfjax.solvers.als.solver.explicit_defaults`).
            Solvers plug in through :func:`mfjax.training.register_solver`.
        alpha, unobserved_weight, nu: iALS' confidence ``c = 1 + alpha * value``,
            the weight α0 of all unobserved pairs and the exponent ν of the
            frequency-scaled regularization (``None``: the solver's default).
        cg_steps: iALS by ALS only: ``n >= 1`` runs n warm-started conjugate-gradient
            steps per row for both sides (as ``implicit`` and ALX do: O(|I_u| k) per
            step instead of O(|I_u| k²)), and the returned model's users are then
            re-solved exactly once against the final items (so with ``validation``, the
            history's metrics are the CG state's and the returned model's differ
            slightly); ``0`` solves every half-step exactly (Cholesky); ``None``
            (default): 3 on a CPU backend (measured: the exact solve's quality in about
            half its time), exact on accelerators. ``model.config["als_method"]`` says
            which ran.
        burn_in, samples: Gibbs sampling's discarded sweeps and averaged sweeps
            (``None``: 20 and 80). The model is the posterior mean of the samples as
            one rank ``rank``·S model and keeps their biases and noise precisions for
            ``model.predict(..., return_std=True)`` (:mod:`mfjax.solvers.als.solver`,
            which also says how S is capped by memory).

    Returns:
        A :class:`mfjax.Model`. ``model.history`` has one dict per epoch:
        ``epoch``, ``loss`` (objective per rating), ``val_rmse``, ``val_mae``, ``seconds``.

    Raises:
        ValueError: on bad arguments or empty data.
        FloatingPointError: when the loss becomes non-finite (names the epoch).
    """
    options = {k: v for k, v in dict(alpha=alpha, unobserved_weight=unobserved_weight, nu=nu,
                                     cg_steps=cg_steps,
                                     burn_in=burn_in, samples=samples).items() if v is not None}
    if objective not in DEFAULT_SOLVERS:
        raise ValueError(f"fit: objective must be one of {sorted(DEFAULT_SOLVERS)}, got {objective!r}")
    solver_name = DEFAULT_SOLVERS[objective] if solver == "auto" else solver
    if objective == "explicit":  # solver and rank/reg/epochs by data size and solver
        optax_args = (epochs is not None or reg is not None or optimizer != "adam"
                      or learning_rate is not None or batch_size is not None or schedule is not None
                      or gradient != "auto" or patience is not None or mesh is not None
                      or not (isinstance(ensemble, str) and ensemble == "auto"))
        if solver == "auto" and (burn_in is not None or samples is not None):
            solver = "gibbs"  # only Gibbs takes them
        solver_name, rank, reg, epochs = explicit.explicit_defaults(
            len(train) if isinstance(train, Ratings) else 0, solver, rank, reg, epochs, optax_args)
    solv = make_solver(objective, solver_name)
    unused = sorted(set(options) - set(getattr(solv, "OPTIONS", ())))
    if unused:
        raise ValueError(f"fit: {', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not "
                         f"apply to objective={objective!r} "
                         f"with solver={solver_name!r}")
    config = resolve(train, rank=rank, reg=reg, bias_reg=bias_reg, optimizer=optimizer,
                     learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, seed=seed,
                     gradient=gradient, sort_by=sort_by, validation=validation, patience=patience,
                     schedule=schedule, init_scale=init_scale, ensemble=ensemble,
                     checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                     mesh=mesh, table_sharding=table_sharding, objective=objective,
                     solver=solver_name, optimizer_name=optimizer_name, options=options)
    state = solv.init(train, config)
    indptr, seen = solv.seen if solv.seen is not None else seen_index(train)
    model = Model(None, train.user_ids, train.item_ids, train.rating_range, config.record, [],
                  indptr, seen)
    validate = _validator(model, train, validation, solv.put, objective)

    start, history, best = 0, [], Best()
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir),
                                                                   "checkpoint.npz")
    if resume and os.path.exists(ckpt_path):
        leaves, start, history, best = load_checkpoint(ckpt_path, config.record)
        state = solv.restore(state, leaves)
    saved = start  # the epoch of the checkpoint on disk, if any

    # A run that early stopping ended stays ended: resuming returns its model.
    todo = range(start, start if best.stopped else config.epochs)
    bar = _progress(todo, progress, start, config.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        state, metrics = solv.step(state)
        epoch_loss = metrics["loss"]
        if not math.isfinite(epoch_loss):
            where = (f"; the last good checkpoint is {ckpt_path} (epoch {saved})"
                     if ckpt_path and saved and os.path.exists(ckpt_path) else "")
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1}: the loss is {epoch_loss}. "
                f"Try a smaller learning_rate (now {config.record['learning_rate']}){where}")
        row = {"epoch": epoch + 1, **metrics}
        params = solv.params(state)
        if validate is not None:
            metrics, score = validate(params)
            row.update(metrics)
            if score < best.score:
                best = Best(score, epoch + 1, 0,
                            {k: np.array(v) for k, v in distributed.to_host(params)._asdict().items()})
            else:
                best.bad_epochs += 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", "val_rmse",
                                                                           "val_ndcg@10")})
        best.stopped = patience is not None and best.bad_epochs >= patience
        if ckpt_path and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
                          or best.stopped):
            leaves = distributed.to_host(jax.tree.leaves(state))  # a collective on several hosts
            if jax.process_index() == 0:
                save_checkpoint(ckpt_path, config.record, leaves, epoch + 1, history, best)
            saved = epoch + 1
        if callbacks:
            # The solvers donate their buffers to the next step: callbacks get a copy
            # they may keep.
            kept = jax.tree.map(jnp.copy, params)
            for cb in callbacks:
                cb(epoch + 1, dict(row), kept)
            del kept
        del params
        if best.stopped:
            break
    if hasattr(bar, "close"):
        bar.close()

    if patience is not None and best.params is not None:
        params = Params(**{k: jnp.asarray(v) for k, v in best.params.items()})
        config.record["best_epoch"] = best.epoch
    else:
        params = solv.params(state)
    model.params = solv.finalize(params)
    if hasattr(solv, "posterior"):  # Gibbs: per-sample arrays behind Model.predict(return_std=True)
        model.posterior = solv.posterior(state, model.params)
    model.history = history
    return model


def _validator(model: Model, train: Ratings, validation: Ratings | None, put: Callable,
               objective: str):
    """``params -> (metrics, score)`` on ``validation``, or None; lower scores are better.

    Explicit ratings: ``val_rmse``/``val_mae`` of clipped predictions, score the
    RMSE. Implicit feedback: ``val_ndcg@10``, ``val_recall@20`` of top-N lists that
    exclude each user's training items, every validation interaction relevant;
    score −NDCG@10.
    """
    if validation is None:
        return None
    if not isinstance(validation, Ratings):
        raise TypeError(f"fit: validation must be an mfjax.Ratings, got {type(validation).__name__}")
    if len(validation) == 0:
        raise ValueError("fit: the validation set is empty")
    if objective != "explicit":
        from ..evaluation.metrics import evaluate_ranking

        def validate_ranking(params: Params):
            m = dataclasses.replace(model, params=params)
            a = evaluate_ranking(m, train, validation, k=10, threshold=-math.inf)
            b = evaluate_ranking(m, train, validation, k=20, threshold=-math.inf)
            out = {"val_ndcg@10": a["ndcg@10"], "val_recall@20": b["recall@20"]}
            return out, -out["val_ndcg@10"]

        return validate_ranking
    vu, vi = model_indices(model, validation)
    u, i, r = put(vu), put(vi), put(validation.ratings)
    lo, hi = train.rating_range
    n = len(validation)

    def validate(params: Params):
        sq, ab = error_sums(params, u, i, r, lo, hi)
        rmse = math.sqrt(float(sq) / n)
        return {"val_rmse": rmse, "val_mae": float(ab) / n}, rmse

    return validate


def _progress(it, progress: bool, start: int, total: int):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=start, total=total, unit="epoch", desc="fit")
