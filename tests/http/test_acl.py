"""ACLs: every operation of the OpenAPI document against every kind of caller.

The table below is written out here on purpose, not read from the routes: a route whose
declared access changes, or a new route, fails `test_the_table_covers_every_operation`
until someone decides here what it needs.
"""

import json
from typing import Any

import pytest
import trio
from quart.testing import WebsocketResponseError

from dkron_trio.acl import Access, Role, hash_token, issue
from dkron_trio.http.app import all_routes
from dkron_trio.http.auth import COOKIE
from dkron_trio.http.openapi import build_openapi
from tests.http.harness import T0, Api, open_api

OPEN, R, P, A = Access.OPEN, Access.READ, Access.OPERATE, Access.ADMIN
EXPECTED: dict[str, Access] = {
    "health": OPEN,
    "openapi": OPEN,
    "docs": OPEN,
    "aclBootstrap": OPEN,
    "status": R,
    "getMember": R,
    "getLeader": R,
    "getIsLeader": R,
    "busy": R,
    "pauseStatus": R,
    "metrics": R,
    "getJobs": R,
    "showJobByName": R,
    "listExecutionsByJob": R,
    "showExecutionByID": R,
    "followExecution": R,
    "listMissedTicks": R,
    "runJob": P,
    "runJobAlias": P,
    "toggleJob": P,
    "cancelExecution": P,
    "createOrUpdateJob": A,
    "createOrUpdateJobPatch": A,
    "putJob": A,
    "deleteJob": A,
    "deleteExecutionsByJob": A,
    "restore": A,
    "leave": A,
    "pause": A,
    "unpause": A,
    "backup": A,
    "keyringList": A,
    "keyringInstall": A,
    "keyringUse": A,
    "keyringRemove": A,
    "aclListTokens": A,
    "aclCreateToken": A,
    "aclDeleteToken": A,
}

DOCUMENT = build_openapi(all_routes(), "test")
OPERATIONS = sorted(
    (op["operationId"], method.upper(), path)
    for path, methods in DOCUMENT["paths"].items()
    for method, op in methods.items()
)
SECRETS = {role: bytes([n]) * 32 for n, role in enumerate(Role, start=1)}
TOKENS = {role: issue(secret, role, role.value, T0)[0] for role, secret in SECRETS.items()}
CALLERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("no token", {}),
    ("unknown token", {"X-Dkron-Token": "not-a-token"}),
    ("read-only", {"X-Dkron-Token": TOKENS[Role.READ_ONLY]}),
    ("operator", {"Authorization": f"Bearer {TOKENS[Role.OPERATOR]}"}),
    ("admin", {"X-Dkron-Token": TOKENS[Role.ADMIN]}),
)
"""In this order: the admin's destructive calls (delete, leave) come last."""


def expected_status(caller: str, access: Access) -> str:
    """ "401", "403" or "allowed" (any answer but those two)."""
    if access is Access.OPEN:
        return "allowed"
    if caller in ("no token", "unknown token"):
        return "401"
    return "allowed" if Role(caller).may(access) else "403"


async def open_acl_api(nursery: trio.Nursery) -> Api:
    api = await open_api(nursery, acl_enabled=True)
    for role, secret in SECRETS.items():
        await api.store.put_token(issue(secret, role, role.value, T0)[1])
    admin = {"X-Dkron-Token": TOKENS[Role.ADMIN]}
    body = {"name": "a", "schedule": "@every 1h", "executor": "shell"}
    body["executor_config"] = {"command": "true"}  # type: ignore[assignment]
    response = await api.client.post("/v1/jobs", json=body, headers=admin)
    assert response.status_code == 201
    return api


def test_the_table_covers_every_operation() -> None:
    declared = {route.operation.operation_id: route.operation.access for route in all_routes()}
    assert declared == EXPECTED
    assert {op_id for op_id, _, _ in OPERATIONS} == set(EXPECTED)


def test_the_document_declares_security_and_roles() -> None:
    for path, methods in DOCUMENT["paths"].items():
        for op in methods.values():
            access = EXPECTED[op["operationId"]]
            if access is Access.OPEN:
                assert "security" not in op, path
                continue
            assert op["security"] == [{"dkronToken": []}, {"bearerToken": []}]
            assert op["x-dkron-roles"] == [r.value for r in Role if r.may(access)]
            assert {"401", "403"} <= set(op["responses"])
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["dkronToken"] == {"type": "apiKey", "in": "header", "name": "X-Dkron-Token"}


async def _call(api: Api, op_id: str, method: str, path: str, headers: dict[str, str]) -> int:
    url = (
        path.replace("{job_name}", "a")
        .replace("{execution}", "1-node1")
        .replace("{token_id}", "0123456789abcdef")
    )
    if op_id == "followExecution":
        refused: list[BaseException] = []
        try:
            async with api.client.websocket(url, headers=headers) as ws:
                await ws.receive()
        except* WebsocketResponseError as group:
            refused.extend(group.exceptions)
        if not refused:
            return 101
        [error] = refused
        assert isinstance(error, WebsocketResponseError)
        return error.response.status_code
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH", "DELETE") and op_id != "deleteJob":
        kwargs["json"] = {}
    response = await api.client.open(url, method=method, **kwargs)
    if response.status_code in (401, 403):
        assert "error" in json.loads(await response.get_data())
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return response.status_code


@pytest.mark.parametrize(("op_id", "method", "path"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_every_caller_against_the_operation(
    nursery: trio.Nursery, op_id: str, method: str, path: str
) -> None:
    api = await open_acl_api(nursery)
    seen: dict[str, str] = {}
    for caller, headers in CALLERS:
        status = await _call(api, op_id, method, path, headers)
        seen[caller] = str(status) if status in (401, 403) else "allowed"
    assert seen == {caller: expected_status(caller, EXPECTED[op_id]) for caller, _ in CALLERS}


async def test_acls_off_needs_no_token(api: Api) -> None:
    assert (await api.client.get("/v1/jobs")).status_code == 200
    assert (await api.client.post("/v1/pause")).status_code == 200
    assert (await api.client.get("/ui/")).status_code == 200
    assert (await api.client.get("/ui/login")).status_code == 404


async def test_bootstrap_once_then_the_admin_manages_tokens(nursery: trio.Nursery) -> None:
    api = await open_api(nursery, acl_enabled=True)
    assert (await api.client.get("/v1/jobs")).status_code == 401
    first = await api.client.post("/v1/acl/bootstrap")
    assert first.status_code == 201
    created = await first.get_json()
    assert created["role"] == "admin"
    admin = {"X-Dkron-Token": created["token"]}
    assert hash_token(created["token"])[:16] == created["id"]
    again = await api.client.post("/v1/acl/bootstrap")
    assert again.status_code == 409
    assert "bootstrap refused" in (await again.get_json())["error"]

    made = await api.client.post(
        "/v1/acl/tokens", json={"role": "read-only", "description": "ci"}, headers=admin
    )
    assert made.status_code == 201
    reader = await made.get_json()
    listed = await (await api.client.get("/v1/acl/tokens", headers=admin)).get_json()
    assert [t["id"] for t in listed] == [created["id"], reader["id"]]
    assert all("token" not in t and "hash" not in t for t in listed)
    as_reader = {"X-Dkron-Token": reader["token"]}
    assert (await api.client.get("/v1/jobs", headers=as_reader)).status_code == 200
    assert (await api.client.post("/v1/pause", headers=as_reader)).status_code == 403

    gone = await api.client.delete(f"/v1/acl/tokens/{reader['id']}", headers=admin)
    assert (await gone.get_json())["id"] == reader["id"]
    assert (await api.client.get("/v1/jobs", headers=as_reader)).status_code == 401
    missing = await api.client.delete(f"/v1/acl/tokens/{reader['id']}", headers=admin)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "role"),
        ({"role": "root"}, "role"),
        ({"role": "admin", "description": 5}, "description"),
    ],
)
async def test_bad_token_requests_name_the_field(
    nursery: trio.Nursery, body: dict[str, object], field: str
) -> None:
    api = await open_acl_api(nursery)
    admin = {"X-Dkron-Token": TOKENS[Role.ADMIN]}
    response = await api.client.post("/v1/acl/tokens", json=body, headers=admin)
    assert response.status_code == 400
    assert (await response.get_json())["error"].startswith(field)


async def test_preflight_and_unknown_paths_need_no_token(nursery: trio.Nursery) -> None:
    api = await open_acl_api(nursery)
    assert (await api.client.options("/v1/jobs")).status_code == 204
    assert (await api.client.get("/v1/nothing")).status_code == 404


async def test_ui_pages_redirect_to_login_and_the_cookie_logs_in(nursery: trio.Nursery) -> None:
    api = await open_acl_api(nursery)
    page = await api.client.get("/ui/jobs")
    assert page.status_code == 302
    assert page.headers["Location"] == "/ui/login?next=/ui/jobs"
    login = await api.client.get("/ui/login?next=/ui/jobs")
    assert login.status_code == 200
    assert 'name="token"' in (await login.get_data(as_text=True))

    refused = await api.client.post("/ui/login", form={"token": "wrong", "next": "/ui/jobs"})
    assert refused.status_code == 401
    assert "not known" in await refused.get_data(as_text=True)

    accepted = await api.client.post(
        "/ui/login", form={"token": TOKENS[Role.READ_ONLY], "next": "/ui/jobs"}
    )
    assert accepted.status_code == 302
    assert accepted.headers["Location"] == "/ui/jobs"
    cookie = accepted.headers["Set-Cookie"]
    assert f"{COOKIE}={TOKENS[Role.READ_ONLY]}" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    # The test client keeps the cookie: pages and the API both accept it.
    jobs = await api.client.get("/ui/jobs")
    assert jobs.status_code == 200
    assert "Log out" in await jobs.get_data(as_text=True)
    assert (await api.client.get("/v1/jobs")).status_code == 200
    assert (await api.client.post("/v1/jobs/a/toggle")).status_code == 403

    out = await api.client.get("/ui/logout")
    assert out.status_code == 302
    assert (await api.client.get("/ui/jobs")).status_code == 302
    assert (await api.client.get("/v1/jobs")).status_code == 401


async def test_login_never_redirects_off_this_server(nursery: trio.Nursery) -> None:
    api = await open_acl_api(nursery)
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = await api.client.post(
            "/ui/login", form={"token": TOKENS[Role.ADMIN], "next": target}
        )
        assert response.headers["Location"] == "/ui/"
