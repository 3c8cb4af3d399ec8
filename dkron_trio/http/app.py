"""The Quart-Trio application: routes, JSON errors, and Dkron's cross-cutting behaviour.

Cross-cutting, for every answer: ``X-Whom: <node name>``, open CORS (preflight ``OPTIONS``
answered for any path), ``?pretty`` indentation, trailing slashes tolerated, bodies over the
limit refused with 413, and (with a rate limit set) a client address over its rate answered
429 with ``Retry-After``.
"""

import math

import trio
from quart import Response, request
from quart_trio import QuartTrio

from dkron_trio.http import (
    routes_acl,
    routes_backup,
    routes_cluster,
    routes_docs,
    routes_executions,
    routes_jobs,
    routes_keyring,
    routes_metrics,
)
from dkron_trio.http.auth import install_acl
from dkron_trio.http.context import ApiDeps
from dkron_trio.http.errors import error_response, install_error_handlers
from dkron_trio.http.openapi import build_openapi
from dkron_trio.http.ratelimit import RateLimiter
from dkron_trio.http.router import ApiState, Route, install
from dkron_trio.http.ui.routes import install_ui

ROUTERS = (
    routes_cluster.router,
    routes_jobs.router,
    routes_executions.router,
    routes_keyring.router,
    routes_docs.router,
    routes_backup.router,
    routes_metrics.router,
    routes_acl.router,
)

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "X-Total-Count, Location, X-Whom, Content-Length",
}
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Max-Age": "86400",
}


def all_routes() -> list[Route]:
    return [route for router in ROUTERS for route in router.routes()]


class ApiApp(QuartTrio):
    """The API app with its state attached (the server reads ``state.stopping``)."""

    def __init__(self, state: ApiState) -> None:
        super().__init__("dkron_trio.http")
        self.state = state


def create_app(deps: ApiDeps) -> ApiApp:
    routes = all_routes()
    state = ApiState(deps, document=build_openapi(routes, deps.version))
    app = ApiApp(state)
    app.config["MAX_CONTENT_LENGTH"] = deps.body_limit
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    install(app, state, routes)
    install_ui(app, state)
    if deps.acl_enabled:
        install_acl(app, state, routes)
    install_error_handlers(app, deps.body_limit)
    if deps.metrics is not None:
        routes_metrics.install_request_metrics(app, deps.metrics)
    whom = deps.node_name
    if deps.rate_limit > 0:
        install_rate_limit(app, deps.rate_limit, deps.rate_burst or 2 * deps.rate_limit)

    @app.before_request
    async def preflight() -> Response | None:
        if request.method != "OPTIONS":
            return None
        headers = dict(_PREFLIGHT)
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "*"
        )
        return Response(b"", status=204, headers=headers)

    @app.after_request
    async def common_headers(response: Response) -> Response:
        response.headers["X-Whom"] = whom
        response.headers.update(_CORS)
        return response

    return app


def install_rate_limit(app: QuartTrio, rate: float, burst: float) -> None:
    """Answer 429 to a client address over `rate` requests per second (after `burst`)."""
    limiter = RateLimiter(rate, max(1.0, burst))

    @app.before_request
    async def rate_limit() -> Response | None:
        wait = limiter.admit(request.remote_addr or "", trio.current_time())
        if not wait:
            return None
        response = error_response(
            429, f"rate limit exceeded: {rate:g} requests per second per client address"
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
