"""The chaos harness: real clusters under kill -9, pauses, whole-cluster crashes and
partitions, with the client history and the run records checked at the end
(``scripts/chaos.py``)."""
