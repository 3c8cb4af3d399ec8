"""ACL tokens: bootstrap the first one, then create, list and delete them (admin).

A new token's secret is drawn here, on the server that takes the request, from the OS's
CSPRNG; only its SHA-256 goes into the replicated state (`dkron_trio.acl`). The secret is in
the one answer to its creation and nowhere else, so it cannot be shown again: a lost token
is deleted and replaced.

Bootstrap works on a cluster because the check "no token exists yet" is made by the state
machine when the command is applied, in log order, not by the server that took the request:
of two bootstraps sent at once to two servers, the first committed wins and the other is
refused (409) and its secret is never shown.
"""

import secrets
from collections.abc import Mapping
from typing import Any

from quart import Response

from dkron_trio.acl import SECRET_BYTES, Access, AclToken, Role, issue, parse_role
from dkron_trio.http.errors import json_response
from dkron_trio.http.payload import read_json_body
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.schemas import Field, FieldType, ObjectSchema, check
from dkron_trio.http.spec import (
    BAD_REQUEST,
    INTERNAL,
    TOO_LARGE,
    UNAVAILABLE,
    Body,
    Operation,
    Reply,
    error_reply,
)
from dkron_trio.job import ValidationError
from dkron_trio.logs import get_logger

log = get_logger(__name__)
router = Router()

_TOKEN_FIELDS = (
    Field("id", FieldType.STRING, "Public id: the first 16 hex digits of the token's SHA-256."),
    Field("role", FieldType.STRING, "What the token may do.", choices=Role),
    Field("description", FieldType.STRING, "Free text: whose token this is."),
    Field("created_at", FieldType.TIME, "When it was created."),
)
TOKEN = ObjectSchema("acl_token", "An ACL token (its secret is never shown).", _TOKEN_FIELDS)
NEW_TOKEN = ObjectSchema(
    "acl_new_token",
    "A token just created, with its secret: shown once, in this answer only.",
    (*_TOKEN_FIELDS, Field("token", FieldType.STRING, "The secret to send as X-Dkron-Token.")),
)
CREATE_BODY = ObjectSchema(
    "acl_token_request",
    "The token to create.",
    (
        Field("role", FieldType.STRING, "read-only, operator or admin.", choices=Role),
        Field("description", FieldType.STRING, "Free text: whose token this is."),
    ),
    required=("role",),
)

_CREATED = Reply(201, "The new token, with its secret (shown only now).", NEW_TOKEN.json_schema())
_CONFLICT = error_reply(409, "Tokens exist already: bootstrap is done.")


def _new_token_json(text: str, record: AclToken) -> dict[str, Any]:
    return {**record.to_json(), "token": text}


async def _create(state: ApiState, role: Role, description: str, *, bootstrap: bool) -> Response:
    text, record = issue(
        secrets.token_bytes(SECRET_BYTES), role, description, state.deps.clock.now()
    )
    await state.deps.store.put_token(record, bootstrap=bootstrap)
    log.info("acl token created", id=record.id, role=role.value, bootstrap=bootstrap)
    return json_response(_new_token_json(text, record), 201)


@router.add(
    Operation(
        method="POST",
        path="/v1/acl/bootstrap",
        operation_id="aclBootstrap",
        access=Access.OPEN,
        tag="acl",
        summary="Create the first admin token; refused once any token exists",
        description="Needs no token: it is how the first one is made. The cluster's state "
        "machine decides, in log order, so on a cluster exactly one bootstrap succeeds.",
        replies=(_CREATED, _CONFLICT, UNAVAILABLE, INTERNAL),
    )
)
async def bootstrap(state: ApiState, call: Call) -> Response:
    return await _create(state, Role.ADMIN, "bootstrap", bootstrap=True)


@router.add(
    Operation(
        method="GET",
        path="/v1/acl/tokens",
        operation_id="aclListTokens",
        access=Access.ADMIN,
        tag="acl",
        summary="List the ACL tokens (ids and roles, never secrets), oldest first",
        replies=(Reply(200, "The tokens.", {"type": "array", "items": TOKEN.json_schema()}),),
    )
)
async def list_tokens(state: ApiState, call: Call) -> Response:
    return json_response([token.to_json() for token in await state.deps.store.list_tokens()])


@router.add(
    Operation(
        method="POST",
        path="/v1/acl/tokens",
        operation_id="aclCreateToken",
        access=Access.ADMIN,
        tag="acl",
        summary="Create a token with a role",
        body=Body(CREATE_BODY.json_schema(), "The new token's role and description."),
        replies=(_CREATED, BAD_REQUEST, TOO_LARGE, UNAVAILABLE, INTERNAL),
    )
)
async def create_token(state: ApiState, call: Call) -> Response:
    body = await read_json_body()
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object with a role")
    check(CREATE_BODY.json_schema(), body, "")
    description = body.get("description") or ""
    return await _create(state, parse_role(body["role"]), description, bootstrap=False)


@router.add(
    Operation(
        method="DELETE",
        path="/v1/acl/tokens/{token_id}",
        operation_id="aclDeleteToken",
        access=Access.ADMIN,
        tag="acl",
        summary="Delete a token: it stops working on every server",
        replies=(
            Reply(200, "The deleted token.", TOKEN.json_schema()),
            error_reply(404, "No such token."),
            UNAVAILABLE,
            INTERNAL,
        ),
    )
)
async def delete_token(state: ApiState, call: Call) -> Response:
    deleted = await state.deps.store.delete_token(call.path["token_id"])
    log.info("acl token deleted", id=deleted.id, role=deleted.role.value)
    return json_response(deleted.to_json())
