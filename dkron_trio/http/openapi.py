"""The OpenAPI 3.1 document, generated from the registered operations and the schemas, and a
plain HTML rendering of it (no scripts, nothing fetched from elsewhere)."""

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dkron_trio.acl import Access, Role
from dkron_trio.http.router import Route
from dkron_trio.http.schemas import COMPONENTS
from dkron_trio.http.spec import FORBIDDEN, UNAUTHORIZED, Operation, Reply

OPENAPI_VERSION = "3.1.0"

DESCRIPTION = """\
Dkron's `/v1` API (same paths, parameters, bodies and status codes), served by every
dkron-trio server. Where Dkron is loose this API is precise:

* Every error answer is JSON `{"error": "..."}` naming the field or parameter at fault:
  400 invalid input (malformed JSON, wrong types, bad schedule or timezone, unknown
  executor, illegal name characters, bad query parameters), 404 unknown job or execution
  (and unknown paths), 405 wrong method, 409 conflicts (deleting a job that has dependent
  jobs; a run refused by `forbid`), 413 a body over the body limit (1 MiB by default),
  429 a client address over `http-rate-limit` (when set; with `Retry-After`), 503 paused
  or no cluster leader. A rejected request stores nothing.
* With `acl-enabled`, every operation but `/health`, this document and the ACL bootstrap
  needs a token in `X-Dkron-Token` (or `Authorization: Bearer`): 401 without one or with an
  unknown one, 403 when its role may not (`x-dkron-roles` lists the roles that may).
* Running a job answers 202 at once; the execution appears under `/executions` and can be
  followed live over a WebSocket, and cancelled.
* Create/update answers with the job as stored (after the merge rules), not as submitted.

Every answer carries `X-Whom: <node name>`; CORS is open to every origin; `?pretty` indents
the JSON; a trailing slash on any path is accepted.
"""

_HEADERS: Mapping[str, Mapping[str, Any]] = {
    "X-Total-Count": {
        "description": "How many items matched, before any paging.",
        "schema": {"type": "integer"},
    },
    "Location": {
        "description": "Where the job (or its executions) can be read.",
        "schema": {"type": "string"},
    },
    "X-Dkron-Applied-Index": {
        "description": "The Raft log index the state image reflects.",
        "schema": {"type": "integer"},
    },
}

_TAGS = (
    ("jobs", "Jobs: create, update, list, run, toggle, delete, restore."),
    ("executions", "Executions of a job, live output, cancel, missed ticks."),
    ("members", "Cluster members."),
    ("default", "This node: status, leadership, busy, pause, leave, health."),
    ("docs", "This document."),
    ("acl", "ACL tokens (with acl-enabled): bootstrap, create, list, delete."),
)


def _reply(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        out["content"] = {reply.content_type: {"schema": dict(reply.schema)}}
    if reply.headers:
        out["headers"] = {name: dict(_HEADERS[name]) for name in reply.headers}
    return out


def _operation(op: Operation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in op.path_params()
    ]
    params += [param.openapi() for param in op.all_query()]
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "description": op.body.description,
            "content": {op.body.content_type: {"schema": dict(op.body.schema)}},
        }
    replies = op.replies
    if op.access is not Access.OPEN:
        out["security"] = [{name: []} for name in _SECURITY_SCHEMES]
        roles = [role.value for role in Role if role.may(op.access)]
        out["x-dkron-roles"] = roles
        replies = (*replies, UNAUTHORIZED, FORBIDDEN)
    out["responses"] = {str(r.status): _reply(r) for r in replies}
    return out


_SECURITY_SCHEMES: Mapping[str, Mapping[str, str]] = {
    "dkronToken": {"type": "apiKey", "in": "header", "name": "X-Dkron-Token"},
    "bearerToken": {"type": "http", "scheme": "bearer"},
}
"""Either carries an ACL token; each operation lists both as alternatives (only checked
when the server runs with ``acl-enabled``)."""


def build_openapi(routes: Iterable[Route], version: str) -> dict[str, Any]:
    """The document for these routes (an operation registered twice, HTTP and WebSocket,
    appears once)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = route.operation
        paths.setdefault(op.path, {}).setdefault(op.method.lower(), _operation(op))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "dkron-trio API", "version": version, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": [{"name": name, "description": text} for name, text in _TAGS],
        "paths": paths,
        "components": {
            "schemas": {k: dict(v) for k, v in COMPONENTS.items()},
            "securitySchemes": {k: dict(v) for k, v in _SECURITY_SCHEMES.items()},
        },
    }


# ---- HTML ---------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.op{border:1px solid #ddd;border-radius:4px;margin:1em 0;padding:.5em 1em}
.m{display:inline-block;min-width:5em;font-weight:bold}
code,.p{font-family:ui-monospace,monospace}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _type_text(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    kind = schema.get("type", "")
    if kind == "array" and "items" in schema:
        return f"array of {_type_text(schema['items'])}"
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + ", ".join(json.dumps(v) for v in schema["enum"])
    return _e(text)


def _rows(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _operation_html(method: str, path: str, op: Mapping[str, Any]) -> str:
    parts = [
        f'<div class="op"><div><span class="m">{_e(method.upper())}</span>'
        f'<span class="p">{_e(path)}</span></div><p>{_e(op["summary"])}</p>'
    ]
    if "description" in op:
        parts.append(f"<p>{_e(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        parts.append(
            _rows(
                ("parameter", "in", "type", "description"),
                (
                    (
                        f"<code>{_e(p['name'])}</code>",
                        _e(p["in"]),
                        _type_text(p["schema"]),
                        _e(p.get("description", "")),
                    )
                    for p in params
                ),
            )
        )
    if "requestBody" in op:
        for ctype, media in op["requestBody"]["content"].items():
            parts.append(f"<p>Body ({_e(ctype)}): {_type_text(media['schema'])}</p>")
    rows = []
    for status, reply in op["responses"].items():
        content = reply.get("content", {})
        shape = "".join(_type_text(m["schema"]) for m in content.values())
        rows.append((_e(status), _e(reply["description"]), shape))
    parts.append(_rows(("status", "meaning", "body"), rows))
    parts.append("</div>")
    return "".join(parts)


def _schema_html(name: str, schema: Mapping[str, Any]) -> str:
    props: Mapping[str, Any] = schema.get("properties", {})
    rows = (
        (
            f"<code>{_e(key)}</code>",
            _type_text(prop),
            _e(json.dumps(prop["default"])) if "default" in prop else "",
            _e(prop.get("description", "")) + (" (read-only)" if prop.get("readOnly") else ""),
        )
        for key, prop in props.items()
    )
    return (
        f'<h3 id="schema-{_e(name)}">{_e(name)}</h3><p>{_e(schema.get("description", ""))}</p>'
        + _rows(("field", "type", "default", "description"), rows)
    )


def docs_html(document: Mapping[str, Any]) -> str:
    """A readable page of the whole document."""
    info = document["info"]
    sections = []
    for tag in document["tags"]:
        ops = [
            _operation_html(method, path, op)
            for path, methods in document["paths"].items()
            for method, op in methods.items()
            if tag["name"] in op["tags"]
        ]
        if ops:
            sections.append(f"<h2>{_e(tag['name'])}</h2><p>{_e(tag['description'])}</p>")
            sections.extend(ops)
    schemas = document["components"]["schemas"]
    sections.append("<h2>Schemas</h2>")
    sections.extend(_schema_html(name, schema) for name, schema in schemas.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(info['title'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(info['title'])} {_e(info['version'])}</h1>"
        f"<pre>{_e(info['description'])}</pre>"
        '<p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a></p>'
        + "".join(sections)
        + "</body></html>"
    )
