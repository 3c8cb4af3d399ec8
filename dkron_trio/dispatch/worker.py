"""Worker: runs the attempts servers order on this node (every node has one, servers too).

An order is accepted once: it is journalled (fsync'd) before the process starts, and a
repeat of it (a new leader taking over, a retried RPC) gets the attempt's current record
instead of a second process. The process waits for its tick: the leader orders a tick it
planned ahead as soon as the plan is stored, so the order's trip and the journal's fsync
are not part of the run's lateness. Orders from a term older than the highest one answered
are refused, so a deposed leader's late order cannot start anything. Output is streamed to
the ordering server as it comes; the outcome is reported to it, or to any server if it is
gone, until one takes it (the report is committed through Raft wherever it lands). After a
crash, attempts the journal shows unfinished are reported `lost`.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import attrs
import msgpack
import trio

from dkron_trio import alarm
from dkron_trio.clock import WallClock
from dkron_trio.coalesce import Coalescer, FlushInterrupted
from dkron_trio.config import HostPort, parse_host_port
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.job_cache import JobCache
from dkron_trio.dispatch.journal import Journal
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.due_queue import HANDOFF, DueQueue
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.executors.base import ExecutionRequest, Executor
from dkron_trio.executors.output import OutputBuffer
from dkron_trio.executors.registry import get_executor
from dkron_trio.logs import get_logger
from dkron_trio.rpc.errors import RpcError
from dkron_trio.rpc.server import RpcServer
from dkron_trio.run_records import outcome, started_now
from dkron_trio.runs import execution_slots

log = get_logger(__name__)

_REPORT_RETRY = 1.0
"""Seconds between rounds of report attempts while no server takes a report."""
_REPORT_TIMEOUT = 10.0
_REPORT_SKIP = 10.0
"""Seconds a server whose last batch of reports failed is passed over (then for as long as
gossip does not see it alive): a batch to a dead server takes up to `_REPORT_TIMEOUT` to
fail, and the reports queued behind it (every run the dead leader ordered) would each wait
for their own."""
_REPORT_BATCH_COUNT = 512
"""Most reports in one batch. 1,085 short ones (as the weight allows) measured a later start
of runs at 10,000 jobs (p50 2.1-2.7 s against 1.5-1.9 s): larger log entries hold the Raft
driver longer per apply."""
_REPORT_BATCH_BYTES = 512 * 1024
"""Most bytes in one batch of reports (`_report_weight`, an upper bound of each report's
encoded size): the server commits a batch as one log entry, and an entry holds at most
`MAX_COMMAND_BYTES` (1 MiB)."""
_REPORT_FIXED_BYTES = 320
"""A report's encoded size beyond its strings (times, numbers and field names: 253 bytes at
most). Not more: one batch is in flight per server, so a batch's count bounds the reports
a second a worker delivers; at 1,024 the weight held a batch of short reports to about
430, fewer than a worker ran in the second a loaded cluster's commit took."""


class StaleOrder(Exception):
    """An order from a leader of an older term than one this worker already obeyed."""


@attrs.define(eq=False)
class _Attempt:
    execution: Execution
    scope: trio.CancelScope
    output: OutputBuffer
    held: wire.Order | None = None
    """While it waits for its tick in `Worker._due`: the order to run."""


@attrs.define(eq=False)
class Worker:
    """Create, `register` on the node's RPC server, then `await nursery.start(worker.run)`."""

    _node_name: str
    _journal: Journal
    _clock: WallClock
    _pool: PeerPool
    _servers: Callable[[], list[HostPort]]
    """RPC addresses of the servers gossip knows alive (where reports may go)."""
    _executors: Callable[[str], Executor] = get_executor
    _max_concurrent: int = 0
    """Executions running at once here (`max-concurrent-executions`; 0 = no limit)."""
    _jobs: JobCache = attrs.Factory(JobCache)
    """Jobs of recent orders, decoded."""
    _slots: AbstractAsyncContextManager[object] = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: execution_slots(self._max_concurrent), takes_self=True),
    )
    _highest_term: int = attrs.field(init=False, default=0)
    _running: dict[str, _Attempt] = attrs.field(init=False, factory=dict)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _reporters: dict[HostPort, Coalescer[Execution, None]] = attrs.field(init=False, factory=dict)
    _report_failed: dict[HostPort, float] = attrs.field(init=False, factory=dict)
    """When each server's last batch of reports failed (`_REPORT_SKIP`)."""
    _due: DueQueue[_Attempt] = attrs.field(init=False)
    """Attempts ordered ahead of their tick, until it comes."""

    @_due.default
    def _due_queue(self) -> DueQueue[_Attempt]:
        return DueQueue(self._clock, self._release, HANDOFF)

    def register(self, rpc: RpcServer) -> None:
        rpc.on_request(wire.RUN, self._on_run)
        rpc.on_request(wire.CANCEL, self._on_cancel)
        rpc.on_request(wire.STATUS, self._on_status)

    def running(self) -> list[Execution]:
        return [attrs.evolve(a.execution, output=a.output.text()) for a in self._running.values()]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for execution in await self._journal.unfinished():
                lost = attrs.evolve(
                    execution,
                    finished_at=self._clock.now(),
                    status=ExecutionStatus.LOST,
                    output=execution.output + "\nexecution lost: the node restarted while it ran",
                )
                await self._journal.finish(lost)
                log.info("execution lost", job=lost.job_name, execution=lost.id)
                nursery.start_soon(self._report, lost, None)
            nursery.start_soon(self._due.run)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:  # they end cancelled, as if they had waited
                for attempt in self._due.held():
                    attempt.scope.cancel()
                    self._release(attempt)

    # -- handlers -------------------------------------------------------------------------------

    async def _on_run(self, body: bytes) -> bytes:
        """Orders come in batches; each is answered on its own (accepted or refused), and
        the new ones are journalled together, in one transaction, before any starts."""
        orders = wire.decode_orders(body, self._jobs.job)
        answers: list[wire.OrderRefused | None] = []
        fresh: list[wire.Order] = []
        for order in orders:
            try:
                self._check(order)
            except (StaleOrder, ValueError) as exc:
                answers.append(wire.OrderRefused(str(exc)))
                continue
            answers.append(None)
            fresh.append(order)
        accepted = await self._journal.accept_all([o.execution for o in fresh])
        for order, new in zip(fresh, accepted, strict=True):
            if new:  # a repeat (a new leader, a retried RPC) runs on as it is
                self._start(order)
        return wire.encode_answers(answers)

    def _check(self, order: wire.Order) -> None:
        if order.term < self._highest_term:
            raise StaleOrder(f"order of term {order.term} after term {self._highest_term}")
        self._highest_term = order.term
        execution = order.execution
        if execution.node_name != self._node_name:
            raise ValueError(f"execution {execution.id} is for node {execution.node_name!r}")

    def _start(self, order: wire.Order) -> None:
        """Run an accepted order; one ahead of its tick waits for it in `_due`."""
        attempt = _Attempt(order.execution, trio.CancelScope(), OutputBuffer(), held=order)
        self._running[order.execution.id] = attempt
        tick = order.execution.scheduled_at
        if tick is not None and tick > self._clock.now():
            self._due.add(tick, attempt)
        else:
            self._release(attempt)

    def _release(self, attempt: _Attempt) -> None:
        """Start a held attempt: its tick has come, or it was cancelled (it ends at once)."""
        order = attempt.held
        if order is None:  # released already
            return
        attempt.held = None
        assert self._nursery is not None
        self._nursery.start_soon(self._execute, order, attempt)

    async def _on_cancel(self, body: bytes) -> bytes:
        execution_id = msgpack.unpackb(body, raw=False)  # `wire.encode_cancel`
        attempt = self._running.get(execution_id) if isinstance(execution_id, str) else None
        if attempt is not None:
            attempt.scope.cancel()
            self._release(attempt)
        reply: bytes = msgpack.packb(attempt is not None)
        return reply

    async def _on_status(self, body: bytes) -> bytes:
        ids = wire.decode_ids(body)
        journalled = await self._journal.get_many([i for i in ids if i not in self._running])
        statuses = [
            self._running[i].execution if i in self._running else journalled.get(i) for i in ids
        ]
        return wire.encode_statuses(statuses)

    # -- running --------------------------------------------------------------------------------

    async def _execute(self, order: wire.Order, attempt: _Attempt) -> None:
        job, execution = order.job, attempt.execution
        reply_to = parse_host_port(order.reply_to)

        def on_output(chunk: bytes) -> None:
            attempt.output.append(chunk)
            self._pool.send_nowait(reply_to, wire.OUTPUT, wire.encode_output(execution.id, chunk))

        request = ExecutionRequest(
            job_name=job.name,
            execution_id=execution.id,
            scheduled_at=execution.scheduled_at or execution.started_at,
            attempt=execution.attempt,
            fence=execution.fence,
            executor_config=dict(job.executor_config),
            timeout=job.timeout,
        )
        result = None
        try:
            with attempt.scope:
                tick = execution.scheduled_at
                if tick is not None and tick > self._clock.now():
                    await alarm.sleep_until(self._clock.deadline(tick))
                await trio.lowlevel.checkpoint_if_cancelled()  # cancelled before its tick
                log.debug(  # the finish line carries the outcome: one info line a run
                    "execution started", job=job.name, execution=execution.id, fence=execution.fence
                )
                async with self._slots:
                    execution = attempt.execution = started_now(execution, self._clock.now())
                    result = await self._executors(job.executor).run(request, on_output)
        finally:
            done = outcome(execution, result, attempt.output, self._clock.now())
            with trio.CancelScope(shield=True):
                await self._journal.finish(done)
            attempt.execution = done
            del self._running[execution.id]
        log.info("execution finished", job=job.name, execution=done.id, status=done.status.value)
        await self._report(done, reply_to)

    async def _report(self, execution: Execution, prefer: HostPort | None) -> None:
        """To ``prefer`` (the server that ordered it), else to any server, until one takes
        it (the other servers are looked up only when ``prefer`` does not, or failed lately)."""
        while True:
            if (
                prefer is not None
                and not self._failing(prefer)
                and await self._offer(prefer, execution)
            ):
                return
            for address in self._servers():
                if address != prefer and await self._offer(address, execution):
                    return
            await trio.sleep(_REPORT_RETRY)

    def _failing(self, address: HostPort) -> bool:
        """Its last batch failed less than `_REPORT_SKIP` ago, or before and gossip does not
        see it alive since."""
        failed = self._report_failed.get(address)
        if failed is None:
            return False
        return trio.current_time() - failed < _REPORT_SKIP or address not in self._servers()

    async def _offer(self, address: HostPort, execution: Execution) -> bool:
        try:
            await self._reporter(address).submit(execution)
        except (RpcError, trio.TooSlowError, FlushInterrupted):
            return False  # logged once for the batch (`_reporter`)
        return True

    def _reporter(self, address: HostPort) -> Coalescer[Execution, None]:
        """Reports to one server travel together: one RPC and one log entry for many."""
        reporter = self._reporters.get(address)
        if reporter is None:

            async def send(executions: list[Execution]) -> list[None]:
                if self._failing(address):  # queued before its failure: elsewhere at once
                    raise RpcError(f"{address} failed a batch of reports lately")
                try:
                    with trio.fail_after(_REPORT_TIMEOUT):
                        body = wire.encode_executions(executions)
                        await self._pool.call(address, wire.REPORT, body)
                except (RpcError, trio.TooSlowError) as exc:
                    self._report_failed[address] = trio.current_time()
                    error = str(exc) or type(exc).__name__
                    log.info(
                        "reports not taken", server=str(address), count=len(executions), error=error
                    )
                    raise
                self._report_failed.pop(address, None)
                return [None] * len(executions)

            reporter = self._reporters[address] = Coalescer(
                send,
                max_batch=_REPORT_BATCH_COUNT,
                weight=_report_weight,
                max_weight=_REPORT_BATCH_BYTES,
            )
        return reporter


def _report_weight(execution: Execution) -> int:
    """Output in UTF-8 bytes (counted in characters, a batch of multi-byte text could
    outgrow a log entry), names at 4 bytes a character at most."""
    strings = len(execution.id) + len(execution.job_name) + len(execution.node_name)
    return len(execution.output.encode()) + 4 * strings + _REPORT_FIXED_BYTES
