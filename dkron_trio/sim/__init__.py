"""Deterministic simulation of clusters and checking of what their clients observed.

Generic parts (any protocol core can run on them):
- `loop.Simulation`: the discrete-event loop (ticks, batched deliveries, scheduled actions);
- `network.SimNetwork`: seeded loss, duplication, delay/reordering, partitions;
- `linearizability`: the history format (`Operation`) and the Wing-Gong/Lowe checker.

Raft on top of them: `disk` (torn-write crashes), `kv`/`kv_machine` (the replicated
key-value register), `clients` (the workload recording a history), `safety` (Raft's
invariants, checked on every Ready), `raft_node` (one server driven through the Ready
contract), `faults` (schedules) and `raft_cluster` (a whole run, with liveness checks).
Nothing here reads a clock or global randomness: a run is a function of its schedule.
"""
