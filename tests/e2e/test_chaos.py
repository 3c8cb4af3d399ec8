"""The chaos harness: its checks on hand-made histories, its nemesis schedule and proxy, and
a short run of ``scripts/chaos.py`` against a real cluster that must find no violation."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from dkron_trio.chaos.faults import FaultKind, FaultPlan, schedule
from dkron_trio.chaos.history import JobInput, JobModel, JobOp, JobOutput, lost_writes
from dkron_trio.chaos.proxy import ChaosProxy
from dkron_trio.chaos.report import percentile
from dkron_trio.sim.linearizability import Operation, Outcome, Verdict, check_history

ROOT = Path(__file__).resolve().parents[2]

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


def test_the_schedule_replays_from_its_seed_and_uses_every_kind() -> None:
    plan = FaultPlan(tuple(FaultKind), ("s1", "s2", "s3", "s4", "s5"), ("w1", "w2"))
    first = [f for f, _ in zip(schedule(plan, random.Random(5)), range(40), strict=False)]
    again = [f for f, _ in zip(schedule(plan, random.Random(5)), range(40), strict=False)]
    assert first == again
    assert {f.kind for f in first[:4]} == set(FaultKind)
    for fault in first:
        if fault.kind is FaultKind.PARTITION:
            servers = [t for t in fault.targets if t.startswith("s")]
            assert 1 <= len(servers) <= 2  # a minority of five


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


async def test_the_proxy_holds_a_cut_pair_until_it_heals() -> None:
    backend = trio.socket.socket()
    await backend.bind(("127.0.0.1", 0))
    backend.listen()
    target = backend.getsockname()[1]
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proxy = ChaosProxy({"b": (port, target)}, {"127.0.0.1": "a"})
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        client = await trio.open_tcp_stream("127.0.0.1", port)
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
    """Every kind of fault: kill -9, pauses, whole-cluster crashes and partitions."""
    duration = os.environ.get("DKRON_CHAOS_DURATION", "90")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaos.py"),
            "--seed",
            "11",
            "--duration",
            duration,
            "--faults",
            "kill,pause,crash-all,partition",
            "--root",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=float(duration) + 300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
