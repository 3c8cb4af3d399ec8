"""Notifications after executions: Dkron's global ``mail-*`` and ``webhook-*`` keys."""
