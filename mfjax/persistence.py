"""The model file format: npz arrays plus a JSON header, no pickle, validated on load.

A model file is an ``.npz`` (written atomically by :func:`mfjax.plumbing.atomic_savez`) with

- ``params/<field>`` for each field of the model's parameter pytree (its record's
  ``params_type``, :func:`mfjax.models.params_type_of`; validated by its ``from_arrays``);
- ``user_ids`` and ``item_ids`` (see "IDs" below);
- optionally ``seen_indptr`` and ``seen_items`` (a CSR of each user's training items);
- optionally ``posterior/<field>`` for a Gibbs model's per-sample arrays
  (:data:`mfjax.solvers.gibbs.posterior.POSTERIOR_FIELDS`: biases [S, n], μ [S], τ [S] > 0, with
  S dividing the rank, and each sample's row priors, means [S, D] and symmetric positive
  definite precisions [S, D, D] per side, D = rank + 1; files written before the priors
  were kept lack those four and still load);
- optionally ``features/<key>`` for a features model's side information
  (:meth:`mfjax.Features.to_arrays`: CSR arrays, unicode names and IDs, no objects);
  refused in the file of a model whose record takes no features;
- ``meta``: the UTF-8 bytes of a JSON object with ``format`` (``"mfjax-model"``),
  ``version``, ``rating_range``, ``config``, ``history`` and, from version 2, ``ids``.

IDs (version 2). A saved model gives back exactly the IDs it was trained with, type
and value, or :meth:`~mfjax.Model.save` refuses with a ValueError:

- a numeric or boolean ID table (NumPy dtype kind ``b``, ``i``, ``u`` or ``f``) is
  stored as it is, with its dtype recorded (``meta["ids"][side]["dtype"]``);
- a string table (dtype ``U``) or an object table (str, int of any size, float,
  bool, and NumPy scalars of those) is stored as a JSON list (a ``uint8`` blob):
  plain strings for a ``U`` table, ``[tag, value]`` pairs for an object table, with
  ints as decimal text and floats as ``float.hex`` so both round-trip exactly.
  (JSON keeps trailing NULs, which a fixed-width NumPy ``U`` array would strip.)

Version 1 files (ints as int64, everything else as a ``U`` array) still load.

Loading validates every entry: array shapes, dtypes and finiteness, the ID tables
(unique, matching the parameter rows), the seen-items CSR, ``rating_range`` and the
known ``config`` fields. Anything wrong raises ValueError naming the file.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from .data.features import Features, array_names as feature_array_names
from .model_config import check_agreement
from .model_ids import decode_ids, encode_ids, v1_ids
from .npzfile import read_npz
from .plumbing import atomic_savez, short_repr
from . import models

__all__ = ["FORMAT", "FORMAT_VERSION", "write_model", "read_model", "is_model_member"]

FORMAT = "mfjax-model"
#: Version written by :func:`write_model`; :func:`read_model` reads 1 and 2.
FORMAT_VERSION = 2

# ------------------------------------------------------------------------ writing
def write_model(path, model) -> None:
    """Write ``model`` (anything with :class:`~mfjax.Model`'s fields) to ``path``, atomically.

    The arrays are validated exactly as :func:`read_model` would validate them,
    so a file that would not load is never written.

    Raises:
        ValueError: an ID cannot be stored exactly, or a field is invalid
            (e.g. non-finite parameters, a config that is not JSON).
    """
    where = "Model.save"
    if model.params is None:
        raise ValueError(f"{where}: the model has no parameters")
    arrays = {f"params/{k}": np.asarray(v) for k, v in model.params._asdict().items()}
    ids = {}
    for side in ("user", "item"):
        arrays[f"{side}_ids"], ids[side] = encode_ids(getattr(model, f"{side}_ids"),
                                                      f"{where}: {side}_ids")
    for k, v in (getattr(model, "posterior", None) or {}).items():
        arrays[f"posterior/{k}"] = np.asarray(v)
    features = getattr(model, "features", None)
    if features is not None:
        try:
            arrays.update({f"features/{k}": v for k, v in features.to_arrays().items()})
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    if model.seen_indptr is not None or model.seen_items is not None:
        arrays["seen_indptr"] = np.asarray(model.seen_indptr)
        arrays["seen_items"] = np.asarray(model.seen_items)
    try:
        rating_range = [float(x) for x in model.rating_range]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: rating_range must be two numbers, got "
                         f"{short_repr(model.rating_range)}") from None
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "rating_range": rating_range,
            "config": model.config, "history": model.history, "ids": ids}
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"{where}: config and history must be JSON-serializable ({e})") from None
    _decode(json.loads(text), dict(arrays), where)  # refuse what load_model would refuse
    arrays["meta"] = np.frombuffer(text.encode(), np.uint8)
    atomic_savez(path, arrays)


# ------------------------------------------------------------------------ reading
def read_model(path) -> dict:
    """The fields of the model saved at ``path``, validated: ``Model(**read_model(path))``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, if it is corrupt, truncated, tampered with,
            of a newer format version, or not an mfjax model.
    """
    path = os.fspath(path)
    meta, arrays = read_npz(path, FORMAT, is_model_member)
    return _decode(meta, arrays, path)


def is_model_member(name: str) -> bool:
    """Whether ``name`` is an array the model format defines (``meta`` aside)."""
    return (name in ("user_ids", "item_ids", "seen_indptr", "seen_items")
            or name.startswith("params/") and name[len("params/"):] in _params_fields()
            or name.startswith("posterior/") and name[len("posterior/"):] in _posterior_fields()
            or name.startswith("features/") and name[len("features/"):] in feature_array_names())


def _decode(meta: dict, arrays: dict, where: str) -> dict:
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        if type(version) is int and version > FORMAT_VERSION:
            raise ValueError(f"{where}: model format version {version} is newer than this mfjax "
                             f"understands ({FORMAT_VERSION}); upgrade mfjax")
        raise ValueError(f"{where}: bad model format version {short_repr(version)}")
    params_type = models.params_type_of(meta.get("config"))
    fields = params_type._fields
    missing = [k for k in [f"params/{f}" for f in fields] + ["user_ids", "item_ids"]
               if k not in arrays]
    missing += [k for k in ("rating_range",) + (("ids",) if version >= 2 else ("user_id_kind",
                                                                                "item_id_kind"))
                if k not in meta]
    if missing:
        raise ValueError(f"{where}: mfjax model file is missing {', '.join(missing)}")
    params = params_type.from_arrays({k: arrays[f"params/{k}"] for k in fields}, where)
    n_users, n_items = params.n_users, params.n_items
    out = {"params": params}
    for side, n in (("user", n_users), ("item", n_items)):
        try:
            if version == 1:
                ids = v1_ids(arrays[f"{side}_ids"], meta[f"{side}_id_kind"])
            else:
                headers = meta["ids"]
                if not isinstance(headers, dict) or side not in headers:
                    raise ValueError(f"no header for the {side} IDs")
                ids = decode_ids(arrays[f"{side}_ids"], headers[side])
        except ValueError as e:
            raise ValueError(f"{where}: {side}_ids: {e}") from None
        if len(ids) != n:
            raise ValueError(f"{where}: {len(ids)} {side} IDs but {n} rows of {side} parameters")
        if not pd.Index(ids, dtype=ids.dtype if ids.dtype.kind in "biuf" else object).is_unique:
            raise ValueError(f"{where}: the {side} IDs are not unique")
        out[f"{side}_ids"] = ids
    out["rating_range"] = _check_range(meta["rating_range"], where)
    out["config"] = _check_config(meta.get("config", {}), params, where)
    history = meta.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError(f"{where}: history must be a list of objects")
    out["history"] = history
    out["seen_indptr"], out["seen_items"] = _check_seen(arrays, n_users, n_items, where)
    posterior = _posterior(arrays, params, where, out["config"])
    if posterior is not None:
        out["posterior"] = posterior
    features = _features(arrays, where, out["config"])
    if features is not None:
        out["features"] = features
    check_agreement(out["config"], models.spec_of_config(out["config"], where), params, posterior,
                    where)
    return out


def _params_fields() -> set:
    """Every ``params/<field>`` of a registered model's parameter pytree."""
    return (set(models.params_type_of(None)._fields)
            | {f for r in models.REGISTRY.values() for f in r.params_type._fields})


def _posterior_fields() -> set:
    """Every ``posterior/<field>`` a registered model keeps (its package's POSTERIOR_FIELDS)."""
    return {f for r in models.REGISTRY.values() for f in getattr(r.parts, "POSTERIOR_FIELDS", ())}


def _record(config):
    """The registry record a config names (None for one written before specs existed)."""
    name = config.get("model") if isinstance(config, dict) else None
    return models.REGISTRY.get(name) if isinstance(name, str) else None


def _posterior(arrays: dict, params, where: str, config: dict):
    """The per-sample arrays of a model whose package keeps them (its ``check_posterior``),
    validated; a file holding posterior arrays for a model without them is refused."""
    record = _record(config)
    if record is None:  # before specs: only Gibbs models stored posterior arrays
        record = models.record_of(models.spec_of_config(config, where))
    check = getattr(record.parts, "check_posterior", None)
    if check is None:
        if any(k.startswith("posterior/") for k in arrays):
            raise ValueError(f"{where}: posterior arrays in a {record.name} model, which keeps none")
        return None
    return check(arrays, params, where, config)


def _features(arrays: dict, where: str, config: dict):
    """The side information of a features model (``features/`` arrays), validated, or None;
    refused in the file of a model whose record takes none."""
    stored = {k[len("features/"):]: v for k, v in arrays.items() if k.startswith("features/")}
    if not stored:
        return None
    record = _record(config)
    if record is None or not record.features:
        name = record.name if record is not None else "pre-spec"
        raise ValueError(f"{where}: features arrays in a {name} model, which takes no features")
    try:
        return Features.from_arrays(stored)
    except ValueError as e:
        raise ValueError(f"{where}: features: {e}") from None


def _check_range(rr, where: str) -> tuple[float, float]:
    ok = (isinstance(rr, list) and len(rr) == 2 and all(_is_number(x) for x in rr)
          and all(math.isfinite(x) for x in rr) and rr[0] <= rr[1])
    if not ok:
        raise ValueError(f"{where}: rating_range must be [min, max], finite with min <= max, got "
                         f"{short_repr(rr)}")
    return float(rr[0]), float(rr[1])


#: config fields Model uses or reports, and what each may be (None is always allowed;
#: a "name" is a str, or ``{"recorded": str}`` for a custom optax object, see Spec.to_dict).
_CONFIG_FIELDS = {
    "reg": "number>=0", "bias_reg": "number>=0", "fold_in_reg": "number>=0", "learning_rate": "number>0",
    "init_scale": "number>=0", "padding": "number>=0",
    "rank": "int>0", "epochs": "int>0", "batch_size": "int>0", "ensemble": "int>0",
    "patience": "int>0", "batch_slots": "int>0", "n_ratings": "int>=0", "n_users": "int>=0",
    "n_items": "int>=0", "seed": "int",
    "optimizer": "name", "schedule": "name", "gradient": "str", "sort_by": "str", "mesh": "str",
    "table_sharding": "str",
}


def _check_config(config, params, where: str) -> dict:
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be an object, got {type(config).__name__}")
    models.spec_of_config(config, where)  # every recorded hyperparameter valid for its model
    for key, rule in _CONFIG_FIELDS.items():
        v = config.get(key)
        if v is None:
            continue
        kind, _, bound = rule.partition(">")
        if kind == "str":
            ok = isinstance(v, str)
        elif kind == "name":
            ok = isinstance(v, str) or (isinstance(v, dict) and set(v) == {"recorded"}
                                        and isinstance(v["recorded"], str))
        elif kind == "int":
            ok = type(v) is int and (not bound or (v > 0 if bound == "0" else v >= 0))
        else:
            ok = _is_number(v) and math.isfinite(v) and (v > 0 if bound == "0" else v >= 0)
        if not ok:
            raise ValueError(f"{where}: config[{key!r}] = {short_repr(v)} is not a valid "
                             f"{rule.replace('>', ' > ').replace('> =', '>=')}")
    return config


def _check_seen(arrays: dict, n_users: int, n_items: int, where: str):
    indptr, items = arrays.get("seen_indptr"), arrays.get("seen_items")
    if indptr is None and items is None:
        return None, None
    if indptr is None or items is None:
        raise ValueError(f"{where}: seen_indptr and seen_items must come together")
    for name, a in (("seen_indptr", indptr), ("seen_items", items)):
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"{where}: {name} must be a 1-D integer array, got {a.dtype} {a.shape}")
    ok = (len(indptr) == n_users + 1 and indptr[0] == 0 and indptr[-1] == len(items)
          and (np.diff(indptr) >= 0).all())
    if not ok:
        raise ValueError(f"{where}: seen_indptr is not a CSR row pointer for {n_users} users "
                         f"over {len(items)} seen items")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"{where}: seen_items holds indices outside [0, {n_items})")
    return indptr, items


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
