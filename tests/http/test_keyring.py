"""The /v1/keyring routes with an in-memory gossip keyring: answers, documented shapes, and
clear errors for bad keys, refusals and agents without gossip."""

from typing import Any

import attrs
import trio

from dkron_trio.gossip.config import KeyringError, parse_key
from dkron_trio.gossip.keyring import generate_key
from dkron_trio.gossip.keyring_query import KeyringReport, KeyringUnavailable, key_text
from dkron_trio.gossip.messages import KeyOp
from dkron_trio.http.schemas import check
from tests.http.harness import open_api

OLD = generate_key()


@attrs.define
class MemoryKeyring:
    """One member's keyring standing in for the cluster (GossipKeyring's in-memory twin)."""

    keys: list[bytes] = attrs.field(factory=lambda: [parse_key(OLD)])
    enabled: bool = True

    async def keyring(self, op: KeyOp, key: bytes) -> KeyringReport:
        if not self.enabled:
            raise KeyringUnavailable("gossip encryption is not enabled on this agent")
        if op is KeyOp.INSTALL and key not in self.keys:
            self.keys.append(key)
        elif op is KeyOp.USE:
            if key not in self.keys:
                raise KeyringError("use: key is not installed")
            self.keys.remove(key)
            self.keys.insert(0, key)
        elif op is KeyOp.REMOVE:
            if key == self.keys[0]:
                raise KeyringError("remove: cannot remove the primary key; use another first")
            self.keys.remove(key)
        return KeyringReport(
            op, ("n1", "n2"), ("n1",), {}, ("n2",),
            {key_text(k): 1 for k in self.keys}, {key_text(self.keys[0]): 1},
        )  # fmt: skip


async def _answer(api: Any, method: str, body: object = None) -> tuple[int, Any]:
    kwargs = {} if body is None else {"json": body}
    status, data = await api.json(method, "/v1/keyring", **kwargs)
    document = api.app.state.document
    op = document["paths"]["/v1/keyring"][method.lower()]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    check(schema, data, "", document["components"]["schemas"])
    return status, data


async def test_rotation_through_the_api(nursery: trio.Nursery) -> None:
    api = await open_api(nursery, gossip=MemoryKeyring())
    new = generate_key()
    status, report = await _answer(api, "GET")
    assert status == 200 and report["keys"] == {OLD: 1} and report["op"] == "list"
    assert report["complete"] is False and report["missing"] == ["n2"]
    assert (await _answer(api, "POST", {"key": new}))[0] == 200
    status, report = await _answer(api, "PUT", {"key": new})
    assert status == 200 and report["primary_keys"] == {new: 1}
    status, report = await _answer(api, "DELETE", {"key": OLD})
    assert status == 200 and report["keys"] == {new: 1}


async def test_bad_input_and_refusals_are_named(nursery: trio.Nursery) -> None:
    api = await open_api(nursery, gossip=MemoryKeyring())
    status, error = await _answer(api, "POST", {"key": "not base64!"})
    assert (status, error) == (400, {"error": "key: not valid base64"})
    status, error = await _answer(api, "POST", {"nokey": 1})
    assert (status, error) == (400, {"error": "key: is required"})
    status, error = await _answer(api, "DELETE", {"key": OLD})
    assert status == 409 and "primary" in error["error"]
    status, error = await _answer(api, "PUT", {"key": generate_key()})
    assert status == 409 and "not installed" in error["error"]


async def test_without_encryption_or_gossip(nursery: trio.Nursery) -> None:
    api = await open_api(nursery, gossip=MemoryKeyring(enabled=False))
    status, error = await _answer(api, "GET")
    assert status == 409 and "encryption is not enabled" in error["error"]
    bare = await open_api(nursery)
    status, error = await _answer(bare, "GET")
    assert (status, error) == (501, {"error": "keyring: this agent runs without gossip"})
