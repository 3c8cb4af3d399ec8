"""The leader's scheduler: a heap of next fire times, woken at the earliest one.

It never scans all jobs per tick. At start it loads every job once and pushes each job's next
due time; afterwards only `job_changed` (called by whoever writes a job) touches a job's entry.
Stale heap entries are skipped lazily: the authoritative due time of each job lives in
``_due``. Decisions come from the pure `planner`; this shell does the IO: missed-tick records,
cursors, and starting runs through the `RunManager`.

Ticks are planned `PLAN_AHEAD` before they are due: storing a plan takes a commit (an fsync,
or a Raft round), and a run may only start once its plan is stored, so a plan made when the
tick is due starts its run late by that commit. Ticks up to `PLAN_WINDOW` later are planned
in the same wake-up, so that plans share a write. Planned ahead, the run waits for its tick
instead (`RunManager` holds it until ``scheduled_at``). A job whose decision depends on
what runs at the tick (`may_plan_ahead`) is decided when due. Deleting a job, or changing
what fixes its ticks (schedule, timezone, disabled, ...), cancels its runs still waiting
for their tick; a pause or another update takes effect for the ticks not yet planned.

The scheduler does not wait for a commit before its next decisions: up to `MAX_ROUNDS`
commits are in flight, and a job whose plan is committing is not decided again until that
commit is carried out.
"""

import gc
import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs
import trio

from dkron_trio.chaos.breakage import TEST_BREAK, Break
from dkron_trio.clock import WallClock
from dkron_trio.execution import Execution, MissedTick, MissReason
from dkron_trio.job import Job
from dkron_trio.logs import get_logger
from dkron_trio.planner import JobPlan, initial_cursor, may_plan_ahead, next_due, plan_job
from dkron_trio.runs import RunManager
from dkron_trio.schedule import Schedule
from dkron_trio.store.base import JobNotFound, PlanRecord, PlansRecorded, Store
from dkron_trio.targets import Node

log = get_logger(__name__)

_PLAN_BATCH = 200
"""Plans per log entry (an entry stays far below the largest command, 1 MiB)."""

_LOAD_SLICE = 1000
"""Jobs loaded between two checkpoints when the scheduler starts."""

MAX_DECISIONS = 1000
"""Jobs decided in one wake-up at most; the others due stay queued for the next, which
comes at once. After a held or slow stretch thousands are due together, and starting all
their runs in one go held a leader's loop for over a second; a wake-up plans in one commit
round, so at the 0.5-1 s commits of a loaded cluster this still allows 1,000 runs a second."""

PLAN_AHEAD = timedelta(milliseconds=500)
"""How long before its tick a run is planned. A tick is stored at most two commits after
its decision (the one in flight, then its own); on a loaded machine at 1,000 fires/s the
SQLite store's p99 is about 250 ms, so twice that keeps the runs on time."""

MAX_LAG = 0.2
"""Event-loop lag (`LoopLag`, seconds) above which no new runs are planned: on an
overloaded server the ticks wait, late (their misfire policy decides once planned), rather
than pile more work on a loop that already sends its heartbeats late."""

MAX_ROUNDS = 4
"""Commits of plans in flight at once. Waiting for each commit before deciding again made
every tick decided meanwhile late by that commit: on a loaded cluster (0.5-1 s commits)
the ticks planned in one wake-up were already due when the next wake-up came."""

_CALM_CHECK = 0.1
"""Seconds between two looks at the lag while plans are held."""

PLAN_WINDOW = timedelta(milliseconds=5)
"""How much earlier than `PLAN_AHEAD` a tick may be planned to share a wake-up: ticks
spread evenly (1,000 fires/s, one per millisecond) are then planned 5 at a time, in one
store write (one log entry in a cluster) instead of one each. (25 ms measured a slightly
worse lateness tail on the SQLite store: longer writes hold the interpreter lock.)"""


@attrs.frozen
class _Shape:
    """The parts of a job that fix its tick sequence; a change restarts it from now."""

    schedule: str
    timezone: str
    starts_at: datetime | None
    disabled: bool
    parent_job: str


def _shape(job: Job) -> _Shape:
    return _Shape(job.schedule, job.timezone, job.starts_at, job.disabled, job.parent_job)


@attrs.frozen
class _Decision:
    """A due job's plan and the record that stores it."""

    job: Job
    plan: JobPlan
    record: PlanRecord


@attrs.define
class Scheduler:
    """Leader-only task; see the module docstring."""

    _store: Store
    _runs: RunManager
    _clock: WallClock
    _plan_ahead: timedelta = PLAN_AHEAD
    _plan_window: timedelta = PLAN_WINDOW
    _lag: Callable[[], float] = attrs.field(default=lambda: 0.0)
    """The event loop's lag (`LoopLag.value`); plans wait while it exceeds `_max_lag`."""
    _max_lag: float = MAX_LAG
    _max_decisions: int = MAX_DECISIONS
    _max_rounds: int = MAX_ROUNDS
    _rounds: trio.Semaphore = attrs.field(init=False, factory=lambda: trio.Semaphore(1))
    """Free commit rounds (made anew, `_max_rounds` of them, each term)."""
    _recording: trio.Nursery | None = attrs.field(init=False, default=None)
    """Where the plans of a term commit (`_record`)."""
    _committing: set[str] = attrs.field(init=False, factory=set)
    """Jobs whose plan is being committed: their next tick is enqueued by `_carry_out`."""
    _heap: list[tuple[datetime, int, str, datetime]] = attrs.field(factory=list)
    """(when to decide, sequence, job, due time): the decision comes `_plan_ahead` (up to
    `_plan_window` more) before the tick, or at the tick itself for a job that must be
    decided then."""
    _due: dict[str, datetime] = attrs.field(factory=dict)
    _jobs: dict[str, tuple[Job, Schedule]] = attrs.field(factory=dict)
    _cursors: dict[str, datetime] = attrs.field(factory=dict)
    _seq: int = 0
    _wakeup: trio.Event = attrs.field(factory=trio.Event)
    _paused: bool = False
    _running: bool = False
    _listening: bool = False

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """Pause or resume: while paused every tick is recorded as missed (``paused``)."""
        self._paused = paused

    def next_fire(self, job_name: str) -> datetime | None:
        return self._due.get(job_name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Schedule until cancelled. A server runs it once per term it leads, so each run
        starts from the store afresh and nothing of an earlier term's heap survives."""
        if not self._listening:
            self._runs.add_job_listener(self.job_changed)
            self._listening = True
        self._heap, self._due, self._jobs, self._cursors = [], {}, {}, {}
        self._rounds, self._committing = trio.Semaphore(self._max_rounds), set()
        self._running = True
        try:
            await self._schedule(task_status)
        finally:
            self._running = False

    async def _schedule(self, task_status: trio.TaskStatus[None]) -> None:
        orphans = await self._store.running_executions()
        state = await self._store.schedule_state()
        await self._recover_orphans(orphans, {job.name: job for job, _ in state})
        for position, (job, cursor) in enumerate(state):
            self._cursors[job.name] = cursor or initial_cursor(job)
            self._push(job)
            if position % _LOAD_SLICE == _LOAD_SLICE - 1:
                await trio.lowlevel.checkpoint()  # the API stays responsive while loading
        gc.freeze()  # the loaded jobs live long: keep full collections from walking them
        log.info("scheduler started", jobs=len(self._jobs))
        task_status.started()
        async with trio.open_nursery() as recording:
            self._recording = recording
            while True:
                self._wakeup = trio.Event()
                if self._heap:
                    with trio.move_on_at(self._clock.deadline(self._heap[0][0])):
                        await self._wakeup.wait()
                else:
                    await self._wakeup.wait()
                await self._calm()
                await self._fire_due()

    async def _calm(self) -> None:
        """Wait while the event loop is overloaded (see `MAX_LAG`)."""
        lag = self._lag()
        if lag <= self._max_lag:
            return
        held = trio.current_time()
        log.warning("scheduling held: event loop late", lag=round(lag, 3))
        while True:  # the lag is a measurement, not an event: looked at now and then
            await trio.sleep(_CALM_CHECK)
            if self._lag() <= self._max_lag:
                break
        log.info("scheduling resumed", held=round(trio.current_time() - held, 3))

    async def job_changed(self, name: str) -> None:
        """Re-read one job after a write (create, update, toggle, delete) and reschedule it;
        nothing while the scheduler is not running (a follower)."""
        if not self._running:
            return
        try:
            job = await self._store.get_job(name)
        except JobNotFound:
            self._forget(name)
            self._runs.cancel_waiting(name)
        else:
            previous = self._jobs.get(name)
            if previous is not None and _shape(previous[0]) != _shape(job):
                self._runs.cancel_waiting(name)  # planned for the old tick sequence
                now = self._clock.now()
                if self._cursors[name] < now:
                    await self._store.set_cursor(name, now)
                    self._cursors[name] = now
            await self._load(job)
        self._wakeup.set()

    def _forget(self, name: str) -> None:
        self._jobs.pop(name, None)
        self._due.pop(name, None)
        self._cursors.pop(name, None)

    async def _recover_orphans(self, orphans: list[Execution], jobs: dict[str, Job]) -> None:
        """Take over the executions an earlier term left running (`RunManager.take_over`),
        with the jobs already loaded: thousands of them must not cost a read each. (Read
        before the jobs: one missing among the jobs was deleted, its executions with it.)"""
        for position, execution in enumerate(orphans):
            job = jobs.get(execution.job_name)
            if job is not None:
                await self._runs.take_over(execution, job)
            if position % _LOAD_SLICE == _LOAD_SLICE - 1:
                await trio.lowlevel.checkpoint()
        if orphans:
            log.info("executions taken over", count=len(orphans))

    async def _load(self, job: Job) -> None:
        cursor = self._cursors.get(job.name)
        if cursor is None:
            try:
                cursor = await self._store.get_cursor(job.name) or initial_cursor(job)
            except JobNotFound:  # deleted since it was read
                self._forget(job.name)
                return
            self._cursors[job.name] = cursor
        self._push(job)

    def _push(self, job: Job) -> None:
        """(Re)schedule a job whose cursor is known (once its plan in flight is carried out:
        until then the cursor does not say which ticks that plan takes)."""
        schedule = job.schedule_obj()
        self._jobs[job.name] = (job, schedule)
        if job.name not in self._committing:
            self._enqueue(job.name, next_due(job, schedule, self._cursors[job.name]))

    def _enqueue(self, name: str, due: datetime | None, *, ahead: bool = True) -> None:
        """Make ``due`` the job's next tick (None: it has none), decided `_plan_ahead` before
        it or, unless ``ahead``, when it is due."""
        if due is None:
            self._due.pop(name, None)
            return
        self._due[name] = due
        self._seq += 1
        decide_at = due - self._plan_ahead if ahead else due
        heapq.heappush(self._heap, (decide_at, self._seq, name, due))

    async def _fire_due(self) -> None:
        """Plan every job whose decision time has come. The plans of one wake-up are stored
        together: one log entry per `_PLAN_BATCH` plans, the entries committed concurrently
        (one fsync), and only then do their runs start (each at its tick). Returns once the
        commit is under way (a round is free), not done."""
        now = self._clock.now()
        early = now + self._plan_window  # decisions planned ahead may come this much early
        due_jobs: dict[str, datetime] = {}  # a job rescheduled to the same time has two entries
        not_yet = []  # decided when due, but not due yet
        while self._heap and self._heap[0][0] <= early and len(due_jobs) < self._max_decisions:
            entry = heapq.heappop(self._heap)
            decide_at, _, name, due = entry
            if decide_at > now and decide_at == due:
                not_yet.append(entry)
            elif self._due.get(name) == due:
                due_jobs[name] = due
        for entry in not_yet:
            heapq.heappush(self._heap, entry)
        decisions = []
        nodes = self._runs.candidates()
        for position, (name, due) in enumerate(due_jobs.items()):
            if position:  # a decision takes ~0.1 ms: a run due meanwhile starts between two
                await trio.lowlevel.checkpoint()
                nodes = self._runs.candidates()
            if self._due.get(name) != due:  # changed or deleted meanwhile: its new entry
                continue
            horizon = early + self._plan_ahead
            if not may_plan_ahead(self._jobs[name][0], self._runs.running_count(name)):
                horizon = now
            if due > horizon:  # decided when due
                self._enqueue(name, due, ahead=False)
            else:
                decisions.append(self._decide(name, now, horizon, nodes))
                self._committing.add(name)
        if not decisions:
            return
        await self._rounds.acquire()
        assert self._recording is not None
        self._recording.start_soon(self._record_round, decisions)

    async def _record_round(self, decisions: list[_Decision]) -> None:
        try:
            batches = [
                decisions[i : i + _PLAN_BATCH] for i in range(0, len(decisions), _PLAN_BATCH)
            ]
            if len(batches) == 1:
                await self._record(batches[0])
                return
            async with trio.open_nursery() as nursery:
                for batch in batches:
                    nursery.start_soon(self._record, batch)
        finally:
            self._rounds.release()

    def _decide(self, name: str, now: datetime, horizon: datetime, nodes: list[Node]) -> _Decision:
        job, schedule = self._jobs[name]
        plan = plan_job(
            job,
            schedule,
            self._cursors[name],
            now,
            running=self._runs.running_count(name),
            paused=self._paused,
            horizon=horizon,
        )
        missed = list(plan.missed)
        started: list[Execution] = []
        for scheduled_at in plan.runs:
            attempts = self._runs.plan_attempts(job, scheduled_at, nodes)
            if not attempts:
                detail = f"no node matches tags {dict(job.tags)}"
                missed.append(MissedTick(name, scheduled_at, MissReason.NO_TARGETS, now, detail))
            started += attempts
        return _Decision(job, plan, PlanRecord(name, plan.cursor, missed, started))

    async def _record(self, batch: list[_Decision]) -> None:
        if TEST_BREAK is Break.DISPATCH_UNPLANNED:  # test-only, inert unless set (breakage.py)
            recorded = PlansRecorded(None)
        else:
            with trio.CancelScope(shield=True):  # committed plans' runs must start
                recorded = await self._store.record_plans([d.record for d in batch])
        for decision in batch:
            self._committing.discard(decision.record.job_name)
            if decision.record.job_name in recorded.refused:  # deleted since it was read
                self._forget(decision.record.job_name)
            else:
                self._carry_out(decision, recorded.fence)
        self._wakeup.set()  # the jobs' next ticks are in the heap now

    def _carry_out(self, decision: _Decision, fence: int | None) -> None:
        """Start a committed plan's runs and enqueue the job's next tick: the plan's, or,
        for a job changed while the plan committed, the changed job's after the later of
        both cursors (none for a job deleted meanwhile)."""
        job, plan, record = decision.job, decision.plan, decision.record
        name = job.name
        started = list(record.started)
        if fence is not None:  # the plans' log index fences their attempts (DKRON_FENCE)
            started = [attrs.evolve(e, fence=fence) for e in started]
        current = self._jobs.get(name)
        cursor = plan.cursor
        if current is not None:
            cursor = max(cursor, self._cursors.get(name, cursor))
            self._cursors[name] = cursor
        for m in record.missed:
            log.info(
                "tick missed",
                job=name,
                scheduled_at=m.scheduled_at.isoformat(),
                reason=m.reason.value,
            )
        if plan.cancel_running:
            self._runs.cancel_job(name)
        for execution in started:
            self._runs.start_planned(job, execution)
        if current is None:
            return
        if current[0] is job:
            self._enqueue(name, plan.next_due)
        else:
            self._enqueue(name, next_due(current[0], current[1], cursor))
