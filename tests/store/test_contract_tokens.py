"""ACL tokens in the store, against both stores."""

import sqlite3
from pathlib import Path

import pytest

from dkron_trio.acl import Role, hash_token, issue
from dkron_trio.store import rules
from dkron_trio.store.base import AclBootstrapDone, Store, TokenExists, TokenNotFound
from dkron_trio.store.replica import Mutation, ReplicaStore
from dkron_trio.store.sqlite import open_sqlite_store
from tests.store.helpers import T0, job, token


async def test_a_token_is_found_by_its_hash_only(store: Store) -> None:
    text, record = issue(b"\x07" * 32, Role.OPERATOR, "ci", T0)
    await store.put_token(record)
    assert await store.find_token(hash_token(text)) == record
    assert await store.find_token(hash_token(text + "x")) is None
    wrong_tail = record.secret_hash[:16] + "0" * 48
    assert await store.find_token(wrong_tail) is None
    assert await store.find_token(record.secret_hash[:16]) is None


async def test_tokens_are_listed_oldest_first(store: Store) -> None:
    for n in (3, 1, 2):
        await store.put_token(token(n, Role.READ_ONLY, f"t{n}"))
    assert [t.description for t in await store.list_tokens()] == ["t1", "t2", "t3"]


async def test_a_token_is_never_overwritten(store: Store) -> None:
    await store.put_token(token(1, Role.READ_ONLY))
    with pytest.raises(TokenExists):
        await store.put_token(token(1, Role.ADMIN))
    assert [t.role for t in await store.list_tokens()] == [Role.READ_ONLY]


async def test_bootstrap_only_while_no_token_exists(store: Store) -> None:
    await store.put_token(token(1, Role.ADMIN), bootstrap=True)
    with pytest.raises(AclBootstrapDone):
        await store.put_token(token(2, Role.ADMIN), bootstrap=True)
    await store.put_token(token(2, Role.ADMIN))
    assert len(await store.list_tokens()) == 2


async def test_delete_returns_the_token_and_forgets_it(store: Store) -> None:
    first, second = token(1, Role.ADMIN), token(2, Role.OPERATOR)
    await store.put_token(first)
    await store.put_token(second)
    assert await store.delete_token(first.id) == first
    assert await store.list_tokens() == [second]
    assert await store.find_token(first.secret_hash) is None
    with pytest.raises(TokenNotFound):
        await store.delete_token(first.id)


async def test_bootstrap_after_every_token_was_deleted(store: Store) -> None:
    """With no token left nobody could administer the cluster: bootstrap opens again."""
    await store.put_token(token(1, Role.ADMIN), bootstrap=True)
    await store.delete_token(token(1, Role.ADMIN).id)
    await store.put_token(token(2, Role.ADMIN), bootstrap=True)
    assert [t.id for t in await store.list_tokens()] == [token(2, Role.ADMIN).id]


def _bootstrap(n: int) -> Mutation:
    """A bootstrap mutation that returns its refusal, as the state machine does."""

    def apply(tx: rules.StoreTx) -> object:
        try:
            rules.apply_set_token(tx, token(n, Role.ADMIN), True)
        except AclBootstrapDone as exc:
            return exc
        return None

    return apply


async def test_a_refused_bootstrap_in_a_batch_leaves_the_rest(store: ReplicaStore) -> None:
    results = await store.apply_replicated(
        2, [_bootstrap(1), _bootstrap(2), lambda tx: rules.apply_set_job(tx, job("a"))]
    )
    assert results[0] is None
    assert isinstance(results[1], AclBootstrapDone)
    assert [t.id for t in await store.list_tokens()] == [token(1, Role.ADMIN).id]
    assert (await store.get_job("a")).name == "a"


async def test_a_version_2_file_gains_the_tokens_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path) as store:
        await store.set_job(job("a"))
        await store.apply_replicated(3, [])
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE acl_tokens; PRAGMA user_version = 2;")
    conn.close()
    async with open_sqlite_store(path) as store:
        assert (await store.get_job("a")).name == "a"
        assert await store.applied_index() == 3
        assert await store.list_tokens() == []
        await store.put_token(token(1, Role.ADMIN))
        assert len(await store.list_tokens()) == 1


async def test_a_version_2_image_is_restored_and_migrated(tmp_path: Path) -> None:
    """A snapshot or backup made by the previous build still restores."""
    async with open_sqlite_store(tmp_path / "old.db") as old:
        await old.set_job(job("a"))
        await old.apply_replicated(5, [])
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.executescript("DROP TABLE acl_tokens; PRAGMA user_version = 2;")
    conn.close()
    image = (tmp_path / "old.db").read_bytes()
    async with open_sqlite_store(tmp_path / "new.db") as new:
        assert await new.restore_image(image) == 5
        assert (await new.get_job("a")).name == "a"
        await new.put_token(token(1, Role.ADMIN))
        assert len(await new.list_tokens()) == 1
