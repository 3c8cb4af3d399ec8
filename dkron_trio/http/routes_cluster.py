"""This node and the cluster: health, status, members, leader, leave, busy, pause."""

from quart import Response

from dkron_trio.acl import Access
from dkron_trio.http.context import MemberStatus
from dkron_trio.http.errors import ApiError, json_response
from dkron_trio.http.payload import with_live_output
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.schemas import EXECUTION, HEALTH, MEMBER, PAUSE, STATUS, array_of, ref
from dkron_trio.http.spec import INTERNAL, Operation, Reply, error_reply
from dkron_trio.logs import get_logger

log = get_logger(__name__)
router = Router()

_PAUSE_NOTE = (
    "While paused, this node refuses job creates and updates (POST/PATCH/PUT /v1/jobs, "
    "/v1/restore) and manual runs without ?force=true with 503, and records every scheduled "
    "tick as missed with reason paused. Toggle, delete and reads still work. Like Dkron's, "
    "the pause is in memory on this node only and ends with a restart."
)


@router.add(
    Operation(
        method="GET",
        path="/health",
        operation_id="health",
        access=Access.OPEN,
        tag="default",
        summary="Liveness: the process answers HTTP",
        replies=(Reply(200, "Healthy.", ref(HEALTH)),),
    )
)
async def health(state: ApiState, call: Call) -> Response:
    return json_response({"status": "healthy"})


@router.add(
    Operation(
        method="GET",
        path="/v1",
        operation_id="status",
        access=Access.READ,
        tag="default",
        summary="This node's status (also at /v1/)",
        replies=(Reply(200, "The status.", ref(STATUS)), INTERNAL),
    )
)
async def status(state: ApiState, call: Call) -> Response:
    deps = state.deps
    members = deps.cluster.members()

    def count(kind: MemberStatus) -> str:
        return str(sum(1 for m in members if m.status is kind))

    return json_response(
        {
            "agent": {"name": deps.node_name, "version": deps.version},
            "serf": {
                "members": str(len(members)),
                "failed": count(MemberStatus.FAILED),
                "left": count(MemberStatus.LEFT),
            },
            "tags": dict(deps.node_tags),
        }
    )


@router.add(
    Operation(
        method="GET",
        path="/v1/members",
        operation_id="getMember",
        access=Access.READ,
        tag="members",
        summary="List the cluster's members",
        replies=(
            Reply(200, "The members.", array_of(MEMBER), headers=("X-Total-Count",)),
            INTERNAL,
        ),
    )
)
async def members(state: ApiState, call: Call) -> Response:
    found = state.deps.cluster.members()
    return json_response([m.to_json() for m in found], headers={"X-Total-Count": str(len(found))})


@router.add(
    Operation(
        method="GET",
        path="/v1/leader",
        operation_id="getLeader",
        access=Access.READ,
        tag="default",
        summary="The leader's member object",
        replies=(
            Reply(200, "The leader.", ref(MEMBER)),
            error_reply(404, "There is no leader right now."),
            INTERNAL,
        ),
    )
)
async def leader(state: ApiState, call: Call) -> Response:
    found = state.deps.cluster.leader()
    if found is None:
        raise ApiError(404, "no cluster leader")
    return json_response(found.to_json())


@router.add(
    Operation(
        method="GET",
        path="/v1/isleader",
        operation_id="getIsLeader",
        access=Access.READ,
        tag="default",
        summary="Whether this node leads (usable as a load balancer check)",
        replies=(
            Reply(200, 'Node is the leader: "I am a leader".', {"type": "string"}),
            Reply(404, 'Node is a follower: "I am a follower".', {"type": "string"}),
        ),
    )
)
async def is_leader(state: ApiState, call: Call) -> Response:
    if state.deps.cluster.is_leader():
        return json_response("I am a leader")
    return json_response("I am a follower", 404)


@router.add(
    Operation(
        method="POST",
        path="/v1/leave",
        operation_id="leave",
        access=Access.ADMIN,
        tag="default",
        summary="Stop this agent gracefully (leave the cluster)",
        description="Answers with the members known before leaving, then shuts down as on "
        "SIGTERM: scheduling stops, running executions get a grace period.",
        replies=(Reply(200, "The known members.", array_of(MEMBER)), INTERNAL),
    )
)
async def leave(state: ApiState, call: Call) -> Response:
    found = state.deps.cluster.members()
    log.info("leave requested through the API")
    state.deps.request_leave()
    return json_response([m.to_json() for m in found])


@router.add(
    Operation(
        method="GET",
        path="/v1/busy",
        operation_id="busy",
        access=Access.READ,
        tag="default",
        summary="Running executions of the whole cluster, oldest first, with output so far",
        replies=(
            Reply(200, "The running executions.", array_of(EXECUTION), headers=("X-Total-Count",)),
            INTERNAL,
        ),
    )
)
async def busy(state: ApiState, call: Call) -> Response:
    """Cluster-wide: every execution the replicated state shows running, with the output
    this server has seen of it (all of it for the runs it ordered or runs itself)."""
    deps = state.deps
    stored = await deps.store.running_executions()
    running = sorted(with_live_output(deps, stored), key=lambda ex: (ex.started_at, ex.id))
    return json_response(
        [ex.to_json() for ex in running], headers={"X-Total-Count": str(len(running))}
    )


def _paused(state: ApiState) -> Response:
    return json_response({"paused": state.deps.scheduler.paused})


@router.add(
    Operation(
        method="GET",
        path="/v1/pause",
        operation_id="pauseStatus",
        access=Access.READ,
        tag="default",
        summary="Whether this node is paused",
        description=_PAUSE_NOTE,
        replies=(Reply(200, "The pause state.", ref(PAUSE)),),
    )
)
async def pause_status(state: ApiState, call: Call) -> Response:
    return _paused(state)


@router.add(
    Operation(
        method="POST",
        path="/v1/pause",
        operation_id="pause",
        access=Access.ADMIN,
        tag="default",
        summary="Pause job submissions and scheduled runs on this node",
        description=_PAUSE_NOTE,
        replies=(Reply(200, "Paused.", ref(PAUSE)),),
    )
)
async def pause(state: ApiState, call: Call) -> Response:
    state.deps.scheduler.set_paused(True)
    log.info("paused through the API")
    return _paused(state)


@router.add(
    Operation(
        method="POST",
        path="/v1/unpause",
        operation_id="unpause",
        access=Access.ADMIN,
        tag="default",
        summary="End the pause",
        replies=(Reply(200, "Not paused.", ref(PAUSE)),),
    )
)
async def unpause(state: ApiState, call: Call) -> Response:
    state.deps.scheduler.set_paused(False)
    log.info("unpaused through the API")
    return _paused(state)
