"""Shared plumbing: atomic writes, the cache folder, host-side index checks.

Every module that writes a file, caches something or sends indices into jit
goes through here, so each of these rules has one implementation:

- a file the user asked for appears whole or not at all (write to a temporary
  file in the same folder, fsync, ``os.replace``);
- the cache folder is ``$MFJAX_DATA`` or ``~/.cache/mfjax``; a folder that will
  hold code (compiled kernels) is private (:func:`private_dir`: 0700, ours, no symlink);
- a temporary file is named ``TMP_PREFIX + "<pid>@<host>-" + random + suffix``, so the
  next write into its folder can remove it once it is stale (its writer on this host
  is dead, or it is over an hour old: :func:`clean_stale_temporaries`);
- indices are checked on the host before they reach jit, where gathers clamp
  and ``segment_sum`` drops out-of-range ids silently.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time

import numpy as np

__all__ = ["validate_ratings", "cache_dir", "private_dir", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "atomic_savez", "check_index", "check_positive_int", "TMP_PREFIX", "temp_prefix",
           "clean_stale_temporaries", "STALE_SECONDS", "power_of_two_at_least", "bucket", "short_repr"]

#: Prefix of every temporary file this module creates (so stale ones can be recognised).
TMP_PREFIX = ".tmp-mfjax-"
#: A temporary older than this (seconds) is stale even if a process with its pid lives.
STALE_SECONDS = 3600
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(\d+)@([0-9a-f]{8})-")


def temp_prefix() -> str:
    """``TMP_PREFIX + "<pid>@<host>-"``: the start of this process's temporary names."""
    return f"{TMP_PREFIX}{os.getpid()}@{_HOST}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but not ours (or unparseable): assume alive
    return True


def clean_stale_temporaries(folder, *, max_age: float = STALE_SECONDS, dirs: bool = False) -> list:
    """Remove stale temporaries (``TMP_PREFIX...``) left in ``folder`` by killed writers.

    A temporary is stale when its name records a pid on this host that is no
    longer running, or when it is older than ``max_age`` seconds (pids get reused;
    other hosts' pids cannot be checked; names without a pid are from older mfjax).
    Only our own regular files (and, with ``dirs``, our own folders, removed without
    following symlinks) are touched; errors are ignored (another process may be
    cleaning too). Returns the removed paths.
    """
    folder = os.fspath(folder)
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]
    except OSError:
        return removed
    now, uid = time.time(), getattr(os, "getuid", lambda: None)()
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if (uid is not None and st.st_uid != uid) or not (
                    stat.S_ISREG(st.st_mode) or (dirs and stat.S_ISDIR(st.st_mode))):
                continue
            m = _TMP_NAME.match(name)
            dead = m is not None and m.group(2) == _HOST and not _pid_alive(int(m.group(1)))
            if not dead and now - st.st_mtime < max_age:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def private_dir(path) -> str:
    """Create ``path`` (and any missing parents) with mode 0700, and check it is safe for code.

    Folders that this call creates get mode 0700. The folder itself must then be
    a real directory (not a symlink) owned by this user; if its mode lets others
    in, it is tightened to 0700.

    Returns:
        The absolute path.

    Raises:
        PermissionError: ``path`` is a symlink, not a directory, or owned by someone else.
    """
    path = os.path.abspath(os.fspath(path))
    missing = []
    p = path
    while not os.path.lexists(p) and os.path.dirname(p) != p:
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise PermissionError(f"{path} is a symlink; refusing to keep code there")
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"{path} is not a directory")
    uid = getattr(os, "getuid", lambda: None)()
    if uid is not None and st.st_uid != uid:
        raise PermissionError(f"{path} is owned by uid {st.st_uid}, not by this user ({uid}); "
                              "refusing to keep code there")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


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

    On any exception the temporary file is removed and ``path`` is untouched. A
    process killed mid-write (SIGKILL) leaves its temporary behind; the next
    write into the folder removes it (see :func:`clean_stale_temporaries`).

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
    clean_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=suffix, dir=folder)
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


def power_of_two_at_least(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum): padded lengths from a few sizes keep
    the number of compiled shapes (and compilations) small."""
    return 1 << max(0, int(max(n, minimum, 1) - 1).bit_length())

def bucket(n: int, quantum: int = 1) -> int:
    """``n`` rounded up to a multiple of ``quantum``, then to the next ``m · 2^e`` with
    8 <= m < 16 (at most 1/8 = 12.5 % above; ``quantum`` a power of two): nearby sizes
    share a shape, so one compiled program serves both sides and other data sets."""
    q = -(-max(int(n), 1) // quantum) * quantum
    step = max(quantum, 1 << max(0, q.bit_length() - 4))
    return -(-q // step) * step


def validate_ratings(users, items, ratings=None, *, n_users: int, n_items: int,
                     where: str = "ratings") -> None:
    """Check index and rating arrays on the host, before they reach jit.

    Inside jit, JAX clamps out-of-range gathers and ``segment_sum`` drops
    out-of-range ids, both silently; the layers above call this first.

    Args:
        users, items: index arrays [n].
        ratings: optional rating array [n].
        n_users, n_items: the valid index ranges [0, n).
        where: a name for the data, used in error messages.

    Raises:
        ValueError: naming the mismatched lengths, the first out-of-range or
            non-integer index (with its position), or the first non-finite rating.
    """
    arrays = {"users": np.asarray(users), "items": np.asarray(items)}
    if ratings is not None:
        arrays["ratings"] = np.asarray(ratings)
    for name, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{where}: {name} must be 1-D, got shape {a.shape}")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: array lengths differ: {lengths}")
    for name, n in (("users", n_users), ("items", n_items)):
        check_index(arrays[name], n, name=name, where=where)
    if ratings is not None:
        r = arrays["ratings"]
        if r.size and not np.issubdtype(r.dtype, np.number):
            raise ValueError(f"{where}: ratings must be numeric, got dtype {r.dtype}")
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"{where}: ratings[{j}] = {r[j]} is not finite ({bad.size} non-finite entries)"
            )


def short_repr(x, n: int = 60) -> str:
    """``repr(x)``, cut to ``n`` characters (and ``...``) for error messages."""
    text = repr(x)
    return text if len(text) <= n else text[:n] + "..."
