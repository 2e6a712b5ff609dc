"""Byte streams under the readers: sources, guards against hostile input, and content sniffing.

A :class:`Source` is a plain file or a member of a zip archive (read in
memory, never extracted). Every byte the readers see passes through a
:class:`GuardStream`, which

- stops with a ValueError naming the file and line when a line is longer
  than :data:`MAX_LINE` bytes (1 MiB), so ``/dev/zero``, an endless pipe or a
  binary file cannot exhaust memory;
- turns a corrupt archive member (bad CRC, deflate error, truncation:
  ``zipfile.BadZipFile``, ``zlib.error``, ``EOFError``) into
  :class:`CorruptInput`, a ValueError naming the archive and the member;
- notes whether the text may hold non-canonical integers (``007``, ``+7``),
  so the readers know when integer-looking IDs must be re-read as text.

:func:`sniff_binary` names compressed or binary files before any parsing.

Example:
    >>> import io
    >>> s = io.BufferedReader(ReplaceStream(io.BytesIO(b"1::2"), b"::", b"\\t"))
    >>> s.read()
    b'1\\t2'
"""

from __future__ import annotations

import errno
import io
import os
import struct
import zipfile
import zlib
from typing import IO

import numpy as np

__all__ = ["MAX_LINE", "ZIP_ERRORS", "is_zip_error", "CorruptInput", "Source", "GuardStream", "ReplaceStream", "sniff_binary"]

#: The longest line (in bytes, without its newline) any reader accepts: 1 MiB.
MAX_LINE = 1 << 20

# What zipfile raises on damaged archives: bad CRC or headers, deflate
# errors, truncation, flag bits read as "encrypted" (RuntimeError) or an
# unknown method (NotImplementedError), a seek to a negative offset (OSError
# EINVAL), a header too short to unpack (struct.error).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
              struct.error, OSError)
_CORRUPT = ZIP_ERRORS


def is_zip_error(e: BaseException) -> bool:
    """Whether ``e`` (one of :data:`ZIP_ERRORS`) means a damaged archive rather than an I/O failure."""
    if isinstance(e, OSError) and not isinstance(e, zipfile.BadZipFile):
        return e.errno == errno.EINVAL
    return True


class CorruptInput(ValueError):
    """Input that cannot be read at all (corrupt archive member, endless line); never retried."""


class Source:
    """Something to read: a plain file or a member of a zip archive (never extracted)."""

    def __init__(self, path: str, member: str | None = None):
        self.path = path
        self.member = member
        self.filename = os.path.basename(member if member else path)
        self.name = f"{path} (member {member})" if member else path
        self.last_guard: GuardStream | None = None

    def open(self) -> IO[bytes]:
        """A buffered, guarded byte stream (see :class:`GuardStream`)."""
        if self.member is None:
            raw = open(self.path, "rb")
        else:
            try:
                # The member stream keeps the archive's file open after the
                # ZipFile object is closed (zipfile reference-counts it).
                with zipfile.ZipFile(self.path) as zf:
                    raw = zf.open(self.member)
            except _CORRUPT as e:
                if not is_zip_error(e):
                    raise
                raise CorruptInput(f"{self.name}: the archive is corrupt ({e})") from None
        self.last_guard = GuardStream(raw, self.name)
        return io.BufferedReader(self.last_guard, buffer_size=1 << 16)


class GuardStream(io.RawIOBase):
    """A read-only byte stream that enforces :data:`MAX_LINE` and translates archive errors.

    Attributes:
        odd_integers: True once a ``+``, a vertical tab or form feed, or a
            ``0`` that starts a longer run of digits (a leading zero) has been
            seen; False means every integer read so far is written canonically.
        space_digit, tab_digit: True once a space (tab) has been seen next to
            a digit: pandas reads ``" 7"`` as the integer 7, so where spaces
            (tabs) are not separators, integer IDs must be re-read as text.
    """

    def __init__(self, f: IO[bytes], name: str, chunk: int = MAX_LINE):
        self._f, self._name, self._chunk = f, name, min(chunk, MAX_LINE)
        self._buf = memoryview(b"")
        self._since_newline = 0  # bytes since the last b"\n"
        self._lines = 0  # newlines seen
        self._prev = 10  # the byte before the current chunk (as if after a newline)
        self.odd_integers = False
        self.space_digit = False
        self.tab_digit = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        try:
            data = self._f.read(self._chunk)
        except _CORRUPT as e:
            if not is_zip_error(e) or self._name == getattr(self._f, "name", None):
                raise
            raise CorruptInput(f"{self._name}: the archive is corrupt ({e})") from None
        if not data:
            return False
        # A chunk is at most MAX_LINE bytes, so a line between two newlines
        # inside it is short enough: only the line running into it can be long.
        first = data.find(b"\n")
        if first < 0:
            self._since_newline += len(data)
        else:
            if self._since_newline + first > MAX_LINE:
                self._too_long(self._lines + 1)
            self._lines += data.count(b"\n")
            self._since_newline = len(data) - data.rfind(b"\n") - 1
        if self._since_newline > MAX_LINE:
            self._too_long(self._lines + 1)
        a = np.frombuffer(data, dtype=np.uint8)
        if not self.odd_integers:
            self.odd_integers = (b"+" in data or b"\x0b" in data or b"\x0c" in data
                                 or _leading_zero(a, self._prev))
        if not self.space_digit and b" " in data:
            self.space_digit = _next_to_digit(a, 32, self._prev)
        if not self.tab_digit and b"\t" in data:
            self.tab_digit = _next_to_digit(a, 9, self._prev)
        self._prev = int(a[-1])
        self._buf = memoryview(data)
        return True

    def _too_long(self, lineno: int):
        raise CorruptInput(
            f"{self._name}, line {lineno}: line is longer than {MAX_LINE:,} bytes "
            f"(the limit, 1 MiB); this is not a ratings file, or not a text one"
        )

    def readinto(self, b) -> int:
        if not len(self._buf) and not self._fill():
            return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self):
        self._f.close()
        super().close()


def _next_to_digit(a: np.ndarray, byte: int, prev: int) -> bool:
    """Whether ``byte`` occurs right before or after an ASCII digit in ``a`` (``prev`` precedes ``a``)."""
    at = np.flatnonzero(a == byte)
    if not at.size:
        return False
    digit = (a >= 48) & (a <= 57)
    after = digit[np.minimum(at + 1, len(a) - 1)] & (at + 1 < len(a))
    before = np.where(at > 0, digit[np.maximum(at - 1, 0)], 48 <= prev <= 57)
    return bool((after | before).any())


def _leading_zero(a: np.ndarray, prev: int) -> bool:
    """Whether bytes ``a`` hold a leading zero: ``0`` + digit, not after a digit or ``.``."""
    if len(a) < 2:
        return False
    digit = (a >= 48) & (a <= 57)
    zero = (a[:-1] == 48) & digit[1:]
    starts = np.empty(len(a) - 1, dtype=bool)
    starts[0] = not (48 <= prev <= 57 or prev == 46)
    starts[1:] = ~(digit[:-2] | (a[:-2] == 46))
    return bool((zero & starts).any())


class ReplaceStream(io.RawIOBase):
    """A read-only byte stream with every ``old`` replaced by ``new`` (in 1 MiB chunks)."""

    def __init__(self, f: IO[bytes], old: bytes, new: bytes, chunk: int = 1 << 20):
        self._f, self._old, self._new, self._chunk = f, old, new, chunk
        self._buf = memoryview(b"")
        self._carry = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self):
        raw = self._f.read(self._chunk)
        data, self._carry = self._carry + raw, b""
        if not raw:
            self._eof = True
            self._buf = memoryview(data.replace(self._old, self._new))
            return
        # Hold back the tail after the last match that could begin a match
        # split across chunks; everything before it is final.
        parts = data.split(self._old)
        cut = max(len(parts[-1]) - (len(self._old) - 1), 0)
        parts[-1], self._carry = parts[-1][:cut], parts[-1][cut:]
        self._buf = memoryview(self._new.join(parts))

    def readinto(self, b) -> int:
        while not len(self._buf) and not self._eof:
            self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self):
        self._f.close()
        super().close()


# (magic bytes, what the file is, what to do)
_MAGIC = (
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it first (gunzip)"),
    (b"BZh", "a bzip2-compressed file", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it first (unzstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the ratings file first"),
    (b"PK\x03\x04", "a truncated or otherwise not a valid zip archive",
     "download or copy it again"),
    (b"PK\x05\x06", "an empty or not a valid zip archive", "download or copy it again"),
    (b"PAR1", "a Parquet file", "pass format='parquet' or name it *.parquet"),
)


def sniff_binary(src: Source, encoding: str = "utf-8") -> None:
    """Raise ValueError saying what ``src`` is if its first bytes show it is not text.

    Recognises compressed files (gzip, bzip2, xz, zstd, 7-Zip), zip archives
    that ``zipfile`` cannot open (truncated, or a non-zip named ``.zip``),
    Parquet, and any file with a NUL byte in its first 4 KiB (binary data,
    ``/dev/zero``). UTF-16/32 text (which has NUL bytes) is named as such.
    """
    with src.open() as f:
        head = f.read(4096)
    for magic, what, todo in _MAGIC:
        if head.startswith(magic):
            raise ValueError(f"{src.name}: this is {what}, not a text ratings file; {todo}")
    if src.filename.lower().endswith(".zip"):
        raise ValueError(f"{src.name}: named .zip but not a valid zip archive (no zip signature)")
    wide = encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32", "utf16", "utf32"))
    if b"\x00" in head and not wide:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ValueError(f"{src.name}: UTF-16/32 text; pass encoding='utf-16' (or 'utf-32')")
        raise ValueError(
            f"{src.name}: binary data (NUL bytes in the first {len(head):,} bytes), "
            f"not a text ratings file"
        )
