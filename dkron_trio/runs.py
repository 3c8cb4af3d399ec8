"""The life of a run on one server: attempts, retries, timeouts, cancel, ephemeral, dependents.

A *run* is one tick of a job; each try is an *attempt*; each (attempt, node) an *execution*
(DESIGN.md §5). `RunManager` executes attempts on the local node through the executors and
records every execution in the store: ``running`` when it starts, then its outcome. It tracks
what is running so the scheduler can apply ``forbid``/``replace`` and the API can cancel.
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import trio

from dkron_trio import alarm
from dkron_trio.clock import WallClock
from dkron_trio.dispatch.unreachable import Unreachable
from dkron_trio.due_queue import HANDOFF, DueQueue
from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason, unix_nanos
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, Executor
from dkron_trio.executors.output import OutputBuffer
from dkron_trio.executors.registry import get_executor
from dkron_trio.job import Concurrency, Job
from dkron_trio.logs import get_logger
from dkron_trio.planner import retry_delay, should_retry
from dkron_trio.run_records import StartStamps, new_attempt, outcome, started_now
from dkron_trio.store.base import ClusterUnavailable, JobNotFound, Store
from dkron_trio.targets import Node, select_targets

if TYPE_CHECKING:
    from dkron_trio.dispatch.remote import RemoteRuns

log = get_logger(__name__)

OutputListener = Callable[[str, bytes], None]
"""Called with (execution id, chunk) for every chunk of output as it arrives."""

JobListener = Callable[[str], Awaitable[None]]
"""Told the name of a job that a run changed (an ephemeral job deleted after success)."""

FinishedListener = Callable[[Job, Execution], None]
"""Told of every finished execution once its outcome is stored; must only queue, not block."""

StartedListener = Callable[[Job, Execution], None]
"""Told of every execution as it starts (its running record is stored); must only queue."""


class RunRefused(Exception):
    """A manual run that the job's rules forbid (``forbid`` while running, disabled job)."""


def execution_slots(limit: int) -> AbstractAsyncContextManager[object]:
    """What an execution holds while it runs: a limiter of `limit` (0 = no limit, and no
    limiter's two checkpoints per run)."""
    return trio.CapacityLimiter(limit) if limit else nullcontext()


@attrs.define
class _Active:
    job_name: str
    execution: Execution
    scope: trio.CancelScope
    output: OutputBuffer
    finished: trio.Event = attrs.field(factory=trio.Event)
    """Set once the execution's final state is stored (API followers wait on it)."""
    held: Job | None = None
    """While it waits for its tick in `RunManager._due`: the job to run it with."""

    def waiting(self, now: datetime) -> bool:
        """Planned ahead of its tick and waiting for it (here, or on its worker): nothing
        has started yet."""
        tick = self.execution.scheduled_at
        return tick is not None and tick > now


@attrs.define
class RunManager:
    """Runs attempts locally and records them; see the module docstring."""

    _store: Store
    _clock: WallClock
    _node_name: str
    _node_tags: dict[str, str]
    _executors: Callable[[str], Executor] = get_executor
    _max_concurrent: int = 0
    """Most executions running here at once (`max-concurrent-executions`); 0 = no limit.
    Further runs wait for a slot (their records already say running)."""
    _slots: AbstractAsyncContextManager[object] = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: execution_slots(self._max_concurrent), takes_self=True),
    )
    _nursery: trio.Nursery | None = None
    _active: dict[str, _Active] = attrs.field(factory=dict)
    _running_per_job: dict[str, int] = attrs.field(factory=dict)
    """How many of `_active` belong to each job (asked for every tick: no scan)."""
    _running_per_node: dict[str, int] = attrs.field(factory=dict)
    """How many of `_active` run on each node (target selection, every tick: no scan)."""
    _listeners: list[OutputListener] = attrs.field(factory=list)
    _job_listeners: list[JobListener] = attrs.field(factory=list)
    _finished_listeners: list[FinishedListener] = attrs.field(factory=list)
    _started_listeners: list[StartedListener] = attrs.field(factory=list)
    _inflight: int = 0
    _starts: StartStamps = attrs.field(factory=StartStamps)
    _idle: trio.Event = attrs.field(factory=trio.Event)
    _stopped: bool = False
    _remote: "RemoteRuns | None" = None
    """Runs attempts on other nodes (a server in a cluster); None runs everything here."""
    _nodes: Callable[[], list[tuple[str, dict[str, str]]]] | None = None
    """The nodes gossip sees alive now with their tags, this one included."""
    _due: DueQueue[_Active] = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: DueQueue(self._clock, self._release, HANDOFF), takes_self=True
        ),
    )
    """Runs planned ahead of their tick, until it comes (in a cluster their worker holds
    them: see `_execute_remote`)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery in which every run lives; cancelling it kills running executions.

        A run asked for once it has stopped (a plan whose commit finished during shutdown)
        is not started: its execution stays ``running`` in the store, and the next start
        marks it lost, as after a crash."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._stopped = False
            nursery.start_soon(self._due.run)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:  # before the nursery closes to new arrivals
                self._stopped = True
                for active in self._due.held():  # they end cancelled, as if they had waited
                    self._cancel(active)

    # --- what is running -------------------------------------------------------------------

    def running_count(self, job_name: str) -> int:
        return self._running_per_job.get(job_name, 0)

    def running(self) -> list[Execution]:
        """Running executions with the output they have produced so far."""
        return [attrs.evolve(a.execution, output=a.output.text()) for a in self._active.values()]

    def cancel_job(self, job_name: str) -> int:
        """Cancel every running execution of a job; returns how many were cancelled."""
        hits = [a for a in self._active.values() if a.job_name == job_name]
        for a in hits:
            self._cancel(a)
        return len(hits)

    def cancel_waiting(self, job_name: str) -> int:
        """Cancel the runs of a job that wait for their tick (planned before a delete,
        disable or schedule change); they end ``cancelled`` without starting."""
        now = self._clock.now()
        hits = [a for a in self._active.values() if a.job_name == job_name and a.waiting(now)]
        for a in hits:
            self._cancel(a)
        return len(hits)

    def cancel_execution(self, execution_id: str) -> bool:
        active = self._active.get(execution_id)
        if active is None:
            return False
        self._cancel(active)
        return True

    def _cancel(self, active: _Active) -> None:
        """Cancel a run; one still held for its tick starts now, to end ``cancelled``."""
        active.scope.cancel()
        self._release(active)

    async def cancel_elsewhere(self, execution: Execution) -> bool:
        """Ask the worker of an execution another server ordered to cancel it."""
        if self._remote is None or execution.node_name == self._node_name:
            return False
        return await self._remote.cancel(execution)

    def finished_event(self, execution_id: str) -> trio.Event | None:
        """Set once the execution's final state is stored; None if it is not running here."""
        active = self._active.get(execution_id)
        return None if active is None else active.finished

    def add_job_listener(self, listener: JobListener) -> None:
        self._job_listeners.append(listener)

    def add_finished_listener(self, listener: FinishedListener) -> None:
        """Processors and notifications (notify/service.py) hear of every outcome here."""
        self._finished_listeners.append(listener)

    def add_started_listener(self, listener: StartedListener) -> None:
        """The pre-webhook (notify/service.py) and metrics hear of every start here."""
        self._started_listeners.append(listener)

    def add_output_listener(self, listener: OutputListener) -> None:
        self._listeners.append(listener)

    def remove_output_listener(self, listener: OutputListener) -> None:
        self._listeners.remove(listener)

    async def wait_idle(self) -> None:
        """Wait until no run is in progress, retries included (used for graceful shutdown)."""
        while self._inflight:
            self._idle = trio.Event()
            await self._idle.wait()

    # --- starting runs ---------------------------------------------------------------------

    def plan_attempts(
        self, job: Job, scheduled_at: datetime, candidates: list[Node] | None = None
    ) -> list[Execution]:
        """The running records of a tick's first attempt, one per target node (empty when no
        node matches the job's tags). The scheduler commits them with its plan, then
        `start_planned` each. A tick planned ahead starts at its scheduled time. The
        scheduler passes the `candidates` it took for all the ticks it plans together."""
        nodes = self.candidates() if candidates is None else candidates
        targets = select_targets(job.tags, nodes)
        if not targets:
            return []
        started = self._unique_start(max(self._clock.now(), scheduled_at))
        group = unix_nanos(started)
        return [new_attempt(job.name, scheduled_at, 1, group, started, t.name) for t in targets]

    def _retry_node(self, job: Job, failed: str) -> str:
        """Where the next attempt runs: the same node, or with ``retry_other_node`` another
        one the job's tags allow (the same one if there is no other)."""
        if not job.retry_other_node:
            return failed
        others = [n for n in self.candidates() if n.name != failed]
        chosen = select_targets(job.tags, others)
        return chosen[0].name if chosen else failed

    def _track(self, active: _Active) -> None:
        self._active[active.execution.id] = active
        for tally, key in (
            (self._running_per_job, active.job_name),
            (self._running_per_node, active.execution.node_name),
        ):
            tally[key] = tally.get(key, 0) + 1

    def _untrack(self, active: _Active) -> None:
        del self._active[active.execution.id]
        for tally, key in (
            (self._running_per_job, active.job_name),
            (self._running_per_node, active.execution.node_name),
        ):
            left = tally.pop(key) - 1
            if left:
                tally[key] = left

    def candidates(self) -> list[Node]:
        """The nodes a run may go to, each with how many executions it runs for us now."""
        busy = self._running_per_node
        if self._remote is None or self._nodes is None:
            return [Node(self._node_name, self._node_tags, busy.get(self._node_name, 0))]
        return [Node(name, tags, busy.get(name, 0)) for name, tags in self._nodes()]

    def start_planned(self, job: Job, execution: Execution) -> None:
        """Run an attempt whose running record is already stored (see `plan_attempts`).
        Here, one planned ahead of its tick waits for it in `_due`, counted as running."""
        tick = execution.scheduled_at
        if self._remote is None and tick is not None and tick > self._clock.now():
            self._hold(job, execution, tick)
        else:
            self._spawn(job, tick or execution.started_at, execution)

    def _hold(self, job: Job, execution: Execution, tick: datetime) -> None:
        if self._stopped:
            log.info("run not started: shutting down", job=job.name)
            return
        self._inflight += 1
        active = _Active(job.name, execution, trio.CancelScope(), OutputBuffer(), held=job)
        self._track(active)
        self._due.add(tick, active)

    def _release(self, active: _Active) -> None:
        """Start a held run: its tick has come, or it was cancelled (then it ends at once)."""
        job = active.held
        if job is None:  # not held, or released already
            return
        active.held = None
        assert self._nursery is not None
        tick = active.execution.scheduled_at or active.execution.started_at
        self._nursery.start_soon(self._tracked_run, job, tick, active.execution, active)

    def start_run(self, job: Job, scheduled_at: datetime) -> None:
        """Start a run of ``job`` in the background (manual runs, dependents)."""
        self._spawn(job, scheduled_at, None)

    def _spawn(self, job: Job, scheduled_at: datetime, planned: Execution | None) -> None:
        assert self._nursery is not None, "RunManager.run() must be started first"
        if self._stopped:
            log.info("run not started: shutting down", job=job.name)
            return
        self._inflight += 1
        self._nursery.start_soon(self._tracked_run, job, scheduled_at, planned, None)

    async def _tracked_run(
        self,
        job: Job,
        scheduled_at: datetime,
        planned: Execution | None,
        held: _Active | None,
    ) -> None:
        try:
            await self._run(job, scheduled_at, planned, held)
        except ClusterUnavailable as exc:
            log.warning(
                "run stopped: its records cannot be committed", job=job.name, error=str(exc)
            )
        except JobNotFound:
            log.info("run outcome dropped: job deleted while it ran", job=job.name)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def start_manual_run(self, job: Job, *, force: bool = False) -> None:
        """Start a run now (API ``POST /v1/jobs/{job}``); ``forbid`` holds unless ``force``."""
        if job.disabled and not force:
            raise RunRefused(f"job {job.name} is disabled")
        if job.concurrency is Concurrency.FORBID and self.running_count(job.name) and not force:
            raise RunRefused(f"job {job.name} is running and its concurrency is forbid")
        if job.concurrency is Concurrency.REPLACE:
            self.cancel_job(job.name)
        self.start_run(job, self._clock.now())

    async def _run(
        self,
        job: Job,
        scheduled_at: datetime,
        planned: Execution | None,
        held: _Active | None = None,
    ) -> None:
        """A run's attempts; ``held`` is the first one's record, tracked while it waited."""
        if planned is None:
            attempts = self.plan_attempts(job, scheduled_at)
            if not attempts:
                await self._store.record_missed(
                    MissedTick(
                        job.name,
                        scheduled_at,
                        MissReason.NO_TARGETS,
                        self._clock.now(),
                        f"no node matches tags {dict(job.tags)}",
                    )
                )
                log.info("no target nodes", job=job.name, tags=dict(job.tags))
                return
            for attempt in attempts:
                await self._store.put_execution(attempt)
            for other in attempts[1:]:
                self._spawn(job, scheduled_at, other)
            planned = attempts[0]
        execution = await self._execute(job, planned, held)
        while execution.status is not ExecutionStatus.CANCELLED and should_retry(
            job, execution.attempt, execution.success
        ):
            await trio.sleep(retry_delay(job, execution.attempt).total_seconds())
            try:
                job = await self._store.get_job(job.name)
            except JobNotFound:
                return
            retry = new_attempt(
                job.name,
                scheduled_at,
                execution.attempt + 1,
                execution.group,
                self._unique_start(),
                self._retry_node(job, execution.node_name),
            )
            await self._store.put_execution(retry)
            execution = await self._execute(job, retry)
        if execution.success:
            await self._after_success(job)

    async def _after_success(self, job: Job) -> None:
        try:
            job = await self._store.get_job(job.name)  # children may have changed meanwhile
        except JobNotFound:
            return
        if job.ephemeral:
            try:
                await self._store.delete_job(job.name)
            except JobNotFound:
                return
            log.info("ephemeral job deleted", job=job.name)
            for listener in self._job_listeners:
                await listener(job.name)
            return
        for child_name in job.dependent_jobs:
            try:
                child = await self._store.get_job(child_name)
            except JobNotFound:
                continue
            if child.disabled:
                continue
            if child.concurrency is Concurrency.FORBID and self.running_count(child.name):
                await self._store.record_missed(
                    MissedTick(child.name, self._clock.now(), MissReason.OVERLAP, self._clock.now())
                )
                continue
            self.start_run(child, self._clock.now())

    def _unique_start(self, at: datetime | None = None) -> datetime:
        """``at`` (default now), unique among recent starts (`StartStamps`)."""
        now = self._clock.now()
        return self._starts.stamp(now if at is None else at, now)

    async def _execute(
        self, job: Job, execution: Execution, held: _Active | None = None
    ) -> Execution:
        """Run one stored, running execution to its outcome and record that outcome. In a
        cluster every attempt goes through its node's worker, this server's own included:
        the worker's journal is what tells a later leader that an attempt was received, so
        none runs twice across a change of leader. Without one it runs here directly."""
        if self._remote is not None:
            return await self._execute_remote(job, execution, self._remote)
        if held is None:
            active = _Active(job.name, execution, trio.CancelScope(), OutputBuffer())
            self._track(active)
        else:
            active = held
        output = active.output

        def on_output(chunk: bytes) -> None:
            output.append(chunk)
            for listener in list(self._listeners):
                listener(execution.id, chunk)

        request = ExecutionRequest(
            job_name=job.name,
            execution_id=execution.id,
            scheduled_at=execution.scheduled_at or execution.started_at,
            attempt=execution.attempt,
            fence=execution.fence,
            executor_config=dict(job.executor_config),
            timeout=job.timeout,
        )
        result: ExecutionResult | None = None
        try:
            with active.scope:
                await self._until_due(execution)
                await trio.lowlevel.checkpoint_if_cancelled()  # cancelled before its tick
                async with self._slots:
                    execution = active.execution = started_now(execution, self._clock.now())
                    for listener in self._started_listeners:
                        listener(job, execution)
                    log.debug(  # the finish line carries the outcome: one info line a run
                        "execution started",
                        job=job.name,
                        execution=execution.id,
                        attempt=execution.attempt,
                    )
                    result = await self._executors(job.executor).run(request, on_output)
            done = outcome(execution, result, output, self._clock.now())
            with trio.CancelScope(shield=True):  # an outcome is recorded even at shutdown
                await self._store.put_execution(done)
        finally:
            self._untrack(active)
        active.finished.set()
        for finished in self._finished_listeners:
            finished(job, done)
        began = done.started_at
        log.info(
            "execution finished",
            job=job.name,
            execution=execution.id,
            status=done.status.value,
            seconds=round(((done.finished_at or began) - began).total_seconds(), 3),
        )
        return done

    async def _execute_remote(
        self, job: Job, execution: Execution, remote: "RemoteRuns", *, taking_over: bool = False
    ) -> Execution:
        output = OutputBuffer()
        active = _Active(job.name, execution, trio.CancelScope(), output)
        self._track(active)

        def on_output(chunk: bytes) -> None:
            output.append(chunk)
            for listener in list(self._listeners):
                listener(execution.id, chunk)

        done: Execution | None = None
        try:
            with active.scope:
                if taking_over:
                    done = await self._resume_remote(job, execution, remote, on_output)
                else:  # ordered at once: the worker holds it until its tick
                    for listener in self._started_listeners:
                        listener(job, execution)
                    done = await remote.run(job, execution, on_output)
            if done is None:
                done = outcome(execution, None, output, self._clock.now())
                with trio.CancelScope(shield=True):
                    await self._store.put_execution(done)
        finally:
            self._untrack(active)
        active.finished.set()
        for finished in self._finished_listeners:
            finished(job, done)
        return done

    async def take_over(self, execution: Execution, job: Job) -> None:
        """A new leader's answer to an execution the store shows running (DESIGN.md §5, the
        run protocol, step 4). Running here: keep it. Without a cluster, not running here
        (this server restarted): lost. Otherwise ask its node's worker (this server's own
        too) — finished there: record the outcome; running, or the worker unreachable for
        now: wait for it (the lease decides); never received: order it now, from the same
        plan, to the same node."""
        if execution.id in self._active:
            return
        if self._remote is None:
            lost = attrs.evolve(
                execution,
                finished_at=self._clock.now(),
                status=ExecutionStatus.LOST,
                output=execution.output + "\nexecution lost: the server restarted while it ran",
            )
            try:
                await self._store.put_execution(lost)
            except JobNotFound:  # deleted meanwhile, its executions with it
                return
            log.info("execution lost", job=execution.job_name, execution=execution.id)
            return
        log.debug(  # one a run, thousands at once on a loaded cluster: the scheduler counts
            "execution taken over", job=job.name, execution=execution.id, node=execution.node_name
        )
        self._spawn_execution(job, execution)

    def _spawn_execution(self, job: Job, execution: Execution) -> None:
        """Take over a remote execution in the background: it counts as running (for
        ``forbid``) at once, while its worker is asked about it."""
        assert self._nursery is not None, "RunManager.run() must be started first"
        self._inflight += 1

        async def tracked() -> None:
            try:
                assert self._remote is not None
                await self._execute_remote(job, execution, self._remote, taking_over=True)
            except ClusterUnavailable as exc:
                log.warning("take-over stopped", job=job.name, error=str(exc))
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()

        self._nursery.start_soon(tracked)

    async def _resume_remote(
        self,
        job: Job,
        execution: Execution,
        remote: "RemoteRuns",
        on_output: Callable[[bytes], None],
    ) -> Execution:
        """Ask the worker: finished there → record it; never received → order it now (the
        worker holds it until its tick, if planned ahead of it); running or unreachable →
        wait for its outcome (the lease decides)."""
        try:
            seen = await remote.status(execution)
        except Unreachable:
            seen = execution
        if seen is None:
            return await remote.run(job, execution, on_output)
        if seen.status.finished:
            await self._store.put_execution(seen)
            return seen
        return await remote.adopt(execution, on_output)

    async def _until_due(self, execution: Execution) -> None:
        """Hold a run planned ahead of its tick until the tick (no wait for any other)."""
        due = execution.scheduled_at
        if due is not None and due > self._clock.now():
            await alarm.sleep_until(self._clock.deadline(due))

    def feed_output(self, execution_id: str, chunk: bytes) -> None:
        """Output a worker streamed here for an execution this server ordered."""
        if self._remote is not None:
            self._remote.output(execution_id, chunk)
