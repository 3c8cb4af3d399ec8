"""The peer's outbox without a connection: urgent frames go first and are bounded."""

import attrs

from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.counters import Counters, Metric
from dkron_trio.rpc.outbox import Outbox, PendingCall


def test_urgent_frames_are_taken_before_calls_and_earlier_frames() -> None:
    outbox = Outbox(RpcConfig(), Counters())
    outbox.put_nowait(b"entries-1")
    outbox.put_call(PendingCall(1, b"call"))
    outbox.put_nowait(b"entries-2")
    outbox.put_urgent_nowait(b"heartbeat")
    outbox.put_urgent_nowait(b"vote")
    data, calls = outbox.take(max_bytes=1)  # at least the urgent ones
    assert data == [b"heartbeat", b"vote"] and calls == []
    data, calls = outbox.take(max_bytes=1 << 20)
    assert data == [b"call", b"entries-1", b"entries-2"] and [c.call_id for c in calls] == [1]
    assert len(outbox) == 0


def test_urgent_frames_are_bounded_by_the_queue_size_and_drops_counted() -> None:
    counters = Counters()
    config = attrs.evolve(RpcConfig(), queue_size=2, overflow=Overflow.BLOCK)
    outbox = Outbox(config, counters)
    for i in range(3):
        outbox.put_urgent_nowait(b"beat-%d" % i)
    assert outbox.take(max_bytes=1 << 20)[0] == [b"beat-1", b"beat-2"]
    assert counters.get(Metric.QUEUE_DROPPED) == 1
