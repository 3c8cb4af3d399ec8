"""``GET /metrics``: Prometheus' text format, when the agent runs with ``enable-prometheus``.

`install_request_metrics` counts every answer by method, matched route (the rule, e.g.
``/v1/jobs/<job_name>``, so that job names do not multiply the series) and status code.
"""

from quart import Response, request
from quart_trio import QuartTrio

from dkron_trio.acl import Access
from dkron_trio.http.errors import ApiError
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.spec import INTERNAL, Operation, Reply, error_reply
from dkron_trio.metrics import CONTENT_TYPE, Metrics

router = Router()


@router.add(
    Operation(
        method="GET",
        path="/metrics",
        operation_id="metrics",
        access=Access.READ,
        tag="default",
        summary="Metrics in Prometheus' text format (with enable-prometheus)",
        description=(
            "Executions by job and status, start lateness, missed ticks by reason, Raft term, "
            "commit and applied index and apply lag, gossip members by status, and API "
            "requests by method, route and status."
        ),
        replies=(
            Reply(
                200,
                "Prometheus text exposition format 0.0.4.",
                {"type": "string"},
                content_type="text/plain",
            ),
            error_reply(404, "Metrics are off: the agent runs without enable-prometheus."),
            INTERNAL,
        ),
    )
)
async def metrics(state: ApiState, call: Call) -> Response:
    found = state.deps.metrics
    if found is None:
        raise ApiError(404, "metrics are off: start the agent with enable-prometheus")
    return Response(found.exposition(), content_type=CONTENT_TYPE)


def install_request_metrics(app: QuartTrio, metrics: Metrics) -> None:
    """Count every answered request (after the error handlers turned errors into answers)."""

    @app.after_request
    async def count(response: Response) -> Response:
        rule = request.url_rule
        metrics.on_request(
            request.method, None if rule is None else rule.rule, response.status_code
        )
        return response
