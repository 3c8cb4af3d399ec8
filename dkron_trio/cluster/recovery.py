"""Recovery from a lost quorum: ``peers.json`` in the data dir (Dkron's and hashicorp/raft's
manual recovery file).

When most servers are gone for good, the cluster cannot elect a leader. The operator stops
every surviving server, writes the same ``peers.json`` into each one's data dir — a list of
``{"id": "<node name>", "address": "<host>:<rpc port>"}`` naming the servers that remain —
and starts them. On start, a server that finds the file:

1. applies every entry of its log to its state (entries it never saw committed included:
   with the quorum gone nobody can tell, and keeping them loses nothing acknowledged);
2. replaces its log with a snapshot of that state at its last index, whose configuration is
   exactly the listed servers;
3. renames the file to ``peers.json.ingested`` so a restart does not do it again.

The listed servers then elect a leader among themselves; the leader records their
addresses. Servers must ingest the same file, and each should hold an up-to-date log
(prefer the survivors with the longest logs).
"""

import json
import os
from pathlib import Path

import attrs

from dkron_trio.cluster.config import node_id_for
from dkron_trio.config import parse_host_port
from dkron_trio.fsm import StoreStateMachine
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.raft.types import ConfState, HardState, Ready, Snapshot, SnapshotMeta
from dkron_trio.store.base import RaftMember
from dkron_trio.store.replica import ReplicaStore

PEERS_FILE = "peers.json"


class RecoveryError(ValueError):
    """A peers.json that cannot be used; the message says why."""


@attrs.frozen
class Recovery:
    """What ingesting the file did."""

    members: tuple[RaftMember, ...]
    index: int
    term: int


def read_peers(path: Path) -> tuple[RaftMember, ...]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RecoveryError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise RecoveryError(f"{path}: expected a non-empty list of {{id, address}}")
    members = []
    for item in raw:
        if not isinstance(item, dict) or not {"id", "address"} <= item.keys():
            raise RecoveryError(f'{path}: every entry needs "id" and "address"')
        name, address = item["id"], item["address"]
        if not isinstance(name, str) or not name or not isinstance(address, str):
            raise RecoveryError(f"{path}: id and address must be strings")
        try:
            parse_host_port(address)
        except ValueError as exc:
            raise RecoveryError(f"{path}: address {address!r}: {exc}") from None
        members.append(RaftMember(node_id_for(name), name, address))
    if len({m.node_id for m in members}) != len(members):
        raise RecoveryError(f"{path}: a server is listed twice")
    return tuple(members)


async def ingest_peers(
    data_dir: Path, storage: SqliteRaftStorage, store: ReplicaStore
) -> Recovery | None:
    """Do the recovery if ``peers.json`` is there (see the module docstring)."""
    path = data_dir / PEERS_FILE
    if not path.exists():
        return None
    members = read_peers(path)
    last = storage.last_index()
    applied = await store.applied_index()
    machine = StoreStateMachine(store)
    if last > applied:
        await machine.apply(storage.entries(max(applied + 1, storage.first_index()), last + 1))
    index, image = await store.snapshot_image()
    term = storage.term(index) if index >= storage.first_index() - 1 else 0
    hard, _ = storage.initial_state()
    conf = ConfState(voters=frozenset(m.node_id for m in members))
    snapshot = Snapshot(SnapshotMeta(index, term, conf), image)
    storage.save(
        Ready(
            hard_state=HardState(term=max(hard.term, term), commit=index),
            snapshot=snapshot,
            must_sync=True,
        )
    )
    os.replace(path, data_dir / (PEERS_FILE + ".ingested"))
    return Recovery(members, index, term)
