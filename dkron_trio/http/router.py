"""Registering handlers together with their `Operation`, and the state handlers share.

A handler is ``async def handler(state, call) -> Response``: ``call`` carries the path
parameters and the query already parsed and checked by the operation's parameters. Routers
are module-level (one per resource); `install` binds them to one app and its state.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio
from quart import Response, request
from quart_trio import QuartTrio

from dkron_trio.http.context import ApiDeps
from dkron_trio.http.spec import Operation


@attrs.define
class ApiState:
    """Per-app state: the agent's services, the OpenAPI document, the stop signal."""

    deps: ApiDeps
    stopping: trio.Event = attrs.field(factory=trio.Event)
    """Set when the server starts its graceful shutdown (long-lived handlers end then)."""
    document: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Call:
    """One request's path parameters and parsed query parameters."""

    path: Mapping[str, str]
    query: Mapping[str, object]

    def text(self, name: str) -> str:
        value = self.query[name]
        assert isinstance(value, str)
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.query[name]
        assert value is None or isinstance(value, str)
        return value

    def integer(self, name: str) -> int | None:
        value = self.query[name]
        assert value is None or isinstance(value, int)
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.query[name]
        assert value is None or isinstance(value, bool)
        return value

    def flag(self, name: str) -> bool:
        return self.boolean(name) is True

    def mapping(self, name: str) -> Mapping[str, str]:
        value = self.query[name]
        assert isinstance(value, dict)
        return value


Handler = Callable[[ApiState, Call], Awaitable[Response | None]]


@attrs.frozen
class Route:
    operation: Operation
    handler: Handler
    websocket: bool = False


@attrs.define
class Router:
    """The operations of one resource and their handlers."""

    _routes: list[Route] = attrs.field(factory=list)

    def add(self, operation: Operation, *, websocket: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append(Route(operation, handler, websocket))
            return handler

        return register

    def routes(self) -> list[Route]:
        return list(self._routes)


def install(app: QuartTrio, state: ApiState, routes: list[Route]) -> None:
    """Add every route to ``app``, each parsing its query before calling its handler."""
    for route in routes:
        operation, handler = route.operation, route.handler
        if route.websocket:
            app.add_websocket(
                operation.rule(),
                f"{operation.operation_id}_ws",
                _websocket_view(state, handler),
            )
        else:
            app.add_url_rule(
                operation.rule(),
                operation.operation_id,
                _view(state, operation, handler),
                methods=[operation.method],
                provide_automatic_options=False,
            )


def _view(state: ApiState, operation: Operation, handler: Handler) -> Callable[..., Any]:
    async def view(**path: str) -> Response | None:
        return await handler(state, Call(path, operation.parse_query(request.args)))

    return view


def _websocket_view(state: ApiState, handler: Handler) -> Callable[..., Any]:
    async def view(**path: str) -> Response | None:
        return await handler(state, Call(path, {}))

    return view
