"""Checkpoints: a solver's whole state, the epoch, the history and the best model so far.

A checkpoint is one ``.npz`` written atomically (:func:`mfjax.plumbing.atomic_savez`):
the leaves of the solver's state pytree as ``state/<j>``, the best parameters as
``best/<field>`` and a JSON ``meta`` entry (format tag, epoch, history, the run's
configuration record, the early-stopping counters). No pickle. Resuming refuses a
checkpoint whose run differs in any of :data:`COMPAT_KEYS`.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from ..objectives.explicit import Params
from ..serving.model import read_npz
from ..plumbing import atomic_savez

__all__ = ["CHECKPOINT", "COMPAT_KEYS", "Best", "save_checkpoint", "load_checkpoint"]

#: Format tag of checkpoint files.
CHECKPOINT = "mfjax-checkpoint"

#: Configuration keys a resumed run must share with its checkpoint: the data (its
#: SHA-256) and every hyperparameter. ``epochs`` may grow (to extend a finished run);
#: the mesh may change (results then match to float tolerance).
COMPAT_KEYS = ("data_sha256", "rank", "n_ratings", "n_users", "n_items", "batch_size", "optimizer",
               "learning_rate", "schedule", "gradient", "seed", "reg", "bias_reg", "sort_by",
               "ensemble", "init_scale", "patience", "objective", "solver", "options",
               "als_method", "cg_steps")


@dataclasses.dataclass
class Best:
    """Early-stopping state: the best validation score (lower is better) and its model."""

    score: float = math.inf
    epoch: int = 0
    bad_epochs: int = 0
    params: dict | None = None  # host copies of the best params
    stopped: bool = False       # early stopping ended the run


def save_checkpoint(path, record: dict, leaves: list, epoch: int, history: list, best: Best) -> None:
    """Write the checkpoint atomically.

    Args:
        path: the ``.npz`` file.
        record: the run's configuration record (``FitConfig.record``).
        leaves: the solver state's leaves, as host arrays.
        epoch: epochs completed.
        history: the per-epoch metrics so far.
        best: the early-stopping state.
    """
    arrays = {f"state/{j}": np.asarray(leaf) for j, leaf in enumerate(leaves)}
    if best.params is not None:
        arrays.update({f"best/{k}": v for k, v in best.params.items()})
    meta = {"format": CHECKPOINT, "epoch": epoch, "history": history, "config": record,
            "n_leaves": len(leaves),
            "best": {"score": best.score if math.isfinite(best.score) else None,
                     "epoch": best.epoch, "bad_epochs": best.bad_epochs, "stopped": best.stopped}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_savez(path, arrays)


def load_checkpoint(path, record: dict) -> tuple[list, int, list, Best]:
    """Read a checkpoint for a run configured as ``record``.

    Returns:
        ``(leaves, epoch, history, best)``.

    Raises:
        ValueError: the file is not a readable checkpoint, or its run differs
            from this one in a key of :data:`COMPAT_KEYS` (all named).
    """
    meta, arrays = read_npz(path, CHECKPOINT)
    old = meta.get("config", {})
    diff = {k: (old.get(k), record.get(k)) for k in COMPAT_KEYS if old.get(k) != record.get(k)}
    if diff:
        hint = ("; fit(cg_steps=0) continues an exact-solve iALS run, cg_steps=n a CG run"
                if "als_method" in diff or "cg_steps" in diff else "")
        raise ValueError(f"cannot resume from {path}: the run differs in {diff} "
                         f"(checkpoint value, this call's value){hint}")
    try:
        leaves = [arrays[f"state/{j}"] for j in range(int(meta["n_leaves"]))]
    except KeyError as e:
        raise ValueError(f"{path}: checkpoint is missing {e}") from None
    b = meta.get("best", {})
    best_params = ({k: arrays[f"best/{k}"] for k in Params._fields}
                   if f"best/{Params._fields[0]}" in arrays else None)
    best = Best(b.get("score") if b.get("score") is not None else math.inf, b.get("epoch", 0),
                b.get("bad_epochs", 0), best_params, bool(b.get("stopped", False)))
    return leaves, int(meta["epoch"]), list(meta.get("history", [])), best
