"""The gossip keyring, cluster-wide: list, install, use and remove encryption keys on every
live member (Serf's `keys` operations; Dkron has no API for them). Rotation without downtime:
install the new key, use it, remove the old one.

Each answer is the operation's report: who applied it, who refused and why, who did not
answer in time. A report with refusals or silent members still answers 200 with
``complete: false``: the operation ran and the report is the result. Bad input is a 400;
an operation this node refuses (removing the primary key, using a key not installed) or a
node without gossip encryption is a 409 and nothing was asked of anyone; a node without
gossip is a 501.
"""

from collections.abc import Mapping
from typing import Any

from quart import Response

from dkron_trio.acl import Access
from dkron_trio.gossip.config import KeyringError, parse_key
from dkron_trio.gossip.keyring_query import KeyringReport, KeyringUnavailable
from dkron_trio.gossip.messages import KeyOp
from dkron_trio.http.errors import ApiError, json_response
from dkron_trio.http.payload import read_json_body
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.schemas import Field, FieldType, ObjectSchema, check
from dkron_trio.http.spec import (
    BAD_REQUEST,
    INTERNAL,
    TOO_LARGE,
    Body,
    Operation,
    Reply,
    error_reply,
)
from dkron_trio.logs import get_logger

log = get_logger(__name__)
router = Router()

_STRING_LIST = FieldType.STRING_LIST
KEYRING_REPORT = ObjectSchema(
    "keyring_report",
    "The outcome of a keyring operation on every live member.",
    (
        Field("op", FieldType.STRING, "The operation: list, install, use or remove."),
        Field("complete", FieldType.BOOLEAN, "Every member asked applied it."),
        Field("asked", _STRING_LIST, "Live members asked, this node included."),
        Field("answered", _STRING_LIST, "Members that applied it."),
        Field("errors", FieldType.STRING_MAP, "Members that refused it, with their reason."),
        Field("missing", _STRING_LIST, "Members that did not answer in time."),
        Field(
            "keys",
            FieldType.OBJECT,
            "Installed keys (base64) and how many answering members hold each.",
        ),
        Field(
            "primary_keys",
            FieldType.OBJECT,
            "Primary keys (base64) and how many answering members seal with each.",
        ),
    ),
)
KEY_BODY = ObjectSchema(
    "keyring_key",
    "A gossip encryption key.",
    (Field("key", FieldType.STRING, "Base64 of 16, 24 or 32 bytes (`dkron-trio keygen`)."),),
    required=("key",),
)

_REFUSED = error_reply(409, "Refused by this node (nothing was asked of anyone), or gossip "
                       "encryption is not enabled on this node.")  # fmt: skip
_NO_GOSSIP = error_reply(501, "This agent runs without gossip.")
_REPORT = Reply(200, "The operation's report.", KEYRING_REPORT.json_schema())
_REPLIES = (_REPORT, _REFUSED, _NO_GOSSIP, INTERNAL)


def report_json(report: KeyringReport) -> dict[str, Any]:
    return {
        "op": report.op.name.lower(),
        "complete": report.complete,
        "asked": list(report.asked),
        "answered": list(report.answered),
        "errors": dict(report.errors),
        "missing": list(report.missing),
        "keys": dict(report.keys),
        "primary_keys": dict(report.primary_keys),
    }


async def _run(state: ApiState, op: KeyOp, key: bytes) -> Response:
    gossip = state.deps.gossip
    if gossip is None:
        raise ApiError(501, "keyring: this agent runs without gossip")
    try:
        report = await gossip.keyring(op, key)
    except (KeyringUnavailable, KeyringError) as exc:
        raise ApiError(409, f"keyring: {exc}") from None
    log.info("keyring operation through the API", op=op.name.lower(), complete=report.complete)
    return json_response(report_json(report))


async def _key_from_body() -> bytes:
    body = await read_json_body()
    if not isinstance(body, Mapping):
        raise ApiError(400, "body: must be a JSON object with a key")
    check(KEY_BODY.json_schema(), body, "")
    try:
        return parse_key(str(body["key"]))
    except KeyringError as exc:
        raise ApiError(400, str(exc)) from None


def _key_operation(method: str, op: KeyOp, summary: str) -> Operation:
    return Operation(
        method=method,
        path="/v1/keyring",
        operation_id=f"keyring{op.name.capitalize()}",
        access=Access.ADMIN,
        tag="members",
        summary=summary,
        body=Body(KEY_BODY.json_schema(), "The key."),
        replies=(_REPORT, BAD_REQUEST, _REFUSED, TOO_LARGE, _NO_GOSSIP, INTERNAL),
    )


@router.add(
    Operation(
        method="GET",
        path="/v1/keyring",
        operation_id="keyringList",
        access=Access.ADMIN,
        tag="members",
        summary="List the gossip keys installed on every live member",
        replies=_REPLIES,
    )
)
async def keyring_list(state: ApiState, call: Call) -> Response:
    return await _run(state, KeyOp.LIST, b"")


@router.add(_key_operation("POST", KeyOp.INSTALL, "Install a gossip key on every live member"))
async def keyring_install(state: ApiState, call: Call) -> Response:
    return await _run(state, KeyOp.INSTALL, await _key_from_body())


@router.add(_key_operation("PUT", KeyOp.USE, "Make an installed key the primary everywhere"))
async def keyring_use(state: ApiState, call: Call) -> Response:
    return await _run(state, KeyOp.USE, await _key_from_body())


@router.add(_key_operation("DELETE", KeyOp.REMOVE, "Remove a gossip key from every member"))
async def keyring_remove(state: ApiState, call: Call) -> Response:
    return await _run(state, KeyOp.REMOVE, await _key_from_body())
