"""Shared plumbing: atomic writes, the cache folder, host-side index checks.

Every module that writes a file, caches something or sends indices into jit
goes through here, so each of these rules has one implementation:

- a file the user asked for appears whole or not at all (write to a temporary
  file in the same folder, fsync, ``os.replace``);
- the cache folder is ``$MFJAX_DATA`` or ``~/.cache/mfjax``;
- indices are checked on the host before they reach jit, where gathers clamp
  and ``segment_sum`` drops out-of-range ids silently.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

__all__ = ["cache_dir", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "atomic_savez", "check_index", "check_positive_int", "TMP_PREFIX"]

#: Prefix of every temporary file this module creates (so stale ones can be recognised).
TMP_PREFIX = ".tmp-mfjax-"


def cache_dir(*parts: str, override: str | os.PathLike | None = None) -> str:
    """The mfjax cache folder (not created): ``override``, else ``$MFJAX_DATA``, else ``~/.cache/mfjax``.

    Args:
        parts: a sub-path inside it (e.g. ``"kernels"``).
        override: an explicit folder (``data_home=`` arguments).
    """
    root = override or os.environ.get("MFJAX_DATA") or os.path.join("~", ".cache", "mfjax")
    return os.path.join(os.path.abspath(os.path.expanduser(os.fspath(root))), *parts)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", *, file_mode: int | None = None):
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.

    Args:
        path: the destination.
        mode: ``"wb"`` or ``"w"``.
        file_mode: permission bits of the result; default: a normal file's
            (``0o666`` less the umask; ``mkstemp`` alone would give ``0o600``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=folder)
    try:
        if file_mode is None:
            umask = os.umask(0)
            os.umask(umask)
            file_mode = 0o666 & ~umask
        os.chmod(tmp, file_mode)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savez(path, arrays: dict) -> None:
    """``np.savez`` of ``arrays`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def check_index(a, n: int, *, name: str, where: str, lo: int = 0) -> np.ndarray:
    """A 1-D integer index array with every entry in ``[lo, n)``, or ValueError naming it.

    Args:
        a: the indices.
        n: the size of the table they index.
        name: the argument's name, for the message (``"users"``).
        where: who is checking, for the message (``"recommend"``).
        lo: the smallest valid index (-1 where -1 means "unknown").

    Returns:
        ``a`` as a NumPy array.

    Raises:
        ValueError: naming the first non-integer dtype, wrong rank or
            out-of-range entry (with its position and the count of bad ones).
    """
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{where}: {name} must be integer indices, got dtype {a.dtype}")
    if a.size:
        bad = np.flatnonzero((a < lo) | (a >= n))
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"{where}: {name}[{j}] = {int(a[j])} is outside [{lo}, {n}) "
                             f"({bad.size} out-of-range entries)")
    return a


def check_positive_int(value, what: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
