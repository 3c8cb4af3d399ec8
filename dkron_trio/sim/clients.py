"""Simulated key-value clients: each runs one operation at a time against some server and
records calls and outcomes in a history for the linearizability checker.

A client talks to the leader it last heard of (or a random server), waits up to a timeout, and
moves on. Outcomes: OK with the server's answer; FAIL when the server says it certainly did
nothing (not the leader, proposal dropped, overwritten in the log, server down); a write that
times out is UNKNOWN, a read that times out is FAIL (it had no effect either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from dkron_trio.sim.kv import KvInput, KvOp, KvOutput
from dkron_trio.sim.kv_machine import KvCommand
from dkron_trio.sim.linearizability import HistoryRecorder, Operation
from dkron_trio.sim.loop import Action
from dkron_trio.sim.network import SimRng


class KvServer(Protocol):
    def submit_write(self, handle: int, command: KvCommand, now: int) -> int:
        """Start a write; returns the leader the server knows (0 if none)."""
        ...

    def submit_read(self, handle: int, key: str, ctx: bytes, now: int) -> int:
        """Start a linearizable read; returns the leader the server knows (0 if none)."""
        ...


@attrs.frozen
class ClientConfig:
    count: int = 3
    keys: tuple[str, ...] = ("a", "b", "c")
    timeout_ms: int = 2_000
    think_min_ms: int = 50
    think_max_ms: int = 1_500

    def __attrs_post_init__(self) -> None:
        if self.count < 0 or not self.keys:
            raise ValueError("clients: need count >= 0 and at least one key")
        if not 0 < self.think_min_ms <= self.think_max_ms or self.timeout_ms <= 0:
            raise ValueError("clients: need 0 < think_min_ms <= think_max_ms, timeout_ms > 0")


@attrs.define
class _Call:
    client: int
    write: bool


@attrs.define
class KvClients:
    """The workload. `complete` is the servers' completion callback."""

    _rng: SimRng
    _config: ClientConfig
    _servers: Sequence[int]
    """Ids clients may pick from (grows when nodes are added)."""
    _server: Callable[[int], KvServer | None]
    _schedule: Callable[[int, Action], None]
    _flush: Callable[[int], None]
    _recorder: HistoryRecorder[KvInput, KvOutput] = attrs.field(factory=HistoryRecorder)
    _outstanding: dict[int, _Call] = attrs.field(factory=dict)
    _seq: int = 0
    _leader_hint: int = 0
    _observed: list[str] = attrs.field(factory=list)
    _succeeded: set[int] = attrs.field(factory=set)
    _running: bool = True

    def start(self, now: int) -> None:
        for client in range(1, self._config.count + 1):
            self._schedule(now + self._think(), self._next_op(client))

    def stop(self) -> None:
        """Issue no further operations (outstanding ones still complete or time out)."""
        self._running = False

    def history(self) -> tuple[Operation[KvInput, KvOutput], ...]:
        return self._recorder.history()

    @property
    def completed_ok(self) -> int:
        return len(self._succeeded)

    def succeeded(self, handle: int) -> bool:
        return handle in self._succeeded

    def complete(self, handle: int, output: KvOutput | None, now: int) -> None:
        call = self._outstanding.pop(handle, None)
        if call is None:
            return
        if output is None:
            self._recorder.fail(handle)
        else:
            self._succeeded.add(handle)
            self._recorder.ok(handle, output, now)
            if output.value is not None:
                self._observed.append(output.value)
        if call.client:
            self._schedule(now + self._think(), self._next_op(call.client))

    def write(self, client: int, target: int, op_input: KvInput, now: int) -> int:
        """Issue one write from `client` to server `target`; returns its handle."""
        self._seq += 1
        handle = self._recorder.invoke(client, op_input, now)
        self._outstanding[handle] = _Call(client, write=True)
        self._schedule(now + self._config.timeout_ms, self._timeout(handle))
        server = self._server(target)
        if server is None:
            self.complete(handle, None, now)
            return handle
        hint = server.submit_write(handle, KvCommand(client, self._seq, op_input), now)
        self._flush(target)
        self._leader_hint = hint or self._leader_hint
        return handle

    def is_outstanding(self, handle: int) -> bool:
        return handle in self._outstanding

    def _read(self, client: int, target: int, key: str, now: int) -> None:
        self._seq += 1
        handle = self._recorder.invoke(client, KvInput(KvOp.GET, key), now)
        self._outstanding[handle] = _Call(client, write=False)
        self._schedule(now + self._config.timeout_ms, self._timeout(handle))
        server = self._server(target)
        if server is None:
            self.complete(handle, None, now)
            return
        ctx = b"%d.%d" % (client, self._seq)
        self._leader_hint = server.submit_read(handle, key, ctx, now) or self._leader_hint
        self._flush(target)

    def _next_op(self, client: int) -> Action:
        def run(now: int) -> None:
            if not self._running:
                return
            target = self._pick_target()
            key = self._config.keys[self._rng.randrange(0, len(self._config.keys))]
            roll = self._rng.randrange(0, 100)
            if roll < 40:
                self._read(client, target, key, now)
                return
            value = f"{client}.{self._seq + 1}"
            if roll < 75:
                op_input = KvInput(KvOp.PUT, key, value)
            elif roll < 90:
                op_input = KvInput(KvOp.CAS, key, value, self._guess())
            else:
                op_input = KvInput(KvOp.DELETE, key)
            self.write(client, target, op_input, now)

        return run

    def _timeout(self, handle: int) -> Action:
        def run(now: int) -> None:
            call = self._outstanding.pop(handle, None)
            if call is None:
                return
            if call.write:
                self._recorder.unknown(handle)
            else:
                self._recorder.fail(handle)
            if call.client:
                self._schedule(now + self._think(), self._next_op(call.client))

        return run

    def _pick_target(self) -> int:
        if self._leader_hint and self._rng.random() < 0.8:
            return self._leader_hint
        return self._servers[self._rng.randrange(0, len(self._servers))]

    def _guess(self) -> str | None:
        """A CAS expectation likely to match: a recently observed value, or absent."""
        if not self._observed or self._rng.random() < 0.2:
            return None
        recent = self._observed[-5:]
        return recent[self._rng.randrange(0, len(recent))]

    def _think(self) -> int:
        return self._rng.randrange(self._config.think_min_ms, self._config.think_max_ms + 1)
