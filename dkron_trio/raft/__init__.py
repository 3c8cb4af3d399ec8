"""raft subsystem."""
