"""Prometheus metrics (``enable-prometheus``), served at ``/metrics``.

Counters are fed through narrow hooks, never from globals: the run manager's started and
finished listeners (executions by job and status, start lateness), the state machine's
missed-tick feed (missed ticks by reason, on every server as each plan commits), the Raft
log storage's durable-write hook (fsync latency) and the HTTP app's after-request hook
(requests by route and status). Gauges are read on scrape
from what the agent hands over: the Raft node's status and the gossip members. Each agent
has its own registry, so several agents in one process (tests) never mix their numbers.
"""

from collections.abc import Callable, Iterable, Iterator

import attrs
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason
from dkron_trio.http.context import Member, MemberStatus
from dkron_trio.job import Job
from dkron_trio.raft.status import Status
from dkron_trio.raft.types import Role

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds between a tick's scheduled time and its first attempt's start."""

RAFT_WRITE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds of one fsync'd raft.db transaction (tens of microseconds on a disk with a
volatile cache to hundreds of milliseconds on a slow network disk)."""

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (404s of unknown paths): one label value,
so that scanning clients cannot blow up the number of series."""


@attrs.define(eq=False)
class _ReadOnScrape(Collector):
    """Gauges computed from the agent's live state each time Prometheus scrapes."""

    raft: Callable[[], Status | None] | None = None
    members: Callable[[], Iterable[Member]] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.raft is not None:
            status = self.raft()
            if status is not None:
                yield from _raft_families(status)
        if self.members is not None:
            yield _member_family(self.members())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _raft_families(status: Status) -> list[Metric]:
    return [
        _gauge("dkron_raft_term", "Current Raft term.", status.term),
        _gauge("dkron_raft_commit_index", "Highest log index known committed.", status.commit),
        _gauge("dkron_raft_applied_index", "Highest log index applied here.", status.applied),
        _gauge("dkron_raft_last_index", "Last log index held here.", status.last_index),
        _gauge(
            "dkron_raft_apply_lag",
            "Committed entries not yet applied here (commit index - applied index).",
            max(status.commit - status.applied, 0),
        ),
        _gauge("dkron_raft_leader", "1 while this server leads.", int(status.role is Role.LEADER)),
        _gauge(
            "dkron_raft_voters", "Voters in the Raft configuration.", len(status.conf_state.voters)
        ),
    ]


def _member_family(members: Iterable[Member]) -> GaugeMetricFamily:
    counts = dict.fromkeys(MemberStatus, 0)
    for member in members:
        counts[member.status] += 1
    family = GaugeMetricFamily(
        "dkron_gossip_members", "Cluster members gossip reports, by status.", labels=["status"]
    )
    for status, count in counts.items():
        if status is not MemberStatus.NONE:
            family.add_metric([status.name.lower()], count)
    return family


@attrs.define(eq=False, init=False)
class Metrics:
    """One agent's metrics; create once, feed through the hooks, serve `exposition`."""

    _registry: CollectorRegistry
    _executions: Counter
    _lateness: Histogram
    _missed: Counter
    _requests: Counter
    _raft_writes: Histogram
    _live: _ReadOnScrape

    def __init__(self) -> None:
        registry = CollectorRegistry(auto_describe=True)
        self._registry = registry
        self._executions = Counter(
            "dkron_executions",
            "Finished executions run or ordered by this server, by job and status.",
            ["job", "status"],
            registry=registry,
        )
        self._lateness = Histogram(
            "dkron_execution_start_lateness_seconds",
            "First attempts: start time minus the tick's scheduled time.",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self._missed = Counter(
            "dkron_missed_ticks",
            "Ticks recorded as missed (committed), by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in MissReason:
            self._missed.labels(reason.value)
        self._requests = Counter(
            "dkron_http_requests",
            "HTTP API requests answered, by method, route and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self._raft_writes = Histogram(
            "dkron_raft_fsync_seconds",
            "Durable raft.db writes: seconds of each fsync'd transaction (one group commit of "
            "a Ready batch), fsync included.",
            buckets=RAFT_WRITE_BUCKETS,
            registry=registry,
        )
        self._live = _ReadOnScrape()
        registry.register(self._live)

    # -- hooks ------------------------------------------------------------------------------

    def on_finished(self, job: Job, execution: Execution) -> None:
        """RunManager finished listener: outcomes, and the lateness of a tick's first
        attempt (its record's start is when the executor began, on whichever node)."""
        if execution.status is ExecutionStatus.RUNNING:
            return
        self._executions.labels(job.name, execution.status.value).inc()
        ran = execution.status in (ExecutionStatus.SUCCESS, ExecutionStatus.FAILED)
        if ran and execution.attempt == 1 and execution.scheduled_at is not None:
            late = (execution.started_at - execution.scheduled_at).total_seconds()
            self._lateness.observe(max(late, 0.0))

    def on_missed(self, ticks: list[MissedTick]) -> None:
        """The state machine's feed of committed missed ticks."""
        for tick in ticks:
            self._missed.labels(tick.reason.value).inc()

    def on_request(self, method: str, route: str | None, status: int) -> None:
        """The HTTP app's after-request hook; ``route`` is the matched rule, None if none."""
        self._requests.labels(method, route or UNMATCHED_ROUTE, str(status)).inc()

    def on_raft_durable_write(self, seconds: float) -> None:
        """The Raft log storage's hook (called on its writer thread; the histogram locks)."""
        self._raft_writes.observe(seconds)

    def watch_raft(self, status: Callable[[], Status | None]) -> None:
        """Read the Raft node's status on every scrape (None: not started yet)."""
        self._live.raft = status

    def watch_members(self, members: Callable[[], Iterable[Member]]) -> None:
        """Read the gossip members on every scrape."""
        self._live.members = members

    # -- serving ----------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every family in Prometheus' text format."""
        return generate_latest(self._registry)
