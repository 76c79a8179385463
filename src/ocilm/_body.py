"""A request body too large to hold in memory: an upload the gateway passes on to OCI.

``SpooledBody`` keeps the bytes in a spooled temporary file (in memory up to a buffer, on disk past
it) with their length and SHA-256 worked out as they arrive, so an IAM signature (which covers the
body's digest) needs no second pass and no copy. Each attempt of a call reads it again from the
start, in pieces, so a retry sends the same bytes and memory stays bounded by the buffer whatever
the file's size.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import IO

BUFFER_BYTES = 1024 * 1024  # held in memory before the spool moves to disk
PIECE_BYTES = 64 * 1024  # read and sent at a time


class BodyLengthError(ValueError):
    """The body was longer or shorter than the length it announced."""


class SpooledBody:
    """A body of known length and digest, sent in pieces from its spool."""

    __slots__ = ("_file", "length", "sha256")

    def __init__(self, file: IO[bytes], length: int, sha256: str) -> None:
        self._file = file
        self.length = length
        self.sha256 = sha256  # base64 of the SHA-256, as x-content-sha256 carries it

    @classmethod
    async def spool(
        cls, source: AsyncIterable[bytes], length: int, buffer: int = BUFFER_BYTES
    ) -> SpooledBody:
        """Read ``source`` to its end into a spool; ``BodyLengthError`` unless it is exactly ``length`` bytes."""
        import tempfile  # only where something is uploaded: kept out of ``import ocilm``

        file = tempfile.SpooledTemporaryFile(max_size=buffer)  # noqa: SIM115 (closed by the body's owner)
        digest = hashlib.sha256()
        got = 0
        try:
            async for piece in source:
                got += len(piece)
                if got > length:
                    raise BodyLengthError(f"the body is longer than its {length} bytes")
                digest.update(piece)
                file.write(piece)
            if got != length:
                raise BodyLengthError(f"the body ended after {got} of its {length} bytes")
        except BaseException:
            file.close()
            raise
        return cls(file, length, base64.b64encode(digest.digest()).decode("ascii"))

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __iter__(self) -> Iterator[bytes]:
        self._file.seek(0)
        while piece := self._file.read(PIECE_BYTES):
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Page-cache reads of 64 KB: cheaper inline than a thread hop per piece.
        for piece in self:
            yield piece

    def read(self) -> bytes:
        """The whole body (for a caller that must have it in memory: a test, a small body)."""
        return b"".join(self)

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"SpooledBody(length={self.length})"
