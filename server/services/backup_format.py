"""The encrypted backup object: a stream sealed as a sequence of Fernet tokens.

A Fernet token encrypts and authenticates one whole message, so a graph's
export is cut into chunks of at most ``chunk_bytes`` (1 MiB by default) and
each chunk becomes one token. The object is::

    MAGIC                      b"graphgate-backup/1\\n"
    frame*                     length (4 bytes, big-endian) + Fernet token (ASCII)

and each token's plaintext is a 41-byte header, then the chunk::

    graph id (16) | backup id (16) | frame index (8, big-endian) | flags (1: 1 = last)

Memory stays bounded by one frame (about 5 times ``chunk_bytes`` while a token
is built or read: the chunk, its padded ciphertext and its base64), whatever
the graph's size; the object is about 4/3 of the plaintext (base64) plus
about 80 bytes per frame.

Security: Fernet authenticates each frame (AES-128-CBC with HMAC-SHA256), but
not the order or number of frames. The header inside the encrypted plaintext
binds every frame to its graph, its backup and its position, and the last
frame says it is the last: a frame reordered, dropped, repeated, spliced in
from another backup or graph, or cut off at the end fails here, before the
caller sees the data, even if the SHA-256 kept in PostgreSQL were changed
too. A frame length is checked
against the largest possible token before anything is allocated. Readers
accept tokens under any key of the :class:`~cryptography.fernet.MultiFernet`;
writers always use its first (newest) key.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cryptography.fernet import InvalidToken, MultiFernet

MAGIC = b"graphgate-backup/1\n"
DEFAULT_CHUNK_BYTES = 1024 * 1024
#: The largest chunk any writer may use; readers refuse longer frames unread.
MAX_CHUNK_BYTES = 16 * 1024 * 1024

_HEADER = struct.Struct(">32sQB")
_LENGTH = struct.Struct(">I")
_LAST = 1


class BrokenSeal(Exception):
    """The object is not an intact backup of this id under our keys (the reason says why)."""


class Writable(Protocol):
    """Where plaintext goes: a file, or another :class:`Sealer`."""

    def write(self, data: bytes, /) -> int:
        """Take ``data``; returns its length."""
        ...


@dataclass(frozen=True, slots=True)
class Sealed:
    """What a sealing wrote: the object's size and the plaintext's SHA-256 (hex)."""

    size_bytes: int
    sha256: str


def binding(graph_id: uuid.UUID, backup_id: uuid.UUID) -> bytes:
    """The 32 bytes every frame of one backup carries: its graph's and its own id."""
    return graph_id.bytes + backup_id.bytes


def max_token_bytes(chunk_bytes: int) -> int:
    """The length of the Fernet token of a full frame of ``chunk_bytes``."""
    plaintext = _HEADER.size + chunk_bytes
    ciphertext = (plaintext // 16 + 1) * 16  # PKCS7 always pads
    raw = 1 + 8 + 16 + ciphertext + 32  # version, timestamp, IV, ciphertext, HMAC
    return 4 * -(-raw // 3)


class Sealer:
    """Encrypts the bytes written to it into frames on ``out``; :meth:`finish` ends the object.

    Plain ``write`` calls, so it can be the file object of a streaming
    ``tarfile``. Not thread-safe. Raises what ``out.write`` raises.
    """

    def __init__(
        self,
        out: BinaryIO,
        fernet: MultiFernet,
        owner: bytes,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be from 1 to {MAX_CHUNK_BYTES}")
        if len(owner) != 32:
            raise ValueError("owner must be the 32 bytes of binding()")
        self._out = out
        self._fernet = fernet
        self._owner = owner
        self._chunk = chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._digest = hashlib.sha256()
        self._size = out.write(MAGIC)

    def write(self, data: bytes, /) -> int:
        """Take plaintext; full chunks are encrypted and written at once."""
        self._digest.update(data)
        self._buffer += data
        # Strictly more than a chunk: the last frame is never empty unless all is.
        while len(self._buffer) > self._chunk:
            chunk = bytes(self._buffer[: self._chunk])
            del self._buffer[: self._chunk]
            self._frame(chunk, last=False)
        return len(data)

    def finish(self) -> Sealed:
        """Write the last frame; returns the object's size and the plaintext's digest."""
        self._frame(bytes(self._buffer), last=True)
        self._buffer.clear()
        return Sealed(self._size, self._digest.hexdigest())

    def _frame(self, chunk: bytes, *, last: bool) -> None:
        header = _HEADER.pack(self._owner, self._index, _LAST if last else 0)
        token = self._fernet.encrypt(header + chunk)
        self._size += self._out.write(_LENGTH.pack(len(token)) + token)
        self._index += 1


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise BrokenSeal("truncated")
    return data


def unseal(source: BinaryIO, out: Writable, fernet: MultiFernet, owner: bytes) -> str:
    """Decrypt and check every frame of ``source``, writing the plaintext to ``out``.

    Returns the plaintext's SHA-256 (hex) for the caller to compare with the
    recorded one. Raises :class:`BrokenSeal` on anything but an intact,
    complete backup of ``owner`` (see :func:`binding`) under one of
    ``fernet``'s keys; ``out`` then holds a prefix the caller must discard.
    Memory: one frame.
    """
    if source.read(len(MAGIC)) != MAGIC:
        raise BrokenSeal("not a graphgate backup object")
    limit = max_token_bytes(MAX_CHUNK_BYTES)
    digest = hashlib.sha256()
    index = 0
    while True:
        (length,) = _LENGTH.unpack(_read_exactly(source, _LENGTH.size))
        if not 0 < length <= limit:
            raise BrokenSeal("frame length out of range")
        try:
            plaintext = fernet.decrypt(_read_exactly(source, length))
        except InvalidToken:
            raise BrokenSeal("frame fails authentication under every key") from None
        if len(plaintext) < _HEADER.size:
            raise BrokenSeal("frame header missing")
        bound, position, flags = _HEADER.unpack_from(plaintext)
        if bound != owner or position != index or flags not in (0, _LAST):
            raise BrokenSeal("frame of another backup or out of order")
        chunk = plaintext[_HEADER.size :]
        digest.update(chunk)
        out.write(chunk)
        index += 1
        if flags == _LAST:
            break
    if source.read(1):
        raise BrokenSeal("data after the last frame")
    return digest.hexdigest()
