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
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import distributed, models
from ..data import Ratings
from ..data.ids import model_indices
from ..evaluation.metrics import error_sums, prediction_error_sums
from ..data.conventions import STAR_RATINGS_WARNING, looks_like_star_ratings
from ..serving.fallback import fallback_indices
from ..serving.model import Model
from ..data.interactions import seen_index
from .. import jit_cache
from ..specs import Recorded
from .checkpoint import Best, load_checkpoint, save_checkpoint
from .config import check_memory_of, data_fingerprint, resolve, spec_for

__all__ = ["fit"]


def fit(
    train: Ratings,
    model=None,
    *,
    validation: Ratings | None = None,
    patience: int | None = None,
    seed: int = 0,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    mesh=None,
    table_sharding: str = "auto",
    features=None,
    **shorthand,
) -> Model:
    """Train the model ``model`` (a spec) on ``train``.

    Example::

        train, test = mfjax.split.holdout(ratings, 0.2, seed=0)
        model = mfjax.fit(train, mfjax.MF(rank=32, epochs=20), validation=test, patience=3)
        model = mfjax.fit(train, mfjax.ImplicitALS(alpha=2.0))      # clicks
        model = mfjax.fit(train, rank=32)                           # shorthand, see below

    The loop: build the spec and resolve every ``"auto"`` once
    (:mod:`mfjax.training.config`), let the solver lay out the data and initialise
    (:class:`mfjax.solvers.base.Solver`), then per epoch: one solver step, the
    validation metrics, early stopping, a checkpoint, the callbacks and the progress bar.

    Args:
        train: the training ratings or interactions (an :class:`mfjax.Ratings`).
        model: a spec (:class:`mfjax.MF`, :class:`mfjax.ALS`, :class:`mfjax.BayesianMF`,
            :class:`mfjax.ImplicitALS`, :class:`mfjax.BPR`) or spec class. ``None`` picks
            one from the data alone (:func:`mfjax.models.default_record`: iALS when
            every value is 1, else Bayesian MF up to 2M ratings, else MF).
        validation: data scored after every epoch: RMSE/MAE for ratings
            (``val_rmse``, ``val_mae``), NDCG@10 and recall@20 of top-N lists that
            exclude each user's training items for implicit objectives.
        patience: stop after this many epochs without a better validation score and
            keep the best parameters (needs ``validation``). Bayesian MF counts from
            its first kept sample.
        seed: seeds the initialization and every shuffle and draw; the same seed gives
            the same result on the same backend.
        checkpoint_dir: write ``checkpoint.npz`` here every ``checkpoint_every`` epochs
            (solver state, epoch, history, the resolved spec), atomically.
        checkpoint_every: epochs between checkpoints.
        resume: continue from ``checkpoint_dir``'s checkpoint if there is one. The run
            then ends with the same parameters as an uninterrupted one.
        progress: show a tqdm bar with the loss and the validation score.
        callbacks: called as ``cb(epoch, metrics, params)`` after each epoch (after its
            checkpoint), ``params`` a copy the callback may keep; an exception stops
            training.
        mesh: ``None`` (one device), ``"auto"`` (every device;
            :func:`mfjax.distributed.resolve_mesh`) or a ``jax.sharding.Mesh`` with axes
            ``("data", "model")`` (:func:`mfjax.distributed.make_mesh`). MF and BPR split
            each minibatch over ``data``; iALS splits each half-step's rows over every
            device. Results match one device to float tolerance. ALS and Bayesian MF run
            on one device.
        table_sharding: ``"replicated"``, ``"sharded"`` (rows split over ``model``) or
            ``"auto"`` (sharded when the model axis is larger than 1); minibatch solvers.
        features: side information, an :class:`mfjax.Features` keyed by the raw IDs of
            ``train`` (some IDs may lack features, the features may hold IDs without
            ratings). Only models whose record takes features
            (:attr:`mfjax.models.ModelRecord.features`) accept it; their solver reads it
            as ``run.features``, and the model keeps it (``model.features``, saved with
            it). Any other model refuses it with a ValueError naming the model.
        **shorthand: ``objective=`` (``"explicit"``, ``"ials"``, ``"bpr"``) and
            ``solver=`` (``"optax"``, ``"als"``, ``"gibbs"``) pick the spec class when
            ``model`` is None; every other keyword is a field of the spec
            (``fit(train, rank=32)`` is ``fit(train, mfjax.BayesianMF(rank=32))`` on
            ML-100K; ``fit(train, objective="ials", alpha=2)``). A keyword that is not a
            field of the chosen spec raises TypeError naming it and listing the fields.

    Returns:
        A :class:`mfjax.Model`; ``model.spec`` is the spec with every default resolved,
        ``model.history`` one dict per epoch (``epoch``, ``loss`` = objective per rating,
        the validation metrics, ``seconds``).

    Raises:
        TypeError: ``train`` is not a Ratings, a keyword is not a field of the spec.
        ValueError: bad arguments or empty data, naming the argument.
        FloatingPointError: the loss or a returned table became non-finite (names the
            epoch and what to change).
    """
    jit_cache.configure()  # a second process doing the same fit does not recompile
    _check_data(train, validation)
    spec = spec_for(train, model, shorthand)
    entry = models.record_of(spec)
    if entry.objective_record.ranking and looks_like_star_ratings(train):
        warnings.warn(STAR_RATINGS_WARNING, stacklevel=2)
    _check_run(patience, validation, checkpoint_dir, checkpoint_every, resume, callbacks)
    _check_resumable(spec, resume)
    spec, run = resolve(train, spec, seed=seed, mesh=mesh, table_sharding=table_sharding,
                        features=features)
    if features is not None and entry.feature_ids:  # feature-only IDs become rows
        train = features.with_ids(train)
    objective = entry.objective_record
    check_memory_of(train, spec, run)  # refuse what cannot fit, with the figure
    solver = entry.make_solver(spec)
    state = solver.init(train, spec, run)
    record = _record(spec, run, train, patience, solver.facts)
    if checkpoint_dir is not None:
        record["data_sha256"] = data_fingerprint(train)
        if features is not None:  # a resumed run must read the same side information
            record["features_sha256"] = features.fingerprint()
    indptr, seen = solver.seen if solver.seen is not None else seen_index(train)
    result = Model(None, train.user_ids, train.item_ids, train.rating_range, record, [],
                   indptr, seen, features=features)
    validate = _validator(result, train, validation, solver.put, objective, solver)
    state, history, best = _loop(solver, state, spec, record, validate, patience, checkpoint_dir,
                                 checkpoint_every, resume, progress, callbacks)
    if patience is not None and best.params is not None:
        params = entry.params_type(**{k: jnp.asarray(v) for k, v in best.params.items()})
        record["best_epoch"] = best.epoch
    else:
        params = solver.params(state)
    result.params = solver.finalize(state, params)
    record.update(solver.facts)  # facts finalize settled (e.g. the samples Gibbs averaged)
    _check_finite(result.params, solver)
    result.posterior = solver.posterior(state, result.params)
    result.history = history
    return result


def _check_data(train, validation) -> None:
    for name, data in (("train", train), ("validation", validation)):
        if data is None and name == "validation":
            continue
        if not isinstance(data, Ratings):
            kind = type(data).__module__.split(".")[0] + "." + type(data).__name__
            hint = ("; convert it with mfjax.Ratings.from_csr(matrix)" if "sparse" in kind or
                    hasattr(data, "tocsr") else "; convert it with mfjax.Ratings.from_frame(df)"
                    if hasattr(data, "columns") else "")
            raise TypeError(f"fit: {name} must be an mfjax.Ratings, got {kind}{hint}")
        if len(data) == 0:
            raise ValueError(f"fit: the {'training' if name == 'train' else name} set is empty")


def _check_run(patience, validation, checkpoint_dir, checkpoint_every, resume, callbacks):
    if patience is not None:
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"fit: patience must be a positive integer or None, got {patience!r}")
        if validation is None:
            raise ValueError("fit: patience needs a validation set (validation=)")
    if (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer))
            or checkpoint_every < 1):
        raise ValueError(f"fit: checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if not isinstance(resume, bool):
        raise TypeError(f"fit: resume must be True or False, got {resume!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    if not all(callable(cb) for cb in callbacks):
        raise TypeError("fit: callbacks must be callables cb(epoch, metrics, params)")


def _check_resumable(spec, resume) -> None:
    """A custom optimizer or schedule is told apart from another only by ``optimizer_name``."""
    custom = any(getattr(spec, k, None) is not None and not isinstance(getattr(spec, k), str)
                 for k in ("optimizer", "schedule"))
    if resume and custom and getattr(spec, "optimizer_name", None) is None:
        raise ValueError("fit: resume=True with an optax.GradientTransformation or a schedule needs "
                         "the spec's optimizer_name= (a name you choose for that optimizer and "
                         "schedule): their repr holds memory addresses, so runs cannot be told "
                         "apart without it")
    for k in ("optimizer", "schedule"):
        if isinstance(getattr(spec, k, None), Recorded):
            raise ValueError(f"fit: the spec's {k} is {getattr(spec, k)!r}, recorded by a saved "
                             f"model; pass the optax object itself ({k}=...) to train")


def _record(spec, run, train: Ratings, patience, facts: dict) -> dict:
    """The model's config: the resolved spec's fields and the facts of this run (JSON)."""
    record = {**spec.to_dict(), "objective": spec.objective, "solver": spec.solver,
              "seed": run.seed, "patience": None if patience is None else int(patience),
              "n_ratings": len(train), "n_users": train.n_users, "n_items": train.n_items,
              "mesh": distributed.describe(run.mesh)}
    if run.mesh is not None:
        record["table_sharding"] = run.table_sharding
    record.update(facts)
    return record


def _loop(solver, state, spec, record, validate, patience, checkpoint_dir, checkpoint_every,
          resume, progress, callbacks):
    """The epochs: ``(state, history, best)``."""
    start, history, best = 0, [], Best()
    ckpt_path = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir),
                                                                   "checkpoint.npz")
    if resume and os.path.exists(ckpt_path):
        leaves, start, history, best = load_checkpoint(ckpt_path, record)
        if start > spec.n_steps and not best.stopped:
            raise ValueError(f"fit: the checkpoint {ckpt_path} has {start} epochs done, more than "
                             f"the {spec.n_steps} this call asks for; ask for >= {start} or use "
                             "another checkpoint_dir")
        state = solver.restore(state, leaves)
    saved = start  # the epoch of the checkpoint on disk, if any
    # A run that early stopping ended stays ended: resuming returns its model.
    todo = range(start, start if best.stopped else spec.n_steps)
    bar = _progress(todo, progress, start, spec.n_steps)
    for epoch in bar:
        t0 = time.perf_counter()
        state, metrics = solver.step(state)
        if not math.isfinite(metrics["loss"]):
            where = (f"; the last good checkpoint is {ckpt_path} (epoch {saved})"
                     if ckpt_path and saved and os.path.exists(ckpt_path) else "")
            raise FloatingPointError(f"training diverged in epoch {epoch + 1}: the loss is "
                                     f"{metrics['loss']}; {solver.divergence_hint()}{where}")
        row = {"epoch": epoch + 1, **metrics}
        # Only what reads the model builds it (Gibbs: the average of every kept sample),
        # once per epoch at most.
        built = []

        def model_params():
            if not built:
                built.append(solver.params(state))
            return built[0]

        if validate is not None:
            scores, score = validate(model_params, state)
            row.update(scores)
            if epoch + 1 >= solver.min_epochs:
                if score < best.score:
                    # The best parameters are kept (on the host) only for early stopping.
                    snapshot = None if patience is None else {
                        k: np.array(v) for k, v in
                        distributed.to_host(model_params())._asdict().items()}
                    best = Best(score, epoch + 1, 0, snapshot)
                else:
                    best.bad_epochs += 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()
                             if k in ("loss", "val_rmse", "val_ndcg@10")})
        best.stopped = patience is not None and best.bad_epochs >= patience
        if ckpt_path and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == spec.n_steps
                          or best.stopped):
            leaves = distributed.to_host(jax.tree.leaves(state))  # a collective on several hosts
            if jax.process_index() == 0:
                save_checkpoint(ckpt_path, record, leaves, epoch + 1, history, best)
            saved = epoch + 1
        if callbacks:
            # The solvers donate their buffers to the next step: callbacks get a copy
            # they may keep.
            kept = jax.tree.map(jnp.copy, model_params())
            for cb in callbacks:
                cb(epoch + 1, dict(row), kept)
            del kept
        del built
        if best.stopped:
            break
    if hasattr(bar, "close"):
        bar.close()
    return state, history, best


def _check_finite(params, solver) -> None:
    """Every returned table finite (on the host: a device check would compile one small
    program per table shape, a third of a second on a CPU's first fit)."""
    for name, table in params._asdict().items():
        if not np.isfinite(np.asarray(table)).all():
            raise FloatingPointError(f"fit: the trained {name} holds NaN or infinity; "
                                     f"{solver.divergence_hint()}")


def _validator(model: Model, train: Ratings, validation: Ratings | None, put: Callable,
               objective, solver=None):
    """``(model_params, state) -> (metrics, score)`` on ``validation``, or None; lower scores
    are better. ``model_params()`` builds the model's parameters (called only if needed).

    Explicit ratings: ``val_rmse``/``val_mae`` of clipped predictions, score the
    RMSE. Implicit feedback: ``val_ndcg@10``, ``val_recall@20`` of top-N lists that
    exclude each user's training items, every validation interaction relevant;
    score −NDCG@10.
    """
    if validation is None:
        return None
    if objective.ranking:
        from ..evaluation.metrics import evaluate_ranking

        def validate_ranking(model_params, state=None):
            m = dataclasses.replace(model, params=model_params())
            a = evaluate_ranking(m, train, validation, k=10, threshold=-math.inf)
            b = evaluate_ranking(m, train, validation, k=20, threshold=-math.inf)
            out = {"val_ndcg@10": a["ndcg@10"], "val_recall@20": b["recall@20"]}
            return out, -out["val_ndcg@10"]

        return validate_ranking
    # Users and items without training rows take the cold fallback, as in evaluate().
    vu, vi = fallback_indices(model, *model_indices(model, validation))
    u, i, r = put(vu), put(vi), put(validation.ratings)
    lo, hi = train.rating_range
    n = len(validation)

    # A solver may score its model incrementally (Gibbs: a running posterior mean).
    incremental = getattr(solver, "validation_predictions", None)

    def validate(model_params, state=None):
        if incremental is not None and state is not None:
            sq, ab = prediction_error_sums(incremental(state, u, i), r, lo, hi)
        else:
            sq, ab = error_sums(model_params(), u, i, r, lo, hi)
        rmse = math.sqrt(float(sq) / n)
        return {"val_rmse": rmse, "val_mae": float(ab) / n}, rmse

    return validate


def _progress(it, progress: bool, start: int, total: int):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=start, total=total, unit="epoch", desc="fit")
