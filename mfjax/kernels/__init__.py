"""Build, verify and load mfjax's C++ XLA FFI kernels (shared by every CPU kernel).

A kernel is one C++ source compiled with the system compiler (``$CXX``, else
``c++``/``g++``/``clang++``) against the XLA FFI headers that jaxlib ships, with
``-O3 -march=native``. Libraries are cached in a private 0700 folder of compiled code,
apart from the data (:func:`cache_folder`: ``$MFJAX_CACHE``, else
``$XDG_CACHE_HOME/mfjax``, else ``~/.cache/mfjax``; then ``/kernels``) as
``<name>_<key>.so``, the key hashing the source, the jaxlib version, the compiler's
version and the CPU, beside ``<name>_<key>.so.sha256``, the SHA-256 its build
recorded. Only a library that matches its record (and is a regular file of ours,
writable by no one else, not a symlink) is loaded, and the very bytes that were hashed
are the ones loaded (:func:`load`). Builds take a file lock, run the compiler in its own
process group with a timeout (``$MFJAX_BUILD_TIMEOUT``, default 600 s; the whole group is
killed on a timeout or any exception), compile into a private temporary folder and
publish with an atomic rename, record first (:func:`build`).

:class:`Kernel` bundles one source's build, load and FFI registration (once per
process) and the ``available()`` / ``unavailable_reason()`` / ``usable_for()`` answers
that callers use to pick an XLA route instead. :mod:`mfjax.kernels.fused`,
:mod:`mfjax.kernels.als` and :mod:`mfjax.kernels.ials` are built on it.

No build is silent, and none slows a fit that can run without it (a compile beside a
fit slowed it by 25-45% on 2 cores: benchmarks/RESULTS.md, "First fit"):

- ``$MFJAX_KERNELS=0`` turns every kernel off (the one switch; any value other than
  0/1, off/on, false/true, no/yes is an error).
- :meth:`Kernel.usable_for` (a fit's ``kernel="auto"``) never compiles: a cached,
  verified library is loaded at once; without one the fit runs its XLA route and one
  line on stderr (once per process and kernel) says so and how to build it
  (``mfjax build-kernels``, which the README's install line runs).
- :meth:`Kernel.reason` / ``available()`` (a fit's ``kernel=True``, the direct kernel
  functions, ``mfjax build-kernels``) build when needed, with one line on stderr saying
  what is compiled, why and where to.
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
import threading
import warnings

import jax

from ..plumbing import (
    atomic_write_text,
    clean_stale_temporaries,
    private_dir,
    temp_prefix)

__all__ = ["BUILD_TIMEOUT", "MAX_THREADS", "SWITCH", "find_compiler", "cache_root", "cache_folder",
           "build", "load", "register", "read_verified", "threads", "switched_off", "Kernel"]

#: The one environment switch of every kernel (``MFJAX_KERNELS=0``: XLA routes only).
SWITCH = "MFJAX_KERNELS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

#: Default limit (seconds) of one kernel build; ``$MFJAX_BUILD_TIMEOUT`` overrides it.
BUILD_TIMEOUT = 600.0
#: Most threads a kernel uses by default.
MAX_THREADS = 8

_UNSET = object()


def threads(env: str) -> int:
    """Threads per kernel call: ``$<env>``, else the CPUs this process may run on, at most
    :data:`MAX_THREADS`."""
    value = os.environ.get(env, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{env} must be a positive integer, got {value!r}")
        return int(value)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def switched_off() -> str | None:
    """Why the kernels are off (``"turned off by MFJAX_KERNELS=0"``), or None when on.

    Raises:
        ValueError: ``$MFJAX_KERNELS`` is set to something other than 0/1, off/on,
            false/true, no/yes (a typo must not silently mean "on").
    """
    value = os.environ.get(SWITCH, "").strip()
    if value.lower() in _OFF:
        return f"turned off by {SWITCH}={value}"
    if value and value.lower() not in _ON:
        raise ValueError(f"{SWITCH} must be 0 or 1 (or off/on, false/true, no/yes), got {value!r}")
    return None


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


def _cpu_tag() -> str:
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
    """The kernel folder, created private (0700, ours, not a symlink): it holds code we load."""
    return private_dir(os.path.join(cache_root(), "kernels"))


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
        src, jaxlib.__version__, version, platform.machine(), _cpu_tag()))).hexdigest()[:16]


def _owned_regular(st) -> bool:
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
        if not _owned_regular(os.fstat(fd)):
            raise ValueError("it is not a regular file of ours, writable only by us")
        with open(path + ".sha256", "rb", opener=lambda p, f: os.open(
                p, f | getattr(os, "O_NOFOLLOW", 0))) as rec:
            if not _owned_regular(os.fstat(rec.fileno())):
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


def _remove(path: str) -> None:
    """Remove whatever is at ``path`` (a file, a symlink itself, or a folder), if anything."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


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
        cached_only: return None instead of building when no verified copy is cached.
    """
    what = what or name
    if cxx is _UNSET:
        cxx = find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++)")
    out_dir = cache_folder()
    path = os.path.join(out_dir, f"{name}_{key(source, cxx)}.so")
    fd, _ = read_verified(path)
    if fd >= 0:  # no lock needed to use a verified copy (the folder may be read-only)
        os.close(fd)
        return path
    if cached_only:
        return None
    with _locked(out_dir):
        fd, reason = read_verified(path)
        if fd >= 0:
            os.close(fd)
            return path
        if reason != "not built yet":
            warnings.warn(f"mfjax: rebuilding the {what} {path}: {reason}", stacklevel=3)
        _remove(path)
        _remove(path + ".sha256")
        clean_stale_temporaries(out_dir, dirs=True)
        _announce(what, out_dir)
        _compile(cxx, source, path, out_dir)
    return path


def _announce(what: str, out_dir: str) -> None:
    """The one line a build prints (stderr): what is compiled, why, and where to."""
    print(f"mfjax: compiling the {what} for this CPU (once per machine, compiler and jaxlib; "
          f"about 10-20 s; cached in {out_dir})", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(folder: str):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; concurrent builds still publish atomically
        yield
        return
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
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


def register(lib: ctypes.CDLL, targets) -> None:
    """Register each ``(target name, handler symbol)`` of ``targets`` as a CPU FFI target."""
    for target, symbol in targets:
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")


#: :meth:`Kernel.usable_for`'s reason when the kernel is not compiled on this machine yet.
NOT_BUILT = "not compiled on this machine yet (`mfjax build-kernels` compiles it)"


class Kernel:
    """One C++ FFI kernel: built, verified, loaded and registered once per process.

    Args:
        source: the C++ file.
        name: the library's name prefix (and cache name).
        targets: ``(FFI target name, handler symbol)`` pairs it exports.
        what: words for messages ("the fused kernel").
        builder: a callable returning the library path (default: :func:`build` of
            ``source``).
        threads_env: the variable that sets its thread count (:func:`threads`).
    """

    def __init__(self, source, name, targets, *, what, builder=None, threads_env=None):
        self.source, self.name, self.targets, self.what = source, name, tuple(targets), what
        self.threads_env = threads_env
        self.builder = builder or (lambda: build(self.source, self.name, what=self.what))
        self._lock = threading.Lock()
        self._result = _UNSET  # None: registered; a string: why it cannot run
        self._noted = False  # whether the "not compiled yet" line was printed

    def _finish(self, path: str | None, error: BaseException | None) -> str | None:
        """Register the library at ``path`` (or record ``error``); the lock is held."""
        try:
            if error is not None:
                raise error
            register(load(path), self.targets)
            self._result = None
        except Exception as exc:  # noqa: BLE001 - any failure means: use the XLA route
            reason = f"{type(exc).__name__}: {exc}"
            first = reason.splitlines()[0] if reason.strip() else type(exc).__name__
            warnings.warn(f"mfjax: the {self.what} is unavailable, using the XLA routes: {first}",
                          stacklevel=4)
            self._result = reason
        return self._result

    def _state(self, build_now: bool) -> str | None:
        with self._lock:
            if self._result is not _UNSET:
                return self._result
            try:
                path = build(self.source, self.name, what=self.what, cached_only=True)
            except Exception as exc:  # noqa: BLE001 - no compiler, a bad CXX, an unsafe folder
                return self._finish(None, exc)
            if path is not None:
                return self._finish(path, None)
            if not build_now:  # asked again later: another process may have built it
                if not self._noted:
                    self._noted = True
                    print(f"mfjax: the {self.what} is {NOT_BUILT}, so this runs the XLA "
                          f"route instead ({SWITCH}=0 silences this)", file=sys.stderr,
                          flush=True)
                return NOT_BUILT
            try:
                return self._finish(self.builder(), None)
            except Exception as exc:  # noqa: BLE001
                return self._finish(None, exc)

    def threads(self) -> int:
        """Threads per call: ``$<threads_env>``, else the usable CPUs (at most
        :data:`MAX_THREADS`)."""
        return threads(self.threads_env)

    def reason(self) -> str | None:
        """None when the kernel is usable, else why not (``MFJAX_KERNELS=0``, or the
        build). Compiles it (one line on stderr) if it is not cached."""
        return switched_off() or self._state(build_now=True)

    def available(self) -> bool:
        """Whether the kernel can run here (compiles it on the first call if needed)."""
        return self.reason() is None

    def cached_reason(self) -> str | None:
        """Like :meth:`reason` but never compiles: :data:`NOT_BUILT` (with one line on
        stderr, once) when the kernel is not cached."""
        return switched_off() or self._state(build_now=False)

    def usable_for(self, dtypes, dtype, *, build: bool = False) -> bool:
        """Whether a fit in ``dtype`` on the default backend can use it: a CPU backend,
        ``dtype`` among ``dtypes`` (those it was compiled for), kernels on, and the
        library built. ``build=False`` (a fit's ``kernel="auto"``) never compiles: an
        uncached kernel answers False and says so once on stderr; ``build=True`` (a
        fit's ``kernel=True``) compiles it now."""
        import jax
        import numpy as np

        if switched_off() or jax.default_backend() != "cpu" or np.dtype(dtype) not in dtypes:
            return False
        return self._state(build_now=build) is None
