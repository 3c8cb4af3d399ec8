"""The jobs a worker decoded lately, by their encoded form (`wire.decode_orders`).

Decoding a job costs three times the rest of an order, and a worker sees the same job at
every tick. Keyed by its bytes, an entry never goes stale: a changed job arrives as other
bytes and is decoded afresh, and an evicted one is decoded again from the next order that
carries it. The oldest quarter goes at once when the cache is full, so the jobs a fleet
orders over and over stay, and evicting costs little per order.
"""

import itertools
from collections.abc import Callable

import attrs

from dkron_trio.dispatch import wire
from dkron_trio.job import Job

JOBS_KEPT = 20_000
"""Decoded jobs a worker keeps: it may get orders for every job of the cluster."""


@attrs.define
class JobCache:
    _limit: int = attrs.field(default=JOBS_KEPT, validator=attrs.validators.ge(1))
    _decode: Callable[[bytes], Job] = wire.decode_job
    _jobs: dict[bytes, Job] = attrs.field(init=False, factory=dict)

    def __len__(self) -> int:
        return len(self._jobs)

    def job(self, data: bytes) -> Job:
        """The job encoded as `data`, decoded once while it stays cached."""
        job = self._jobs.get(data)
        if job is None:
            if len(self._jobs) >= self._limit:
                for stale in list(itertools.islice(self._jobs, max(1, self._limit // 4))):
                    del self._jobs[stale]
            job = self._jobs[data] = self._decode(data)
        return job
