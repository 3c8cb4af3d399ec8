"""dkron-trio: a distributed, fault-tolerant cron service on Trio."""

__version__ = "0.1.0"
