"""Checkpoints: a solver's whole state, the epoch, the history and the best model so far.

A checkpoint is one ``.npz`` written atomically (:func:`mfjax.plumbing.atomic_savez`):
the leaves of the solver's state pytree as ``state/<j>``, the best parameters as
``best/<field>`` and a JSON ``meta`` entry (format tag, epoch, history, the run's
configuration record with the resolved spec, the early-stopping counters). No pickle.
Resuming refuses a checkpoint whose run differs in anything but :data:`FREE_KEYS`, and a
checkpoint whose entries are not what a checkpoint holds (NaN state, a negative epoch,
a history that is not a list of records).
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from .. import models
from ..npzfile import read_npz
from ..plumbing import atomic_savez

__all__ = ["CHECKPOINT", "FREE_KEYS", "Best", "save_checkpoint", "load_checkpoint"]

#: Format tag of checkpoint files.
CHECKPOINT = "mfjax-checkpoint"

#: Record keys a resumed run may change: ``epochs`` may grow (to extend a finished run),
#: the kernel and the mesh may change (results then match to float tolerance), and the
#: layout facts follow from them. Every other key (the data's SHA-256, the seed, every
#: spec field) must be equal.
FREE_KEYS = ("epochs", "kernel", "mesh", "table_sharding", "batch_slots", "padding",
             "mesh_padding_rows", "best_epoch")


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
        record: the run's configuration record (the model's config: resolved spec and run facts).
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
    if not isinstance(old, dict):
        raise ValueError(f"{path}: checkpoint config is not an object")
    keys = (set(old) | set(record)) - set(FREE_KEYS)
    diff = {k: (old.get(k), record.get(k)) for k in sorted(keys) if old.get(k) != record.get(k)}
    if diff:
        hint = ("; fit(cg_steps=0) continues an exact-solve iALS run, cg_steps=n a CG run"
                if "cg_steps" in diff else "")
        raise ValueError(f"cannot resume from {path}: the run differs in {diff} "
                         f"(checkpoint value, this call's value){hint}")
    epoch, n_leaves, history = meta.get("epoch"), meta.get("n_leaves"), meta.get("history", [])
    if type(epoch) is not int or epoch < 0:
        raise ValueError(f"{path}: checkpoint epoch must be a non-negative integer, got {epoch!r}")
    if type(n_leaves) is not int or n_leaves < 0:
        raise ValueError(f"{path}: checkpoint n_leaves must be a non-negative integer")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError(f"{path}: checkpoint history must be a list of records")
    try:
        leaves = [arrays[f"state/{j}"] for j in range(n_leaves)]
    except KeyError as e:
        raise ValueError(f"{path}: checkpoint is missing {e}") from None
    b = meta.get("best", {})
    if not isinstance(b, dict):
        raise ValueError(f"{path}: checkpoint best is not an object")
    fields = models.params_type_of(record)._fields
    best_params = ({k: arrays[f"best/{k}"] for k in fields}
                   if f"best/{fields[0]}" in arrays else None)
    for v in (best_params or {}).values():
        if not np.isfinite(v).all():
            raise ValueError(f"{path}: the checkpoint's best parameters hold NaN or infinity")
    score = b.get("score")
    best = Best(float(score) if isinstance(score, (int, float)) else math.inf,
                int(b.get("epoch", 0)), int(b.get("bad_epochs", 0)), best_params,
                bool(b.get("stopped", False)))
    return leaves, epoch, list(history), best
