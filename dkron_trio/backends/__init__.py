"""External backends: the command log and leadership lease kept in etcd, Redis, ZooKeeper or
DynamoDB instead of the embedded Raft log (see `dkron_trio.store.backend`)."""
