"""The compiled-code cache of mfjax's C++ kernels: compile, verify, load.

See :mod:`mfjax.kernels` for the contract: a private 0700 folder (:func:`cache_folder`),
libraries named by a key over the source, the shared headers, jaxlib, the compiler and
the CPU (:func:`key`), each beside the SHA-256 its build recorded; only a library that
matches its record is loaded, from the very bytes that were hashed (:func:`load`); builds
take a file lock, run the compiler in its own process group under a timeout, and publish
atomically (:func:`build`).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import math
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import warnings

import jax

from ..plumbing import (
    atomic_write_text,
    clean_stale_temporaries,
    private_dir,
    temp_prefix)

__all__ = ["BUILD_TIMEOUT", "HEADERS", "find_compiler", "cpu_tag", "cache_root", "cache_folder",
           "build_timeout", "key", "owned_regular", "read_verified", "remove", "build", "locked",
           "load", "RefusedKernel"]

#: Default limit (seconds) of one kernel build; ``$MFJAX_BUILD_TIMEOUT`` overrides it.
BUILD_TIMEOUT = 600.0

_UNSET = object()


def find_compiler() -> str | None:
    """The C++ compiler to use: ``$CXX``, else ``c++``, ``g++``, ``clang++`` (None: none found).

    Raises:
        RuntimeError: ``$CXX`` is set but names no executable (never silently replaced).
    """
    cxx = os.environ.get("CXX", "").strip()
    if cxx:
        if shutil.which(cxx) is None:
            raise RuntimeError(f"CXX={cxx} is not an executable compiler; set CXX to one "
                               "(e.g. g++) or unset it to use c++/g++/clang++ from PATH")
        return cxx
    for c in ("c++", "g++", "clang++"):
        if shutil.which(c):
            return c
    return None


def cpu_tag() -> str:
    """The CPU model and feature flags (a ``-march=native`` build is only valid on the same kind)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [l for l in f if l.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def cache_root() -> str:
    """mfjax's folder of compiled code (not created): ``$MFJAX_CACHE``, else
    ``$XDG_CACHE_HOME/mfjax``, else ``~/.cache/mfjax``. Data sets have their own variable
    (``$MFJAX_DATA``); pointing it elsewhere does not move the kernels."""
    root = os.environ.get("MFJAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "mfjax")
    return os.path.abspath(os.path.expanduser(root))


def cache_folder() -> str:
    """The kernel folder, created private (0700, ours, not a symlink): it holds code we load.

    Raises:
        OSError: naming ``$MFJAX_CACHE`` when it is set and the folder cannot be made there.
    """
    try:
        return private_dir(os.path.join(cache_root(), "kernels"))
    except OSError as e:
        if not os.environ.get("MFJAX_CACHE"):
            raise
        raise type(e)(f"MFJAX_CACHE={os.environ['MFJAX_CACHE']} cannot hold the kernel cache "
                      f"({e.strerror or e}: {e.filename or ''}); point it at a folder of "
                      "yours, or unset it") from None


def build_timeout() -> float:
    env = os.environ.get("MFJAX_BUILD_TIMEOUT", "").strip()
    try:
        return float(env) if env else BUILD_TIMEOUT
    except ValueError:
        raise ValueError(f"MFJAX_BUILD_TIMEOUT must be a number of seconds, got {env!r}") from None


#: The folder of the headers the kernels share (``-I`` of every build).
HEADERS = os.path.dirname(os.path.abspath(__file__))


def key(source: str, cxx: str) -> str:
    """The cache key of ``source`` built by ``cxx`` here (16 hex digits); it covers the
    shared headers (``*.h`` in :data:`HEADERS`) too, so editing one rebuilds."""
    import jaxlib

    src = b""
    for path in [source] + sorted(glob.glob(os.path.join(HEADERS, "*.h"))):
        with open(path, "rb") as f:
            src += f.read() + b"\0"
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    return hashlib.sha256(b"\0".join(x.encode() if isinstance(x, str) else x for x in (
        src, jaxlib.__version__, version, platform.machine(), cpu_tag()))).hexdigest()[:16]


def owned_regular(st) -> bool:
    uid = getattr(os, "getuid", lambda: None)()
    return stat.S_ISREG(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o022


def read_verified(path: str) -> tuple[int, str | None]:
    """Open the library ``path`` and check it against the SHA-256 its build recorded.

    Returns ``(fd, None)`` with ``fd`` open on exactly the bytes that were hashed,
    or ``(-1, reason)``. Symlinks are not followed; the file and its record must be
    regular files owned by this user and writable by no one else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return -1, "not built yet"
    except OSError as e:
        return -1, f"cannot open it ({e.strerror or e}; a symlink or a folder?)"
    try:
        if not owned_regular(os.fstat(fd)):
            raise ValueError("it is not a regular file of ours, writable only by us")
        with open(path + ".sha256", "rb", opener=lambda p, f: os.open(
                p, f | getattr(os, "O_NOFOLLOW", 0))) as rec:
            if not owned_regular(os.fstat(rec.fileno())):
                raise ValueError("its hash record is not a regular file of ours")
            want = rec.read(200).decode("ascii", "replace").split()
        h = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if not want or want[0] != h.hexdigest():
            raise ValueError("its SHA-256 does not match the one its build recorded "
                             "(truncated, corrupted or replaced)")
    except (OSError, ValueError) as e:
        os.close(fd)
        reason = str(e) if isinstance(e, ValueError) else f"it has no readable hash record ({e.strerror})"
        return -1, reason
    return fd, None


def remove(path: str) -> None:
    """Remove whatever is at ``path`` (a file, a symlink itself, or a folder), if anything."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


class RefusedKernel(RuntimeError):
    """A cached library failed verification (``build(cached_only=True)``); a build replaces it."""


def build(source: str, name: str, *, what: str | None = None, cxx=_UNSET,
          cached_only: bool = False) -> str | None:
    """Path of ``source`` compiled as ``<name>_<key>.so``, building it if no verified copy is cached.

    A verified copy is used without taking the lock, so a read-only cache folder
    that holds one works. A build prints one line on stderr first (what is compiled,
    why, where to).

    A cached library that fails verification (truncated, replaced, a symlink, a
    folder, no record) is removed and rebuilt, with a warning ``rebuilding the
    <what> <path>: <why>``. The compiler runs in its own process group, killed (the
    whole group) on a timeout (``$MFJAX_BUILD_TIMEOUT`` seconds, default 600) or any
    exception, incl. KeyboardInterrupt. When coreutils ``timeout`` exists it wraps the
    compiler, so even if this process is SIGKILLed the compiler dies within the same
    limit. A build folder left by a killed process is removed by the next build.

    Args:
        source: the C++ file.
        name: the library's name prefix.
        what: words for messages (default: ``name``).
        cxx: the compiler (default :func:`find_compiler`; None: raise "no C++ compiler").
        cached_only: return None instead of building when no copy is cached, and
            raise :class:`RefusedKernel` (saying why) when the cached copy fails
            verification.
    """
    what = what or name
    if cxx is _UNSET:
        cxx = find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++)")
    out_dir = cache_folder()
    path = os.path.join(out_dir, f"{name}_{key(source, cxx)}.so")
    fd, reason = read_verified(path)
    if fd >= 0:  # no lock needed to use a verified copy (the folder may be read-only)
        os.close(fd)
        return path
    if cached_only:
        if reason != "not built yet":
            raise RefusedKernel(f"the cached {what} {path} was refused because its "
                                f"verification failed ({reason})")
        return None
    with locked(out_dir, name):
        fd, reason = read_verified(path)
        if fd >= 0:
            os.close(fd)
            return path
        if reason != "not built yet":
            warnings.warn(f"mfjax: rebuilding the {what} {path}: {reason}", stacklevel=3)
        remove(path)
        remove(path + ".sha256")
        clean_stale_temporaries(out_dir, dirs=True)
        _announce(what, out_dir)
        _compile(cxx, source, path, out_dir)
    return path


def _announce(what: str, out_dir: str) -> None:
    """The one line a build prints (stderr): what is compiled, why, and where to."""
    print(f"mfjax: compiling the {what} for this CPU (once per machine, compiler and jaxlib; "
          f"about 10-20 s; cached in {out_dir})", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(folder: str, name: str):
    """An exclusive lock on building library ``name`` in ``folder`` (one lock file per
    library, so the install builds the libraries side by side)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; concurrent builds still publish atomically
        yield
        return
    fd = os.open(os.path.join(folder, f".lock-{name}"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _compile(cxx: str, source: str, path: str, out_dir: str) -> None:
    tmp_dir = tempfile.mkdtemp(prefix=temp_prefix() + "build-", dir=out_dir)
    try:
        tmp = os.path.join(tmp_dir, "kernel.so")
        limit = build_timeout()
        cmd = [cxx, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w",
               "-I", jax.ffi.include_dir(), "-I", HEADERS, source, "-o", tmp, "-lpthread"]
        wrapper = shutil.which("timeout")
        full = ([wrapper, "-s", "KILL", f"{max(1, math.ceil(limit)) + 5}"] if wrapper else []) + cmd
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=limit)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise RuntimeError(f"compiling {source} took over {limit:g} s "
                                   "($MFJAX_BUILD_TIMEOUT); killed") from None
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {source} failed ({' '.join(cmd)}):\n{err[-2000:]}")
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        os.chmod(tmp, 0o700)
        atomic_write_text(path + ".sha256", f"{digest}  {os.path.basename(path)}\n")
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def load(path: str) -> ctypes.CDLL:
    """Load the library at ``path`` only if it matches its recorded hash (re-checked here)."""
    fd, reason = read_verified(path)
    if fd < 0:
        raise RuntimeError(f"refusing to load {path}: {reason}")
    proc_path = f"/proc/self/fd/{fd}"
    if not os.path.exists(proc_path):
        os.close(fd)
        return ctypes.CDLL(path)
    # Load the very file that was hashed, not whatever the name points to by now. The
    # descriptor stays open for the life of the process: dlopen knows a library by its
    # path, so a reused /proc/self/fd/N would hand back the library loaded under that
    # name before (the fused kernel instead of the iALS one).
    try:
        lib = ctypes.CDLL(proc_path)
    except BaseException:
        os.close(fd)
        raise
    _OPEN_FDS.append(fd)
    return lib


#: Descriptors of the loaded kernels (see :func:`load`).
_OPEN_FDS: list[int] = []
