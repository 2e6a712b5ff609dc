"""How a model file stores its ID tables, exactly (:mod:`mfjax.persistence`, "IDs").

:func:`encode_ids` turns an ID table into ``(array to store, header)`` and
:func:`decode_ids` gives back exactly the table it encoded, type and value: a numeric or
boolean table (NumPy dtype kind ``b``, ``i``, ``u`` or ``f``) is stored as it is, a string
(``U``) or object table as a JSON list in a ``uint8`` blob (plain strings for ``U``,
``[tag, value]`` pairs for objects, ints as decimal text and floats as ``float.hex``).
:func:`v1_ids` reads the tables of version-1 files.
"""
from __future__ import annotations

import json

import numpy as np

from .plumbing import short_repr

__all__ = ["encode_ids", "decode_ids", "v1_ids"]

_NUMERIC_KINDS = "biuf"
_NP_TAG = "np:"


def encode_ids(ids, what: str) -> tuple[np.ndarray, dict]:
    """An ID table -> ``(array to store, header)``, exactly reversible by :func:`decode_ids`.

    Raises:
        ValueError: naming ``what`` and the first ID that cannot be stored exactly
            (a type other than int, float, bool, str or their NumPy scalars).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {ids.shape}")
    if ids.dtype.kind in _NUMERIC_KINDS:
        return ids, {"encoding": "array", "dtype": ids.dtype.str}
    if ids.dtype.kind == "U":
        values = [str(x) for x in ids.tolist()]
    elif ids.dtype.kind == "O":
        values = [_tag(x, what, j) for j, x in enumerate(ids)]
    else:
        raise ValueError(f"{what}: cannot save IDs of dtype {ids.dtype}; use int, uint, float, "
                         "bool or str IDs")
    blob = json.dumps(values, ensure_ascii=True, allow_nan=False).encode("ascii")
    return np.frombuffer(blob, np.uint8), {"encoding": "json", "dtype": ids.dtype.str}


def decode_ids(stored: np.ndarray, header) -> np.ndarray:
    """The ID table :func:`encode_ids` encoded. Raises ValueError if inconsistent."""
    if not isinstance(header, dict):
        raise ValueError(f"the ID header is a {type(header).__name__}, not an object")
    enc, dtype = header.get("encoding"), header.get("dtype")
    try:
        dtype = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dtype = None
    if dtype is None:
        raise ValueError(f"bad ID dtype {short_repr(header.get('dtype'))}")
    if enc == "array":
        if dtype.kind not in _NUMERIC_KINDS or stored.dtype != dtype or stored.ndim != 1:
            raise ValueError(f"the stored IDs ({stored.dtype}, shape {stored.shape}) do not match "
                             f"their header (1-D {dtype})")
        if dtype.kind == "f" and not np.isfinite(stored).all():
            raise ValueError("the IDs hold NaN or infinity")
        return stored
    if enc != "json" or dtype.kind not in "UO":
        raise ValueError(f"unknown ID encoding {short_repr(enc)} for dtype {dtype}")
    if stored.dtype != np.uint8 or stored.ndim != 1:
        raise ValueError(f"the stored IDs are {stored.dtype} of shape {stored.shape}, not bytes")
    try:
        values = json.loads(stored.tobytes().decode("ascii"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"the stored IDs are not a JSON list ({type(e).__name__})") from None
    if not isinstance(values, list):
        raise ValueError("the stored IDs are not a JSON list")
    if dtype.kind == "U":
        if not all(isinstance(x, str) for x in values):
            raise ValueError("a string ID table holds a non-string")
        out = np.array(values, dtype=dtype) if values else np.zeros(0, dtype)
        if [str(x) for x in out.tolist()] != values:
            raise ValueError(f"the string IDs do not fit dtype {dtype}")
        return out
    out = np.empty(len(values), dtype=object)
    for j, v in enumerate(values):
        out[j] = _untag(v, j)
    return out


def _tag(x, what, j):
    """One object-table ID -> a JSON-able ``[tag, value]`` that :func:`_untag` reverses exactly."""
    if type(x) is str:
        return ["str", x]
    if type(x) is bool:
        return ["bool", x]
    if type(x) is int:
        return ["int", str(x)]
    if type(x) is float:
        return ["float", x.hex()]
    if isinstance(x, np.generic) and (x.dtype.kind in _NUMERIC_KINDS or x.dtype.kind == "U"):
        kind = x.dtype.kind
        value = (str(x) if kind == "U" else bool(x) if kind == "b" else x.item().hex() if kind == "f"
                 else str(int(x)))
        return [_NP_TAG + x.dtype.str, value]
    raise ValueError(f"{what}[{j}] = {x!r} has type {type(x).__name__}; mfjax saves int, float, "
                     "bool and str IDs (and NumPy scalars of those) exactly, nothing else")


def _untag(v, j):
    if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)):
        raise ValueError(f"ID {j} is not a [type, value] pair")
    tag, value = v
    try:
        if tag == "str" and isinstance(value, str):
            return value
        if tag == "bool" and isinstance(value, bool):
            return value
        if tag == "int" and isinstance(value, str):
            return int(value)
        if tag == "float" and isinstance(value, str):
            return float.fromhex(value)
        if tag.startswith(_NP_TAG):
            dtype = np.dtype(tag[len(_NP_TAG):])
            kind = dtype.kind
            if kind == "U" and isinstance(value, str):
                return np.str_(value)
            if kind == "b" and isinstance(value, bool):
                return np.bool_(value)
            if kind in "iu" and isinstance(value, str):
                n = int(value)
                info = np.iinfo(dtype)
                if info.min <= n <= info.max:
                    return dtype.type(n)
            if kind == "f" and isinstance(value, str):
                return dtype.type(float.fromhex(value))
    except (ValueError, TypeError, OverflowError):
        pass
    raise ValueError(f"ID {j} has an unreadable [type, value] pair {short_repr(v)}")


def v1_ids(a: np.ndarray, kind) -> np.ndarray:
    """A version-1 file's ID table (``kind`` ``"int"``: int64, ``"str"``: a ``U`` array)."""
    if kind == "int" and a.ndim == 1 and a.dtype.kind in "iu":
        return a.astype(np.int64)
    if kind == "str" and a.ndim == 1 and a.dtype.kind == "U":
        return a.astype(object)
    raise ValueError(f"version-1 IDs of kind {short_repr(kind)} stored as {a.dtype} {a.shape}")
