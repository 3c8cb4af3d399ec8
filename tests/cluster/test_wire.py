"""The cluster's RPC bodies: every value round-trips; anything else is a WireError."""

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dkron_trio.cluster import wire
from dkron_trio.cluster.config import ClusterConfig, ClusterConfigError, node_id_for
from dkron_trio.commands import CommandError
from dkron_trio.config import HostPort
from dkron_trio.job import ValidationError
from dkron_trio.store.base import (
    AclBootstrapDone,
    ClusterUnavailable,
    DependencyCycle,
    JobHasChildren,
    JobNotFound,
    ParentNotFound,
    RaftMember,
    TokenExists,
    TokenNotFound,
)
from tests.store.helpers import job

RESULTS: list[object] = [
    None,
    7,
    ("1795372713520041000-w2", "1795372713520161000-w1"),
    (),
    job("a"),
    ValidationError("schedule", "bad"),
    JobNotFound("a"),
    ParentNotFound("a", "p"),
    DependencyCycle("a", "p"),
    JobHasChildren("a", ("b", "c")),
    CommandError("broken"),
    ClusterUnavailable("no leader"),
    TokenNotFound("0123456789abcdef"),
    TokenExists("0123456789abcdef"),
    AclBootstrapDone(),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_results_round_trip(result: object) -> None:
    back, applied = wire.decode_reply(wire.encode_reply(result, 42))
    assert applied == 42
    if isinstance(result, Exception):
        assert type(back) is type(result)
        assert str(back) == str(result)
    else:
        assert back == result


def test_an_unknown_result_type_is_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.encode_reply(object(), 1)


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    for decode in (
        wire.decode_reply,
        wire.decode_member,
        wire.decode_hello,
        wire.decode_peers,
        wire.decode_peer_ref,
    ):
        with contextlib.suppress(wire.WireError):
            decode(data)


@given(
    st.recursive(
        st.none() | st.integers(-(1 << 63), (1 << 63) - 1) | st.text() | st.binary(),
        st.lists,
        max_leaves=8,
    )
)
def test_random_msgpack_decodes_or_raises_wire_error(value: object) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    for decode in (wire.decode_reply, wire.decode_member, wire.decode_hello, wire.decode_peers):
        with contextlib.suppress(wire.WireError):
            decode(data)


def test_membership_bodies_round_trip() -> None:
    member = RaftMember(5, "s1", "127.0.0.1:6868")
    assert wire.decode_member(wire.encode_member(member)) == member
    hello = wire.Hello((member, RaftMember(6, "s2", "127.0.0.1:6869")), 3, False)
    assert wire.decode_hello(wire.encode_hello(hello)) == hello
    peers = [wire.Peer(member, True, True)]
    assert wire.decode_peers(wire.encode_peers(peers)) == peers
    assert wire.decode_peer_ref(wire.encode_peer_ref("s1")) == "s1"
    with pytest.raises(wire.WireError):
        wire.decode_peer_ref(wire.encode_peer_ref(0))


def test_node_ids_are_stable_positive_and_distinct() -> None:
    ids = {node_id_for(f"node-{i}") for i in range(1000)}
    assert len(ids) == 1000
    assert all(0 < i < 1 << 63 for i in ids)
    assert node_id_for("s1") == node_id_for("s1")


def test_cluster_config_names_bad_settings() -> None:
    base = {"node_name": "s1", "data_dir": ".", "rpc_bind": HostPort("", 1)}
    with pytest.raises(ClusterConfigError, match="bootstrap-expect"):
        ClusterConfig(**base, advertise=HostPort("a", 1), bootstrap_expect=-1)  # type: ignore[arg-type]
    with pytest.raises(ClusterConfigError, match="node-name"):
        ClusterConfig(**{**base, "node_name": ""}, advertise=HostPort("a", 1))  # type: ignore[arg-type]
