"""Backup: a consistent image of this server's whole state, executions included.

``GET /v1/backup`` answers the local replica's state image (`ReplicaStore.snapshot_image`):
one read transaction, so it is consistent at the applied index it names in
``X-Dkron-Applied-Index``, and it is taken online while jobs run. On a follower the image
may lag the leader by the entries not applied there yet. Dkron has no such route (its FAQ
mentions one); ``dkron-trio backup FILE`` saves it.
"""

from quart import Response

from dkron_trio.acl import Access
from dkron_trio.http.errors import ApiError
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.spec import INTERNAL, Operation, Reply, error_reply
from dkron_trio.logs import get_logger

log = get_logger(__name__)
router = Router()

APPLIED_INDEX_HEADER = "X-Dkron-Applied-Index"


@router.add(
    Operation(
        method="GET",
        path="/v1/backup",
        operation_id="backup",
        access=Access.ADMIN,
        tag="default",
        summary="A consistent image of this server's whole state (jobs and executions)",
        replies=(
            Reply(
                200,
                "The state image (a SQLite database for a SQLite store).",
                {"type": "string", "format": "binary"},
                headers=(APPLIED_INDEX_HEADER,),
                content_type="application/octet-stream",
            ),
            error_reply(501, "This node keeps no state of its own (not a server)."),
            INTERNAL,
        ),
    )
)
async def backup(state: ApiState, call: Call) -> Response:
    image = state.deps.state_image
    if image is None:
        raise ApiError(501, "this node keeps no state image: ask a server")
    applied, data = await image()
    log.info("backup served", applied_index=applied, size=len(data))
    response = Response(data, mimetype="application/octet-stream")
    response.headers[APPLIED_INDEX_HEADER] = str(applied)
    response.headers["Content-Disposition"] = 'attachment; filename="dkron-trio-backup.db"'
    return response
