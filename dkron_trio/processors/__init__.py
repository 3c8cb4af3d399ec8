"""Processors: Dkron's per-job ``processors`` field (``log``, ``files``, ``syslog``)."""
