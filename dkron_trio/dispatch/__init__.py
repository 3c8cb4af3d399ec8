"""Running jobs on other nodes: the leader's orders, the worker that obeys them, reports."""
