"""Reading an ``.npz`` without trusting it: only the members asked for, sizes checked first.

``np.load(path)[name]`` inflates a member before anything about it can be checked,
and a small file can hold a member that inflates to gigabytes (zeros deflate about
1000:1). :func:`read_members` instead reads the zip directory and every member's npy
header (a few hundred bytes each) first, and refuses, before any array is allocated:

- a member whose name is not allowed (named), or that is not an ``.npy`` array;
- an npy header that holds Python objects (pickles), or of a version other than 1.0/2.0;
- a header whose shape and dtype disagree with the member's size in the zip directory;
- an archive whose members inflate to more than :data:`MAX_INFLATION` times their
  compressed size in all (and more than :data:`INFLATION_FLOOR` bytes). mfjax writes
  its npz files uncompressed (:func:`mfjax.plumbing.atomic_savez`); a trained model
  recompressed by hand deflates far less than that.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Callable

import numpy as np

from .plumbing import short_repr

__all__ = ["read_members", "read_npz", "MAX_INFLATION", "INFLATION_FLOOR"]

#: The most the members of an archive may inflate in all, as a multiple of their compressed size.
MAX_INFLATION = 32
#: Archives whose members inflate to at most this many bytes in all are not held to the ratio.
INFLATION_FLOOR = 64 << 20


def read_members(path, allowed: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the npz at ``path`` by member name (without ``.npy``).

    Args:
        path: the ``.npz`` file.
        allowed: ``allowed(name)`` is True for every member the format defines;
            ``None`` allows any name.

    Raises:
        ValueError: naming the member, for any of the refusals in the module docstring.
        zipfile.BadZipFile: the file is not a zip archive.
    """
    with zipfile.ZipFile(path) as archive:
        infos = {}
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ValueError(f"member {name[:80]!r} is not an npy array")
            key = name[:-len(".npy")]
            if key in infos:
                raise ValueError(f"member {name[:80]!r} appears twice")
            if allowed is not None and not allowed(key):
                raise ValueError(f"unexpected member {name[:80]!r} (not part of the format)")
            infos[key] = info
        inflated = sum(i.file_size for i in infos.values())
        compressed = sum(i.compress_size for i in infos.values())
        if inflated > max(INFLATION_FLOOR, MAX_INFLATION * compressed):
            raise ValueError(f"its members would inflate to {inflated:,} bytes from "
                             f"{compressed:,} compressed (more than {MAX_INFLATION}x); refused "
                             "unread")
        for key, info in infos.items():
            _check_header(archive, info)
        out = {}
        for key, info in infos.items():
            with archive.open(info) as f:
                out[key] = np.lib.format.read_array(f, allow_pickle=False)
        return out


def _check_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a member whose npy header holds objects or disagrees with its size."""
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"npy format version {version}")
        except (ValueError, EOFError, SyntaxError, TypeError) as e:
            raise ValueError(f"member {info.filename[:80]!r} has no readable npy header "
                             f"({str(e)[:100]})") from None
        if dtype.hasobject:
            raise ValueError(f"member {info.filename[:80]!r} holds Python objects; mfjax "
                             "files never do (it is not read)")
        expected = f.tell() + math.prod(shape) * dtype.itemsize
    if expected != info.file_size:
        raise ValueError(f"member {info.filename[:80]!r}: its npy header ({dtype}, shape "
                         f"{shape}) needs {expected:,} bytes but the archive holds "
                         f"{info.file_size:,}")


def read_npz(path, kind: str, allowed=None) -> tuple[dict, dict]:
    """Read an npz written by :func:`~mfjax.plumbing.atomic_savez` with a JSON ``meta`` entry.

    Returns ``(meta, arrays)``. A file that is not a readable npz whose
    ``meta`` is a JSON object with ``meta["format"] == kind`` raises ValueError
    naming the path (a missing file: FileNotFoundError). Members are read by
    :func:`read_members`: sizes checked before inflating, and only
    those for which ``allowed(name)`` is true (``None``: any; ``meta`` always).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        arrays = read_members(path, None if allowed is None
                              else lambda name: name == "meta" or allowed(name))
        raw = arrays.pop("meta")
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"meta is a {raw.dtype} array of shape {raw.shape}, not uint8 bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, UnicodeDecodeError,
            RecursionError, MemoryError, AttributeError, TypeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        text = str(e)[:200] if not isinstance(e, RecursionError) else "JSON nested too deeply"
        if isinstance(e, zipfile.BadZipFile):
            text = "not an npz archive"
        raise ValueError(f"{path} is not a readable {kind} file ({type(e).__name__}: {text})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a {kind} file (its meta is a JSON {type(meta).__name__}, "
                         "not an object)")
    if meta.get("format") != kind:
        raise ValueError(f"{path} is not a {kind} file (format tag {short_repr(meta.get('format'))})")
    return meta, arrays
