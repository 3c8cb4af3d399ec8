"""Notifications after executions: Dkron's global ``mail-*`` and ``webhook-*`` keys and each
job's own ``notify`` targets."""
