"""The chaos harness: its checks on hand-made histories, its nemesis schedule and proxy, and
a short run of ``scripts/chaos.py`` against a real cluster that must find no violation."""

import os
import random
import sys
from pathlib import Path

import pytest
import trio

from dkron_trio.chaos.faults import FaultKind, FaultPlan, Step, schedule
from dkron_trio.chaos.history import JobInput, JobModel, JobOp, JobOutput, lost_writes
from dkron_trio.chaos.proxy import ChaosProxy
from dkron_trio.chaos.report import percentile
from dkron_trio.sim.linearizability import Operation, Outcome, Verdict, check_history
from tests.e2e.chaos_run import run_chaos

Op = Operation[JobInput, JobOutput]


def _put(client: int, value: str, call: int, ret: int | None, outcome: Outcome = Outcome.OK) -> Op:
    return Operation(client, JobInput(JobOp.PUT, "a", value), call, outcome, JobOutput(), ret)


def _get(client: int, value: str | None, call: int, ret: int) -> Op:
    return Operation(client, JobInput(JobOp.GET, "a"), call, Outcome.OK, JobOutput(value), ret)


def _delete(client: int, value: str | None, call: int, ret: int) -> Op:
    return Operation(client, JobInput(JobOp.DELETE, "a"), call, Outcome.OK, JobOutput(value), ret)


def test_a_stale_read_is_not_linearizable() -> None:
    history = [_put(0, "x", 0, 10), _put(0, "y", 20, 30), _get(1, "x", 40, 50)]
    assert check_history(JobModel(), history).verdict is Verdict.ILLEGAL


def test_a_delete_answers_what_it_removed() -> None:
    good = [_put(0, "x", 0, 10), _delete(1, "x", 20, 30), _delete(1, None, 40, 50)]
    assert check_history(JobModel(), good).ok
    bad = [_put(0, "x", 0, 10), _delete(1, None, 20, 30)]
    assert check_history(JobModel(), bad).verdict is Verdict.ILLEGAL


def test_an_unknown_write_may_or_may_not_have_happened() -> None:
    unknown = _put(0, "x", 0, None, Outcome.UNKNOWN)
    assert check_history(JobModel(), [unknown, _get(1, "x", 50, 60)]).ok
    assert check_history(JobModel(), [unknown, _get(1, None, 50, 60)]).ok


def test_lost_writes() -> None:
    acked = _put(0, "x", 0, 10)
    assert lost_writes([acked], {"a": "x"}) == []
    [lost] = lost_writes([acked], {"a": None})
    assert (lost.value, lost.final) == ("x", None)
    # A write that may come after (concurrent, or of unknown outcome) explains the change.
    assert lost_writes([acked, _put(1, "y", 5, 15)], {"a": "y"}) == []
    assert lost_writes([acked, _put(1, "y", 20, None, Outcome.UNKNOWN)], {"a": "y"}) == []
    # One that finished before the acknowledged write began does not.
    assert len(lost_writes([_put(1, "y", 0, 5), _put(0, "x", 6, 10)], {"a": "y"})) == 1
    # A failed write never happened.
    assert len(lost_writes([acked, _put(1, "y", 20, None, Outcome.FAIL)], {"a": "y"})) == 1


def _rounds(plan: FaultPlan, seed: int, n: int) -> list[tuple[Step, ...]]:
    return [r for r, _ in zip(schedule(plan, random.Random(seed)), range(n), strict=False)]


def test_the_schedule_replays_from_its_seed_and_uses_every_kind() -> None:
    plan = FaultPlan(tuple(FaultKind), ("s1", "s2", "s3", "s4", "s5"), ("w1", "w2"))
    first = _rounds(plan, 5, 10)
    assert first == _rounds(plan, 5, 10)
    for steps in first:
        assert sorted(s.faults[0].kind.value for s in steps) == sorted(k.value for k in FaultKind)
        for step in steps:
            [fault] = step.faults
            if fault.kind is FaultKind.PARTITION:
                servers = [t for t in fault.targets if t.startswith("s")]
                assert 1 <= len(servers) <= 2  # a minority of five


@pytest.mark.parametrize("servers", [3, 5])
def test_concurrent_faults_hit_disjoint_nodes_and_a_minority_of_servers(servers: int) -> None:
    names = tuple(f"s{i}" for i in range(1, servers + 1))
    plan = FaultPlan(tuple(FaultKind), names, ("w1", "w2"), concurrent=True)
    for seed in range(20):
        for steps in _rounds(plan, seed, 5):
            assert len(steps) == 2
            crash, single = sorted(steps, key=lambda s: len(s.faults))
            assert [f.kind for f in crash.faults] == [FaultKind.CRASH_ALL]
            assert {f.kind for f in single.faults} == {
                FaultKind.KILL,
                FaultKind.PAUSE,
                FaultKind.PARTITION,
            }
            hit = [t for f in single.faults for t in f.targets]
            assert len(hit) == len(set(hit)), hit
            assert sum(t in names for t in hit) <= (servers - 1) // 2, hit


def test_too_few_nodes_for_concurrent_faults_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrent"):
        FaultPlan(tuple(FaultKind), ("s1", "s2", "s3"), ("w1",), concurrent=True)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


async def test_the_proxy_holds_a_cut_pair_until_it_heals() -> None:
    backend = trio.socket.socket()
    await backend.bind(("127.0.0.1", 0))
    backend.listen()
    target = backend.getsockname()[1]
    proxy = ChaosProxy({"b": target}, {"127.0.0.1": "a"})
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port("b"))
        server_sock, _ = await backend.accept()
        server = trio.SocketStream(server_sock)
        await client.send_all(b"one")
        assert await server.receive_some(10) == b"one"
        proxy.partition(["a"], ["b"])
        await client.send_all(b"two")
        with trio.move_on_after(0.3) as waited:
            await server.receive_some(10)
        assert waited.cancelled_caught, "bytes crossed a cut pair"
        proxy.heal()
        with trio.fail_after(5):
            assert await server.receive_some(10) == b"two"
        await client.aclose()
        await server.aclose()
        backend.close()
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on loopback")
def test_a_short_chaos_run_finds_no_violation(tmp_path: Path) -> None:
    """Ten rounds, each a whole-cluster crash and a step with a kill -9, a pause and a
    partition at once on disjoint nodes: at least 10 faults of each kind, no violation."""
    rounds = int(os.environ.get("DKRON_CHAOS_ROUNDS", "10"))
    run = run_chaos(
        tmp_path,
        [
            "--seed",
            "11",
            "--rounds",
            str(rounds),
            "--duration",
            "400",
            "--faults",
            "kill,pause,crash-all,partition",
            "--concurrent",
            "--quiet",
            "0.2,0.6",
            "--hold",
            "0.5,1.5",
            "--crash-hold",
            "0.1,0.5",
        ],
        timeout=600,
    )
    assert run.returncode == 0, run.output
    assert run.report["faults"] == {k.value: rounds for k in FaultKind}, run.output
    assert run.report["violations"] == [], run.output
    assert run.report["scheduled_runs"] > 0, run.output
