"""The worker's journal: an attempt is accepted once, however often it is ordered; accepts
and finishes that arrive together share one transaction."""

from pathlib import Path

import attrs
import trio

from dkron_trio.dispatch.journal import Journal
from dkron_trio.execution import ExecutionStatus
from tests.store.helpers import execution


async def test_an_attempt_is_accepted_once_and_remembered(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "agent.db")
    first, second = (execution("a", n, ExecutionStatus.RUNNING) for n in (1, 2))
    assert await journal.accept_all([first, second, first]) == [True, True, False]
    assert await journal.accept_all([second]) == [False]
    done = attrs.evolve(first, status=ExecutionStatus.SUCCESS, success=True)
    await journal.finish(done)
    assert await journal.unfinished() == [second]
    found = await journal.get_many([first.id, "never-ordered", second.id])
    assert found == {first.id: done, second.id: second}
    await journal.close()

    reopened = await Journal.open(tmp_path / "agent.db")
    assert await reopened.unfinished() == [second]
    await reopened.close()


async def test_concurrent_finishes_share_a_transaction(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "agent.db")
    attempts = [execution("a", n, ExecutionStatus.RUNNING) for n in range(1, 9)]
    await journal.accept_all(attempts)
    batches: list[int] = []
    write_batch = journal._write_batch

    async def counting(ops: list[tuple[object, object]]) -> object:
        batches.append(len(ops))
        return await write_batch(ops)  # type: ignore[arg-type]

    journal._writes._flush = counting  # type: ignore[assignment]
    async with trio.open_nursery() as nursery:
        for attempt in attempts:
            nursery.start_soon(journal.finish, attrs.evolve(attempt, status=ExecutionStatus.FAILED))
    assert sum(batches) == len(attempts)
    assert len(batches) <= 2  # the first alone, the rest together
    assert await journal.unfinished() == []
    await journal.close()
