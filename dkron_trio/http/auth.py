"""ACL enforcement: the one place that decides whether a request may proceed.

With ``acl-enabled`` every request to an operation is checked before its handler runs,
against the `Access` its `Operation` declares: 401 without a token or with an unknown one,
403 when the token's role does not grant it. A token comes in ``X-Dkron-Token`` (Dkron Pro's
header), ``Authorization: Bearer``, or the UI's login cookie. The cookie is HttpOnly (page
scripts never see it) and SameSite=Strict (no other site's page can make the browser send
it), which is what lets the UI's own fetches and WebSockets carry it without a script
holding the token.

UI pages are checked here too: without a valid cookie they redirect to the login page.

A token is looked up in the local replica; if it is not there, once more after a
linearizable read, so a token created through another server works at once everywhere. A
deleted token may still pass on a lagging server until its replica applies the deletion.
"""

from collections.abc import Mapping
from urllib.parse import quote

from quart import Blueprint, Response, redirect, render_template, request, url_for, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers

from dkron_trio.acl import MAX_TOKEN_CHARS, Access, AclToken, hash_token
from dkron_trio.http.context import ApiDeps
from dkron_trio.http.errors import error_response
from dkron_trio.http.router import ApiState, Route

TOKEN_HEADER = "X-Dkron-Token"
COOKIE = "dkron_token"
"""The UI's login cookie."""
COOKIE_MAX_AGE = 12 * 3600
"""How long the UI stays logged in (seconds)."""
_OPEN_UI = frozenset({"ui.static", "ui_login.login", "ui_login.submit", "ui_login.logout"})


def presented_token(headers: Headers, cookies: Mapping[str, str]) -> str | None:
    """The token a request carries: header, then bearer, then the UI cookie."""
    token = headers.get(TOKEN_HEADER)
    if token:
        return token.strip()
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(COOKIE) or None


async def find_token(deps: ApiDeps, token: str) -> AclToken | None:
    """The stored token ``token`` is, or None."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    digest = hash_token(token)
    found = await deps.store.find_token(digest)
    if found is None:
        await deps.cluster.linearize()
        found = await deps.store.find_token(digest)
    return found


def _unauthorized(message: str) -> Response:
    response = error_response(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="dkron-trio"'
    return response


async def authorize(deps: ApiDeps, access: Access, token: str | None) -> Response | None:
    """None when a request with ``token`` may do what ``access`` guards; else the answer."""
    if access is Access.OPEN:
        return None
    if token is None:
        return _unauthorized(
            f"ACL token required: send it in the {TOKEN_HEADER} header or as Authorization: Bearer"
        )
    found = await find_token(deps, token)
    if found is None:
        return _unauthorized("unknown ACL token")
    if not found.role.may(access):
        return error_response(
            403, f"ACL token {found.id} has role {found.role.value}, which may not do this"
        )
    return None


def install_acl(app: QuartTrio, state: ApiState, routes: list[Route]) -> None:
    """Check every request and WebSocket against its operation's access, and add the UI's
    login pages. Call only when ACLs are enabled."""
    deps = state.deps
    access: dict[str, Access] = {}
    for route in routes:
        suffix = "_ws" if route.websocket else ""
        access[route.operation.operation_id + suffix] = route.operation.access
    app.register_blueprint(_login_blueprint(deps))

    @app.before_request
    async def check_request() -> Response | None:
        if request.method == "OPTIONS" or request.url_rule is None:
            return None  # CORS preflight, and 404/405 answered by the router
        endpoint = request.url_rule.endpoint
        token = presented_token(request.headers, request.cookies)
        needed = access.get(endpoint)
        if needed is not None:
            return await authorize(deps, needed, token)
        if not endpoint.startswith("ui.") or endpoint in _OPEN_UI:
            return None
        if token is None or await find_token(deps, token) is None:
            here = request.path
            if request.query_string:
                here += "?" + request.query_string.decode("latin-1")
            target = url_for("ui_login.login") + "?next=" + quote(here)
            return redirect(target)  # type: ignore[return-value]
        return None

    @app.before_websocket
    async def check_websocket() -> Response | None:
        if websocket.url_rule is None:
            return None
        needed = access.get(websocket.url_rule.endpoint, Access.ADMIN)
        return await authorize(deps, needed, presented_token(websocket.headers, websocket.cookies))

    @app.context_processor
    async def acl_flag() -> dict[str, bool]:
        return {"acl_enabled": True}


def _safe_next(target: str | None) -> str:
    """Where to go after login: a path on this server only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.dashboard")


def _login_blueprint(deps: ApiDeps) -> Blueprint:
    bp = Blueprint("ui_login", __name__, url_prefix="/ui", template_folder="ui/templates")

    @bp.get("/login")
    async def login() -> str:
        return await render_template(
            "ui/login.html", title="Log in", node_name=deps.node_name, error="",
            next=_safe_next(request.args.get("next")),
        )  # fmt: skip

    @bp.post("/login")
    async def submit() -> tuple[str, int] | Response:
        form = await request.form
        token = form.get("token", "").strip()
        target = _safe_next(form.get("next"))
        found = await find_token(deps, token) if token else None
        if found is None:
            page = await render_template(
                "ui/login.html", title="Log in", node_name=deps.node_name,
                error="That token is not known to this cluster.", next=target,
            )  # fmt: skip
            return page, 401
        response: Response = redirect(target)  # type: ignore[assignment]
        response.set_cookie(
            COOKIE,
            token,
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.scheme == "https",
        )
        return response

    @bp.get("/logout")
    async def logout() -> Response:
        response: Response = redirect(url_for("ui_login.login"))  # type: ignore[assignment]
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    return bp
