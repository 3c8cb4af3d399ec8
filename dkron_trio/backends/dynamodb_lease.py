"""When a candidate for the DynamoDB lease may take it, from what it sees of the head.

DynamoDB has no expiring items to build a lease on, and the servers' clocks are never
compared: the holder renews by incrementing a counter, and a candidate watches that counter
by its own monotonic clock. It may take the lease once it is free, or once the counter has
not moved for the longer of its own ttl and the one the holder last renewed with, so a
holder with a longer ttl is not cut short. The take is conditioned on the counter it
watched: a renewal that lands meanwhile defeats it.
"""

import attrs

from dkron_trio.backends.dynamodb_table import Head


@attrs.define
class LeaseWatch:
    _watched: Head | None = None
    """The head as first seen with its current renewal count; None while the lease is free."""
    _since: float = 0.0
    """When (monotonic seconds) that renewal count was first seen."""

    @property
    def watched(self) -> Head | None:
        """The head a take is conditioned on (None: the lease is free)."""
        return self._watched

    def may_take(self, head: Head, now: float, ttl: float) -> bool:
        """Look at `head`, read at `now`: whether to try to take the lease, asking for
        `ttl` seconds."""
        if head.lease is None:
            self._watched = None
        elif self._watched is None or self._watched.renewals != head.renewals:
            self._watched, self._since = head, now
        if self._watched is None:
            return True
        return now - self._since >= max(ttl, self._watched.ttl_ms / 1000)
