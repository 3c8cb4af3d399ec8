"""The leader's side of running an attempt on another node.

`RemoteRuns.run` orders the attempt from the target's worker and waits for its outcome to be
*committed*: the worker reports to some server, the report goes through Raft, and the commit
applied here wakes the waiter (so it does not matter which server took the report). While
waiting, a target that gossip has not seen alive for the run lease is given up on: the attempt
is recorded `lost`. Output chunks the worker streams here go to the caller's callback.

Reachability is looked at by one task (`watch`) for all the waiting attempts, which it wakes
only when their node is unreachable: thousands of attempts in flight each polling once a
second kept an overloaded leader's event loop busy enough to lose its term.
"""

from collections.abc import Callable

import attrs
import trio

from dkron_trio.clock import WallClock
from dkron_trio.coalesce import Coalescer, FlushInterrupted
from dkron_trio.config import HostPort
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.unreachable import Unreachable
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.job import Job
from dkron_trio.logs import get_logger
from dkron_trio.rpc.errors import RpcError
from dkron_trio.store.base import ExecutionNotFound, JobNotFound, Store

log = get_logger(__name__)

DEFAULT_LEASE = 30.0
"""Seconds a target may stay unreachable before its attempt is recorded lost (DESIGN §5)."""
_CHECK_EVERY = 1.0
_ORDER_TIMEOUT = 5.0
_ORDER_BATCH = 1024
"""Most orders in one RPC to a worker. One RPC is in flight per worker: at 128 a loaded
leader's round trips (about 250 ms) carried barely the 500 orders a second each of two
workers got, and orders queued for seconds behind full batches."""
_ORDER_BATCH_BYTES = 1 << 20
"""Most bytes of orders in one RPC (`order_weight`; an order carries its job)."""
_ORDER_FIXED_BYTES = 512
"""An order's encoded size beyond its job's bytes and its strings (times, numbers, keys)."""
_JOB_BYTES_KEPT = 50_000
_STATUS_BATCH = 512
"""Most status questions in one RPC to a worker."""

NodeAddress = Callable[[str], HostPort | None]
"""The RPC address of a node gossip sees alive now, or None."""


def order_weight(order: wire.Order, job_bytes: bytes) -> int:
    """An upper bound of the order's encoded size: its job's bytes, its strings at 4 bytes
    a character, and the rest."""
    e = order.execution
    strings = len(e.id) + len(e.job_name) + len(e.node_name) + len(e.output)
    strings += len(order.reply_to)
    return len(job_bytes) + 4 * strings + _ORDER_FIXED_BYTES


@attrs.define(eq=False)
class _Waiting:
    node: str
    wake: trio.Event = attrs.Factory(trio.Event)
    """Set when the outcome is committed, or (again every `_CHECK_EVERY`) while the node is
    unreachable."""
    on_output: Callable[[bytes], None] | None = None
    outcome: Execution | None = None
    """The finished record as committed (from the state machine's feed)."""


@attrs.define(eq=False)
class RemoteRuns:
    _pool: PeerPool
    _store: Store
    _clock: WallClock
    _address: NodeAddress
    _term: Callable[[], int]
    _reply_to: str
    _lease: float = DEFAULT_LEASE
    _waiting: dict[str, _Waiting] = attrs.field(init=False, factory=dict)
    _orderers: dict[HostPort, Coalescer[wire.Order, None]] = attrs.field(init=False, factory=dict)
    _askers: dict[HostPort, Coalescer[str, Execution | None]] = attrs.field(
        init=False, factory=dict
    )
    _job_bytes: dict[int, tuple[Job, bytes]] = attrs.field(init=False, factory=dict)
    """Encoded jobs for orders, by the job object's id (a changed job is a new object)."""
    _seen: dict[str, tuple[float, HostPort | None]] = attrs.field(init=False, factory=dict)
    """Where gossip saw each node lately, and when it was asked (`_recent_address`)."""

    def executions_applied(self, executions: list[Execution]) -> None:
        """Told of every execution record committed (the state machine's feed)."""
        for execution in executions:
            waiting = self._waiting.get(execution.id)
            if waiting is not None and execution.status.finished:
                waiting.outcome = execution
                waiting.wake.set()

    def output(self, execution_id: str, chunk: bytes) -> None:
        waiting = self._waiting.get(execution_id)
        if waiting is not None and waiting.on_output is not None:
            waiting.on_output(chunk)

    async def run(
        self, job: Job, execution: Execution, on_output: Callable[[bytes], None]
    ) -> Execution:
        """Order the attempt (unless `adopt`ing one already ordered) and return its committed
        outcome. Cancelled: the worker is told to cancel, and the caller records it."""
        waiting = self._waiting[execution.id] = _Waiting(execution.node_name, on_output=on_output)
        try:
            await self._order(wire.Order(self._term(), job, execution, self._reply_to))
            return await self._outcome(execution, waiting)
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(_ORDER_TIMEOUT):
                await self.cancel(execution)
            raise
        finally:
            del self._waiting[execution.id]

    async def adopt(self, execution: Execution, on_output: Callable[[bytes], None]) -> Execution:
        """Wait for the outcome of an attempt an earlier leader ordered. Its outcome may have
        been committed before the waiter was in place (the feed passed it by): the store
        is read first."""
        waiting = self._waiting[execution.id] = _Waiting(execution.node_name, on_output=on_output)
        try:
            stored = await self._stored(execution)
            if stored is not None and stored.status.finished:
                return stored
            return await self._outcome(execution, waiting)
        finally:
            del self._waiting[execution.id]

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host it while attempts may wait: every `_CHECK_EVERY`, wake the waiting attempts
        whose node is unreachable."""
        task_status.started()
        while True:
            await trio.sleep(_CHECK_EVERY)
            nodes = {waiting.node for waiting in self._waiting.values()}
            down = {node for node in nodes if self._recent_address(node) is None}
            if down:
                for waiting in list(self._waiting.values()):
                    if waiting.node in down:
                        waiting.wake.set()

    async def status(self, execution: Execution) -> Execution | None:
        """The worker's record of the attempt, None if it never got the order; Unreachable
        if the worker cannot be asked now. (A new leader asks about every attempt it takes
        over at once: the questions to one worker travel together.)"""
        address = self._address(execution.node_name)
        if address is None:
            raise Unreachable(execution.node_name)
        asker = self._askers.get(address)
        if asker is None:
            asker = self._askers[address] = Coalescer(
                lambda ids: self._ask(address, ids), max_batch=_STATUS_BATCH
            )
        try:
            return await asker.submit(execution.id)
        except (RpcError, trio.TooSlowError, wire.DispatchWireError, FlushInterrupted) as exc:
            raise Unreachable(f"{execution.node_name}: {exc}") from None

    async def _ask(self, address: HostPort, ids: list[str]) -> list[Execution | None]:
        with trio.fail_after(_ORDER_TIMEOUT):
            reply = await self._pool.call(address, wire.STATUS, wire.encode_ids(ids))
        statuses = wire.decode_statuses(reply)
        if len(statuses) != len(ids):
            raise wire.DispatchWireError(f"{len(statuses)} statuses for {len(ids)} attempts")
        return statuses

    async def cancel(self, execution: Execution) -> bool:
        """Tell the execution's worker to cancel it; whether it was running there."""
        address = self._address(execution.node_name)
        if address is None:
            return False
        try:
            reply = await self._pool.call(address, wire.CANCEL, wire.encode_cancel(execution.id))
        except RpcError as exc:
            log.info("cancel not delivered", execution=execution.id, error=str(exc))
            return False
        return wire.decode_flag(reply)

    async def _order(self, order: wire.Order) -> None:
        """Deliver the order, retrying while the target is unreachable, up to the lease."""
        execution = order.execution
        with trio.move_on_after(self._lease):
            while True:
                address = self._recent_address(execution.node_name)
                if address is not None:
                    try:
                        await self._orderer(address).submit(order)
                    except (
                        RpcError,
                        trio.TooSlowError,
                        wire.DispatchWireError,
                        wire.OrderRefused,
                        FlushInterrupted,
                    ) as exc:
                        log.info("order not delivered", execution=execution.id, error=str(exc))
                    else:
                        return
                await trio.sleep(_CHECK_EVERY)
        log.warning("order never delivered", execution=execution.id, node=execution.node_name)

    def _orderer(self, address: HostPort) -> Coalescer[wire.Order, None]:
        """Orders for one worker travel together (a wake-up of the scheduler starts many)."""
        orderer = self._orderers.get(address)
        if orderer is None:

            async def send(orders: list[wire.Order]) -> list[wire.OrderRefused | None]:
                body = wire.encode_orders(orders, self._encoded_job)
                with trio.fail_after(_ORDER_TIMEOUT):
                    reply = await self._pool.call(address, wire.RUN, body)
                answers = wire.decode_answers(reply)
                if len(answers) != len(orders):
                    raise wire.DispatchWireError(f"{len(answers)} answers to {len(orders)} orders")
                return answers

            orderer = self._orderers[address] = Coalescer(
                send,
                max_batch=_ORDER_BATCH,
                weight=lambda order: order_weight(order, self._encoded_job(order.job)),
                max_weight=_ORDER_BATCH_BYTES,
            )
        return orderer

    def _encoded_job(self, job: Job) -> bytes:
        cached = self._job_bytes.get(id(job))
        if cached is not None and cached[0] is job:
            return cached[1]
        if len(self._job_bytes) >= _JOB_BYTES_KEPT:
            self._job_bytes.clear()
        data = wire.encode_job_for_order(job)
        self._job_bytes[id(job)] = (job, data)
        return data

    def _recent_address(self, node: str) -> HostPort | None:
        """`_address`, asked of gossip at most once per node every `_CHECK_EVERY`: every
        order and every waiting run asks, and one answer serves them all."""
        now = trio.current_time()
        seen = self._seen.get(node)
        if seen is not None and now - seen[0] < _CHECK_EVERY:
            return seen[1]
        address = self._address(node)
        self._seen[node] = (now, address)
        return address

    async def _outcome(self, execution: Execution, waiting: _Waiting) -> Execution:
        """The committed outcome, as the state machine's feed brings it (`executions_applied`).
        Woken while the target is unreachable (`watch`), the store is read too (an outcome
        committed meanwhile), and past the lease the attempt is recorded lost."""
        unreachable_since: float | None = None
        while True:
            await waiting.wake.wait()
            waiting.wake = trio.Event()
            if waiting.outcome is not None:
                return waiting.outcome
            if self._recent_address(execution.node_name) is not None:
                unreachable_since = None
                continue
            stored = await self._stored(execution)
            if stored is not None and stored.status.finished:
                return stored
            now = trio.current_time()
            unreachable_since = unreachable_since if unreachable_since is not None else now
            if now - unreachable_since >= self._lease:
                lost = attrs.evolve(
                    stored or execution,
                    finished_at=self._clock.now(),
                    status=ExecutionStatus.LOST,
                    output=(stored or execution).output
                    + f"\nexecution lost: node {execution.node_name} unreachable for "
                    f"{self._lease:g}s",
                )
                await self._store.put_execution(lost)
                log.warning("execution lost", execution=execution.id, node=execution.node_name)
                return lost

    async def _stored(self, execution: Execution) -> Execution | None:
        try:
            return await self._store.get_execution(execution.job_name, execution.id)
        except (ExecutionNotFound, JobNotFound):
            return None
