"""The replicated state machine of the Raft simulation: a key-value map fed by committed entries.

Commands carry the issuing client and its sequence number, which makes every proposal's bytes
unique: a node can tell whether the entry committed at the index it proposed at is its own.
"""

from __future__ import annotations

import attrs
import msgpack

from dkron_trio.sim.kv import KvInput, KvOp, KvOutput, apply_kv


@attrs.frozen
class KvCommand:
    client: int
    seq: int
    input: KvInput

    def encode(self) -> bytes:
        i = self.input
        packed: bytes = msgpack.packb(
            [self.client, self.seq, i.op.value, i.key, i.value, i.expected]
        )
        return packed

    @classmethod
    def decode(cls, data: bytes) -> KvCommand:
        client, seq, op, key, value, expected = msgpack.unpackb(data)
        return cls(client, seq, KvInput(KvOp(op), key, value, expected))


@attrs.define
class KvStateMachine:
    _data: dict[str, str] = attrs.field(factory=dict)
    _applied: int = 0

    @property
    def applied(self) -> int:
        return self._applied

    def apply(self, index: int, data: bytes) -> KvOutput | None:
        """Apply the entry at `index` (empty data: a no-op); return the command's output."""
        if index != self._applied + 1:
            raise ValueError(f"apply of index {index} after {self._applied}: out of order")
        self._applied = index
        if not data:
            return None
        command = KvCommand.decode(data)
        key = command.input.key
        new, output = apply_kv(self._data.get(key), command.input)
        if new is None:
            self._data.pop(key, None)
        else:
            self._data[key] = new
        return output

    def skip(self, index: int) -> None:
        """An entry that is not a command (a membership change) still advances `applied`."""
        if index != self._applied + 1:
            raise ValueError(f"apply of index {index} after {self._applied}: out of order")
        self._applied = index

    def read(self, key: str) -> str | None:
        return self._data.get(key)

    def snapshot(self) -> bytes:
        packed: bytes = msgpack.packb([self._applied, sorted(self._data.items())])
        return packed

    @classmethod
    def restore(cls, data: bytes, index: int) -> KvStateMachine:
        """The machine a snapshot at `index` describes; empty data is the empty initial state
        of a bootstrapped cluster."""
        if not data:
            return cls(applied=index)
        applied, items = msgpack.unpackb(data)
        if applied != index:
            raise ValueError(f"snapshot at index {index} holds an image of index {applied}")
        return cls(dict(items), applied)

    def fingerprint(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        return self._applied, tuple(sorted(self._data.items()))
