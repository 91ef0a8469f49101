"""Byte streams with limits: a bounded reader and streaming decompressors (never a full inflate).

A scanner reads files written by an adversary, so every read is bounded: :class:`Bounded` stops
with :class:`LimitReached` when a stream (a decompressed one above all: a few kilobytes of gzip
may inflate to gigabytes) grows past its budget, and clamps reads to the real size of a file so
a length field that claims terabytes reads only what is there.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import BinaryIO

_CHUNK = 1 << 20


class LimitReached(Exception):
    """A stream went past its scan budget."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class Bounded(io.RawIOBase):
    """A read-only view of ``raw`` that refuses to go past ``limit`` bytes.

    Parameters
    ----------
    raw:
        The underlying binary stream (a file, a decompressor, bytes in memory).
    limit:
        Largest position the stream may reach; reading further raises :class:`LimitReached`.
    size:
        The real size when known: reads are clamped to it silently (a truncated stream then
        reads short, as it would for the real loader).
    cheap_seek:
        Whether ``raw.seek`` is cheap (a file or memory); else forward seeks read and discard
        and backward seeks are served from a small history of the last bytes read.
    """

    _HISTORY = 64

    def __init__(self, raw: BinaryIO, limit: int, *, size: int | None = None, cheap_seek: bool = False) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._size = size
        self._cheap = cheap_seek
        self._pos = raw.tell() if cheap_seek else 0
        self._history = b""
        self._pending = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self._limit - self._pos
        if self._size is not None:
            n = min(n, max(self._size - self._pos, 0))
        if n <= 0:
            return b""
        if self._pos + n > self._limit:
            raise LimitReached(self._limit)
        chunks = [self._pending[:n]]
        self._pending = self._pending[n:]
        got = len(chunks[0])
        while got < n:
            chunk = self._raw.read(n - got if self._cheap else min(n - got, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        self._pos += len(data)
        self._history = (self._history + data)[-self._HISTORY :]
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence == io.SEEK_END:
            if self._size is None:
                raise io.UnsupportedOperation("seek from the end of a stream of unknown size")
            target = self._size + offset
        if target > self._limit:
            raise LimitReached(self._limit)
        if self._cheap:
            self._raw.seek(target)
            self._pending = b""
            self._history = b""
            self._pos = target
        elif target >= self._pos:
            while self._pos < target:
                if not self.read(min(target - self._pos, _CHUNK)):
                    break
        else:
            back = self._pos - target
            if back > len(self._history):
                raise io.UnsupportedOperation("cannot seek that far back in a decompressed stream")
            self._pending = self._history[-back:] + self._pending
            self._history = self._history[:-back]
            self._pos = target
        return self._pos


class _ZlibRaw(io.RawIOBase):
    """A zlib stream (joblib's ``compress=('zlib', n)``, header byte 0x78) decompressed on demand."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._d = zlib.decompressobj()
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._d.eof:
            chunk = self._d.unconsumed_tail or self._raw.read(_CHUNK)
            if not chunk:
                break
            self._buffer = self._d.decompress(chunk, len(buffer))
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


#: Magic bytes of the compressions joblib writes (joblib/compressor.py), plain gzip for .tar.gz.
COMPRESSIONS: dict[str, tuple[bytes, ...]] = {
    "gzip": (b"\x1f\x8b",),
    "bz2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
    "lzma": (b"\x5d\x00\x00",),
}


def compression_of(head: bytes) -> str | None:
    """Which compression ``head`` starts with (``zlib`` checked by its header checksum)."""
    for name, magics in COMPRESSIONS.items():
        if head.startswith(magics):
            return name
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def decompressed(raw: BinaryIO, compression: str, limit: int) -> Bounded:
    """A bounded, streaming view of the decompressed content of ``raw``."""
    inner: BinaryIO
    if compression == "gzip":
        inner = gzip.GzipFile(fileobj=raw, mode="rb")
    elif compression == "bz2":
        inner = bz2.BZ2File(raw, mode="rb")
    elif compression in ("xz", "lzma"):
        inner = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - closed by the caller with raw
    elif compression == "zlib":
        inner = io.BufferedReader(_ZlibRaw(raw))  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown compression {compression!r}")
    return Bounded(inner, limit)
