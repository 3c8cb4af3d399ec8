"""The SQLite store's in-memory cache of what its one connection wrote (jobs, executions,
counts), so the hot path need not read back what it just stored."""

import enum
from datetime import datetime

import attrs

from dkron_trio.execution import Execution
from dkron_trio.job import Job

JOB_CACHE_SIZE = 20_000
"""Decoded jobs kept in memory; beyond it the oldest entry gives way."""


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = _Unknown.UNKNOWN
"""What `JobCache.execution` (or `cursor`) answers for what it knows nothing about."""

EXECUTION_CACHE_SIZE = 20_000
"""Executions whose row (or absence) is known; beyond it the oldest entry gives way."""

_ExecutionKey = tuple[str, str]


@attrs.define
class JobCache:
    """What the hot path would otherwise read back: decoded jobs by name, executions known
    to be stored (or known to be absent) by (job, id), and each job's execution count.

    A scheduled run writes its execution twice (running, then finished) and each write
    asks whether the row exists and whether retention must delete: with these answers at
    hand the second write is one statement. Only this store's one connection writes the
    file, so the cache is coherent as long as every write passes through `SqliteTx` and a
    rollback clears it. Bounded: a forgotten entry is merely read again.
    """

    _jobs: dict[str, Job] = attrs.field(factory=dict)
    _limit: int = JOB_CACHE_SIZE
    _executions: dict[str, dict[str, Execution | None]] = attrs.field(factory=dict)
    """By job, then execution id; a job's entries are forgotten together."""
    _known: int = 0
    _counts: dict[str, int] = attrs.field(factory=dict)
    _cursors: "dict[str, datetime | None]" = attrs.field(factory=dict)
    """Each job's cursor where known (None: not set yet, as for a job just created)."""

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def put(self, job: Job) -> None:
        if job.name not in self._jobs and len(self._jobs) >= self._limit:
            del self._jobs[next(iter(self._jobs))]
        self._jobs[job.name] = job

    def drop(self, name: str) -> None:
        """Forget a job and everything known of its executions (it was deleted)."""
        self._jobs.pop(name, None)
        self.forget_executions(name)
        self._counts.pop(name, None)
        self._cursors.pop(name, None)

    def forget_executions(self, job_name: str) -> None:
        """Drop what is known of one job's executions."""
        self._known -= len(self._executions.pop(job_name, ()))

    def clear(self) -> None:
        self._jobs.clear()
        self._executions.clear()
        self._known = 0
        self._counts.clear()
        self._cursors.clear()

    def cursor(self, name: str) -> "datetime | _Unknown | None":
        """The job's cursor, UNKNOWN if not known."""
        return self._cursors.get(name, UNKNOWN)

    def know_cursor(self, name: str, t: datetime | None) -> None:
        if name not in self._cursors and len(self._cursors) >= self._limit:
            del self._cursors[next(iter(self._cursors))]
        self._cursors[name] = t

    def execution(self, key: _ExecutionKey) -> "Execution | _Unknown | None":
        """The stored execution, None if known absent, UNKNOWN if not known."""
        return self._executions.get(key[0], {}).get(key[1], UNKNOWN)

    def know_execution(self, key: _ExecutionKey, ex: Execution | None) -> None:
        job_name, execution_id = key
        of_job = self._executions.get(job_name)
        if of_job is None or execution_id not in of_job:
            if self._known >= EXECUTION_CACHE_SIZE:  # the job known longest gives way
                self._known -= len(self._executions.pop(next(iter(self._executions))))
                of_job = self._executions.get(job_name)
            self._known += 1
        if of_job is None:
            of_job = self._executions[job_name] = {}
        of_job[execution_id] = ex

    def forget_execution(self, key: _ExecutionKey) -> None:
        of_job = self._executions.get(key[0])
        if of_job is not None and of_job.pop(key[1], UNKNOWN) is not UNKNOWN:
            self._known -= 1

    def count(self, job_name: str) -> int | None:
        return self._counts.get(job_name)

    def set_count(self, job_name: str, count: int | None) -> None:
        if count is None:
            self._counts.pop(job_name, None)
        else:
            self._counts[job_name] = count
