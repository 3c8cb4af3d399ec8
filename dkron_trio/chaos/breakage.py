"""TEST ONLY: deliberately broken builds, to show the chaos harness catches real bugs.

Set ``DKRON_TRIO_TEST_BREAK`` in a server's environment to one of the `Break` values and
that server misbehaves on purpose. Unset (always, outside tests/e2e/test_chaos_broken.py)
it changes nothing. This is the one place the variable is read, once at import; an unknown
value stops the server at start rather than passing silently.
"""

import enum
import os

ENV = "DKRON_TRIO_TEST_BREAK"


class Break(enum.Enum):
    DISPATCH_UNPLANNED = "dispatch-unplanned"
    """The leader starts each tick's runs without committing the planned-run record (the
    cursor, missed ticks and running records): the next leader replans ticks that ran."""


def _read(value: str | None) -> Break | None:
    if not value:
        return None
    try:
        return Break(value)
    except ValueError:
        choices = ", ".join(b.value for b in Break)
        raise ValueError(f"{ENV}={value!r}: unknown (test-only; one of {choices})") from None


TEST_BREAK = _read(os.environ.get(ENV))
"""The break this process runs with; None in every real deployment."""
