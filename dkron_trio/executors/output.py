"""A capped output buffer: keeps only the tail, so a chatty job cannot grow the agent's memory."""

import attrs

from dkron_trio.executors.config import OUTPUT_LIMIT_BYTES


@attrs.define
class OutputBuffer:
    """The last `limit` bytes written; the head is dropped as more arrives."""

    _limit: int = OUTPUT_LIMIT_BYTES
    _data: bytearray = attrs.field(factory=bytearray)
    _total: int = 0

    def append(self, chunk: bytes) -> None:
        """Add a chunk; never holds more than `limit` bytes afterwards."""
        self._total += len(chunk)
        if len(chunk) >= self._limit:
            self._data[:] = chunk[len(chunk) - self._limit :]
            return
        self._data += chunk
        excess = len(self._data) - self._limit
        if excess > 0:
            del self._data[:excess]

    @property
    def total_bytes(self) -> int:
        """How many bytes were appended in all, kept or not."""
        return self._total

    @property
    def truncated(self) -> bool:
        """Whether the head of the output was dropped."""
        return self._total > len(self._data)

    def tail(self) -> bytes:
        """The kept bytes."""
        return bytes(self._data)

    def text(self, error: str = "") -> str:
        """The kept output as text (UTF-8, bad bytes replaced), with `error` as its first line.

        Like Dkron the error comes first; unlike Dkron it is never cut off: the output's head
        gives way so the whole stays within the limit.
        """
        if not error:
            return self._data.decode("utf-8", errors="replace")
        head = (error + "\n").encode("utf-8")[: self._limit]
        room = self._limit - len(head)
        body = self._data[max(0, len(self._data) - room) :] if room else b""
        return (head + body).decode("utf-8", errors="replace")
