"""A keyring operation applied cluster-wide, as Serf does with a query to every member: the
asking member sends a KeyRequest (sealed with its current keys) to each live member, again
every retry interval to those that have not answered, and reports who applied it, who refused
and why, and who never answered. Pure: the shell sends, receives and keeps time in ticks.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping

import attrs

from dkron_trio.gossip.messages import Addr, KeyOp, KeyRequest, KeyResponse


class KeyringUnavailable(Exception):
    """Keyring operations need gossip encryption (`encrypt`) on the asking agent."""


def key_text(key: bytes) -> str:
    """A key as `encrypt`, the CLI and the API write it (base64)."""
    return base64.b64encode(key).decode("ascii")


@attrs.frozen
class KeyringReport:
    """The outcome of one cluster-wide keyring operation."""

    op: KeyOp
    asked: tuple[str, ...]
    """Live members asked, this one included, in name order."""
    answered: tuple[str, ...]
    """Members that applied the operation."""
    errors: Mapping[str, str]
    """Members that refused it, with their reason."""
    missing: tuple[str, ...]
    """Members that did not answer before the deadline."""
    keys: Mapping[str, int]
    """Each installed key (base64) and how many answering members hold it."""
    primary_keys: Mapping[str, int]
    """Each primary key (base64) and how many answering members seal with it."""

    @property
    def complete(self) -> bool:
        return not self.errors and not self.missing


@attrs.define
class KeyQuery:
    """One operation in flight, keyed by its request id."""

    request: KeyRequest
    _targets: dict[str, Addr]
    _retry_ticks: int
    _local: str
    """This member: counted among the targets, answered by the shell itself, never sent to."""
    _answers: dict[str, KeyResponse] = attrs.field(factory=dict)
    _next_send: int = 0

    @classmethod
    def start(
        cls,
        request_id: int,
        op: KeyOp,
        key: bytes,
        targets: Mapping[str, Addr],
        retry_ticks: int,
        *,
        local: str,
    ) -> KeyQuery:
        if retry_ticks <= 0:
            raise ValueError("retry_ticks: must be positive")
        return cls(KeyRequest(request_id, op, key), dict(targets), retry_ticks, local)

    @property
    def done(self) -> bool:
        """Every other member has answered."""
        return all(n in self._answers for n in self._targets if n != self._local)

    def due(self, now: int) -> list[tuple[Addr, KeyRequest]]:
        """Requests to send at `now`: to every member still silent, once per retry interval."""
        if now < self._next_send or self.done:
            return []
        self._next_send = now + self._retry_ticks
        silent = [a for n, a in self._targets.items() if n not in self._answers]
        return [(a, self.request) for a in silent if a != self._targets.get(self._local)]

    def answer(self, response: KeyResponse) -> None:
        """Record a member's answer (repeats and strangers are ignored)."""
        if response.id == self.request.id and response.node in self._targets:
            self._answers.setdefault(response.node, response)

    def report(self) -> KeyringReport:
        answers = self._answers
        keys: Counter[str] = Counter()
        primary: Counter[str] = Counter()
        for response in answers.values():
            keys.update(key_text(k) for k in response.keys)
            if response.keys:
                primary[key_text(response.keys[0])] += 1
        return KeyringReport(
            self.request.op,
            tuple(sorted(self._targets)),
            tuple(sorted(n for n, r in answers.items() if not r.error)),
            {n: answers[n].error for n in sorted(answers) if answers[n].error},
            tuple(sorted(n for n in self._targets if n not in answers)),
            dict(sorted(keys.items())),
            dict(sorted(primary.items())),
        )
