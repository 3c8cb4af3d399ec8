"""Request rate per client address: a token bucket each (pure; time enters as `now`).

A client may send `burst` requests at once and `rate` per second after that. Buckets of
clients that have been quiet long enough to be full again are forgotten, and at most
`max_clients` buckets are kept (the least recently seen go first), so a flood of source
addresses cannot grow memory without bound.
"""

import attrs

DEFAULT_MAX_CLIENTS = 10_000


@attrs.frozen
class _Bucket:
    tokens: float
    at: float


@attrs.define
class RateLimiter:
    _rate: float
    _burst: float
    _max_clients: int = DEFAULT_MAX_CLIENTS
    _buckets: dict[str, _Bucket] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self._rate <= 0 or self._burst < 1 or self._max_clients < 1:
            raise ValueError("rate must be positive, burst and max_clients at least 1")

    def admit(self, client: str, now: float) -> float:
        """0.0 if `client` may make a request at `now` (a token is taken); otherwise the
        seconds until it may (nothing is taken)."""
        bucket = self._buckets.pop(client, None)
        tokens = self._burst
        if bucket is not None:
            tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[client] = _Bucket(tokens, now)
        self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        full_after = self._burst / self._rate
        for client, bucket in list(self._buckets.items()):
            if len(self._buckets) <= self._max_clients and now - bucket.at < full_after:
                break
            del self._buckets[client]

    @property
    def clients(self) -> int:
        """How many buckets are kept now."""
        return len(self._buckets)
