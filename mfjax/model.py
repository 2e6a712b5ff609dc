"""The user-facing model: parameters plus ID maps, config and history.

:class:`Model` is a thin shell over the pure functions in :mod:`mfjax.core`:
it maps raw IDs to indices, clips predictions to the rating range, handles
unknown users and items, and saves to npz + JSON (no pickle).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .core import Params, predict
from .data import Ratings, _lookup

__all__ = ["Model", "load_model", "evaluate"]

FORMAT = "mfjax-model"
FORMAT_VERSION = 1


def seen_index(r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """CSR index of the items each user rated: ``(indptr [n_users + 1], items [nnz])``."""
    order = np.lexsort((r.items, r.users))
    counts = np.bincount(r.users, minlength=r.n_users)
    indptr = np.zeros(r.n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, r.items[order].astype(np.int32)


@dataclasses.dataclass(eq=False)
class Model:
    """A trained MF model with its ID maps.

    Attributes:
        params: the :class:`~mfjax.core.Params`.
        user_ids: raw user ID of each row [n_users].
        item_ids: raw item ID of each row [n_items].
        rating_range: ``(min, max)`` of the training ratings; predictions are clipped to it.
        config: the training configuration (JSON-serializable).
        history: one dict per epoch (``loss``, ``val_rmse``, ``val_mae``, ``seconds``, ...).
        seen_indptr, seen_items: CSR of the training items of each user, used to
            exclude seen items from recommendations.
    """

    params: Params
    user_ids: np.ndarray
    item_ids: np.ndarray
    rating_range: tuple[float, float]
    config: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    seen_indptr: np.ndarray | None = None
    seen_items: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def _user_index(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_index(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def index_users(self, raw, missing: str = "raise"):
        """Raw user IDs -> row indices (KeyError, or -1 with ``missing="ignore"``)."""
        return _lookup(self._user_index, raw, missing, "user")

    def index_items(self, raw, missing: str = "raise"):
        """Raw item IDs -> row indices (KeyError, or -1 with ``missing="ignore"``)."""
        return _lookup(self._item_index, raw, missing, "item")

    def predict(self, raw_users, raw_items, *, clip: bool = True, return_fallbacks: bool = False):
        """Predicted ratings for pairs of raw IDs.

        A known pair gets ``μ + b_u + b_i + <p_u, q_i>``. Unknown IDs fall back:
        an unknown user gets ``μ + b_i``, an unknown item ``μ + b_u``, and both
        unknown ``μ`` (the parts that were learned, nothing invented).

        Args:
            raw_users, raw_items: raw IDs, scalars or equal-length arrays.
            clip: clip to ``rating_range``.
            return_fallbacks: also return ``{"n_unknown_users", "n_unknown_items"}``,
                counted over the pairs.

        Returns:
            Predictions as a NumPy array (a float for scalar input), and the
            fallback counts when asked.
        """
        scalar = np.ndim(raw_users) == 0 and np.ndim(raw_items) == 0
        u = np.atleast_1d(self.index_users(raw_users, missing="ignore"))
        i = np.atleast_1d(self.index_items(raw_items, missing="ignore"))
        if u.shape != i.shape:
            raise ValueError(f"predict: {u.size} users but {i.size} items; pass equal-length arrays")
        pred = self._predict_indices(u, i)
        if clip:
            pred = np.clip(pred, *self.rating_range)
        out = float(pred[0]) if scalar else pred
        if return_fallbacks:
            return out, {"n_unknown_users": int(np.sum(u < 0)), "n_unknown_items": int(np.sum(i < 0))}
        return out

    def _predict_indices(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Unclipped predictions for row indices, where -1 marks an unknown ID."""
        return np.asarray(_predict_with_fallback(self.params, jnp.asarray(u, jnp.int32),
                                                 jnp.asarray(i, jnp.int32)), np.float64)

    # ----------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the model to ``path`` (npz arrays + a JSON header), atomically.

        The file is written to a temporary name in the same folder and renamed,
        so a crash never leaves a half-written model behind.
        """
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "rating_range": list(self.rating_range),
            "config": self.config,
            "history": self.history,
            "user_id_kind": _id_kind(self.user_ids),
            "item_id_kind": _id_kind(self.item_ids),
        }
        arrays = {f"params/{k}": np.asarray(v) for k, v in self.params._asdict().items()}
        arrays["user_ids"] = _ids_for_npz(self.user_ids)
        arrays["item_ids"] = _ids_for_npz(self.item_ids)
        if self.seen_indptr is not None:
            arrays["seen_indptr"] = self.seen_indptr
            arrays["seen_items"] = self.seen_items
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        atomic_savez(path, arrays)


def atomic_savez(path, arrays: dict) -> None:
    """``np.savez`` to a temporary file beside ``path``, then rename over it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; match a normal file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_npz(path, kind: str) -> tuple[dict, dict]:
    """Read an npz written by :func:`atomic_savez` with a JSON ``meta`` entry.

    Returns ``(meta, arrays)``; a file that is not a readable npz with
    ``meta["format"] == kind`` raises ValueError naming the path.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("meta")).decode())
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a readable {kind} file ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise ValueError(f"{path} is not a {kind} file (format tag {meta.get('format')!r})"
                         if isinstance(meta, dict) else f"{path} is not a {kind} file")
    return meta, arrays


def load_model(path) -> Model:
    """Load a model written by :meth:`Model.save`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is corrupt, truncated or not an mfjax model.
    """
    meta, arrays = read_npz(path, FORMAT)
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {meta['version']} is newer than this "
                         f"mfjax understands ({FORMAT_VERSION}); upgrade mfjax")
    try:
        params = Params(**{k: jnp.asarray(arrays[f"params/{k}"]) for k in Params._fields})
        user_ids = _ids_from_npz(arrays["user_ids"], meta["user_id_kind"])
        item_ids = _ids_from_npz(arrays["item_ids"], meta["item_id_kind"])
        rating_range = tuple(float(x) for x in meta["rating_range"])
    except KeyError as e:
        raise ValueError(f"{path}: mfjax model file is missing {e}") from None
    if params.user_factors.shape[0] != len(user_ids) or params.item_factors.shape[0] != len(item_ids):
        raise ValueError(f"{path}: parameter shapes do not match the ID tables")
    return Model(params, user_ids, item_ids, rating_range, meta.get("config", {}),
                 meta.get("history", []), arrays.get("seen_indptr"), arrays.get("seen_items"))


def _id_kind(ids: np.ndarray) -> str:
    return "int" if np.issubdtype(np.asarray(ids).dtype, np.integer) else "str"


def _ids_for_npz(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if _id_kind(ids) == "int":
        return ids.astype(np.int64)
    return ids.astype(str)  # fixed-width unicode: loadable without pickle


def _ids_from_npz(a: np.ndarray, kind: str) -> np.ndarray:
    return a.astype(np.int64) if kind == "int" else a.astype(object)


@jax.jit
def _predict_with_fallback(params: Params, u: jax.Array, i: jax.Array) -> jax.Array:
    """``predict`` where index -1 means unknown: its bias and factor count as 0."""
    ku, ki = u >= 0, i >= 0
    uu, ii = jnp.where(ku, u, 0), jnp.where(ki, i, 0)
    dot = jnp.sum(params.user_factors[uu] * params.item_factors[ii], axis=-1)
    return (params.global_bias
            + jnp.where(ku, params.user_bias[uu], 0.0)
            + jnp.where(ki, params.item_bias[ii], 0.0)
            + jnp.where(ku & ki, dot, 0.0))


def evaluate(model: Model, test: Ratings, *, batch_size: int = 1 << 20) -> dict:
    """RMSE and MAE of clipped predictions on held-out ratings.

    ``test`` may share the model's ID space (a split of the same data) or have
    its own (e.g. loaded from another file): raw IDs are matched either way.
    Unknown users/items use the fallbacks of :meth:`Model.predict` and are counted.

    Returns:
        ``{"rmse", "mae", "n", "n_unknown_users", "n_unknown_items"}``.
    """
    if len(test) == 0:
        raise ValueError("evaluate: the test set is empty")
    u, i = _model_indices(model, test)
    pred = np.concatenate([
        model._predict_indices(u[s:s + batch_size], i[s:s + batch_size])
        for s in range(0, len(u), batch_size)
    ])
    err = np.clip(pred, *model.rating_range) - test.ratings.astype(np.float64)
    return {
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mae": float(np.mean(np.abs(err))),
        "n": int(len(test)),
        "n_unknown_users": int(np.sum(u < 0)),
        "n_unknown_items": int(np.sum(i < 0)),
    }


def _same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (len(a) == len(b) and np.array_equal(a, b))


def _model_indices(model: Model, r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``r``'s ratings in the model's ID space (-1 where unknown)."""
    if _same_ids(r.user_ids, model.user_ids):
        u = r.users
    else:
        u = model.index_users(r.user_ids, missing="ignore")[r.users]
    if _same_ids(r.item_ids, model.item_ids):
        i = r.items
    else:
        i = model.index_items(r.item_ids, missing="ignore")[r.items]
    return np.asarray(u, np.int32), np.asarray(i, np.int32)
