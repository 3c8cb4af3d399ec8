"""The OpenAPI document: complete, true to the model and to the server's answers, and in
agreement with Dkron's own openapi.yaml wherever both describe the same operation."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.exceptions import MethodNotAllowed, NotFound

from dkron_trio.execution import MissedTick, MissReason
from dkron_trio.http.app import all_routes
from dkron_trio.http.context import Member
from dkron_trio.http.schemas import COMPONENTS, EXECUTION, JOB, MEMBER, MISSED_TICK, check
from dkron_trio.job import Job
from tests.http.harness import T0, Api

DKRON_OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "dkron-openapi.yaml"

ONLY_IN_DKRON = {
    ("get", "/stats"): "daily execution statistics: not implemented (yet)",
    ("get", "/acl/policies/{name}"): "ACL policies are a Dkron Pro feature",
    ("post", "/acl/policies/{name}"): "ACL policies are a Dkron Pro feature",
    ("delete", "/acl/policies/{name}"): "ACL policies are a Dkron Pro feature",
}
"""Operations of Dkron's document that dkron-trio deliberately does not have."""

PLAIN_TEXT_ERRORS = "Dkron documents error bodies as text/plain; ours are JSON {'error': ...}"
"""Where Dkron's answer is text/plain, ours is JSON: the bodies are not compared."""

RELAXED_REQUIRED = {("job", "schedule"): "schedule is optional for child jobs (parent_job set)"}
"""Properties Dkron's schemas require that ours do not."""


async def _document(api: Api) -> dict[str, Any]:
    status, document = await api.json("GET", "/v1/openapi.json")
    assert status == 200
    return document  # type: ignore[no-any-return]


# ---- our own document ---------------------------------------------------------------------


async def test_document_lists_every_route_and_every_operation_is_routed(api: Api) -> None:
    document = await _document(api)
    assert document["openapi"] == "3.1.0"
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    registered = {(r.operation.method.lower(), r.operation.path) for r in all_routes()}
    assert documented == registered
    adapter = api.app.url_map.bind("localhost")
    for route in all_routes():
        op = route.operation
        concrete = op.path.replace("{job_name}", "job1").replace("{execution}", "1-node1")
        if route.websocket:
            endpoint, _ = adapter.match(concrete, websocket=True)
        else:
            endpoint, _ = adapter.match(concrete, method=op.method)
            assert endpoint == op.operation_id
    with pytest.raises(MethodNotAllowed):
        adapter.match("/v1/jobs", method="DELETE")
    with pytest.raises(NotFound):
        adapter.match("/v1/nothing", method="GET")


def test_schemas_have_exactly_the_models_fields() -> None:
    job = Job(name="x")
    member = Member("n", "127.0.0.1", 8946, {})
    missed = MissedTick("x", T0, MissReason.PAUSED, T0)
    assert JOB.field_names() == list(job.to_json())
    assert MEMBER.field_names() == list(member.to_json())
    assert MISSED_TICK.field_names() == list(missed.to_json())
    props = COMPONENTS["execution"]["properties"]
    assert list(props) == EXECUTION.field_names()


def test_job_defaults_come_from_the_model() -> None:
    props = COMPONENTS["job"]["properties"]
    wire = Job(name="x").to_json()
    for name, prop in props.items():
        if "default" in prop:
            assert prop["default"] == wire[name], name
    assert props["concurrency"]["default"] == "allow"
    assert props["retention_count"]["default"] == 100


def test_every_wire_job_passes_the_job_schema() -> None:
    job = Job.from_json(
        {"name": "x", "schedule": "@every 1m", "executor": "shell",
         "executor_config": {"command": "true"}, "timeout": "5m", "tags": {"a": "b"}},
        now=T0,
    )  # fmt: skip
    check(COMPONENTS["job"], job.to_json(), "", COMPONENTS)


async def test_docs_page_renders_everything_without_scripts(api: Api) -> None:
    response = await api.client.get("/v1/docs/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    for route in all_routes():
        assert route.operation.path in page
    for name in COMPONENTS:
        assert f'id="schema-{name}"' in page
    assert "<script" not in page
    assert "src=" not in page


# ---- the server answers as documented -----------------------------------------------------


class _Documented:
    """Checks answers against the document: the status is documented for the operation and
    the JSON body matches the documented schema."""

    def __init__(self, api: Api, document: dict[str, Any]) -> None:
        self._api = api
        self._document = document
        self._adapter = api.app.url_map.bind("localhost")
        self._by_id = {
            op["operationId"]: op for ops in document["paths"].values() for op in ops.values()
        }
        self.seen: set[tuple[str, int]] = set()

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self._api.client.open(path, method=method, **kwargs)
        endpoint, _ = self._adapter.match(path.split("?", maxsplit=1)[0], method=method)
        op = self._by_id[endpoint]
        reply = op["responses"].get(str(response.status_code))
        assert reply is not None, f"{method} {path}: {response.status_code} is not documented"
        body = json.loads(await response.get_data()) if reply.get("content") else None
        content = reply.get("content", {}).get("application/json")
        if content is not None:
            check(content["schema"], body, "", self._document["components"]["schemas"])
        for header in reply.get("headers", {}):
            assert header in response.headers, f"{method} {path}: no {header}"
        self.seen.add((endpoint, response.status_code))
        return response.status_code, body


async def test_answers_match_the_document(api: Api) -> None:
    doc = _Documented(api, await _document(api))
    job = {"name": "job1", "schedule": "@every 1h", "executor": "shell",
           "executor_config": {"command": "true"}}  # fmt: skip
    assert (await doc.call("POST", "/v1/jobs", json=job))[0] == 201
    assert (await doc.call("PATCH", "/v1/jobs", json=job))[0] == 201
    assert (await doc.call("PUT", "/v1/jobs/job1", json=job))[0] == 201
    assert (await doc.call("POST", "/v1/jobs", json=job | {"name": "Bad"}))[0] == 400
    child = job | {"name": "child", "parent_job": "job1", "schedule": ""}
    assert (await doc.call("POST", "/v1/jobs", json=child | {"parent_job": "ghost"}))[0] == 404
    assert (await doc.call("POST", "/v1/jobs", json=child))[0] == 201
    assert (await doc.call("GET", "/v1/jobs?_sort=next&_order=DESC"))[0] == 200
    assert (await doc.call("GET", "/v1/jobs?_sort=nope"))[0] == 400
    assert (await doc.call("GET", "/v1/jobs/job1"))[0] == 200
    assert (await doc.call("GET", "/v1/jobs/nope"))[0] == 404
    assert (await doc.call("POST", "/v1/jobs/job1"))[0] == 202
    assert (await doc.call("POST", "/v1/jobs/nope/run"))[0] == 404
    status, executions = await doc.call("GET", "/v1/jobs/job1/executions")
    assert status == 200
    execution_path = f"/v1/jobs/job1/executions/{executions[0]['id']}"
    assert (await doc.call("GET", execution_path))[0] == 200
    assert (await doc.call("GET", "/v1/jobs/job1/executions/1-x"))[0] == 404
    assert (await doc.call("POST", "/v1/jobs/job1/executions/1-x/cancel"))[0] == 404
    assert (await doc.call("GET", "/v1/jobs/job1/missed"))[0] == 200
    assert (await doc.call("POST", "/v1/jobs/job1/toggle"))[0] == 200
    assert (await doc.call("DELETE", "/v1/jobs/job1"))[0] == 409
    assert (await doc.call("DELETE", "/v1/jobs/job1/executions"))[0] == 200
    for path in ("/health", "/v1", "/v1/members", "/v1/leader", "/v1/isleader", "/v1/busy"):
        assert (await doc.call("GET", path))[0] == 200
    assert (await doc.call("GET", "/v1/pause"))[0] == 200
    assert (await doc.call("POST", "/v1/pause"))[0] == 200
    assert (await doc.call("POST", "/v1/jobs", json=job))[0] == 503
    assert (await doc.call("POST", "/v1/unpause"))[0] == 200
    assert (await doc.call("DELETE", "/v1/jobs/child"))[0] == 200
    assert (await doc.call("GET", "/v1/openapi.json"))[0] == 200
    assert (await doc.call("POST", "/v1/leave"))[0] == 200
    assert len(doc.seen) >= 30


# ---- agreement with Dkron's document --------------------------------------------------------


def _dkron() -> dict[str, Any]:
    if not DKRON_OPENAPI.exists():
        pytest.skip(f"Dkron's OpenAPI document is not at {DKRON_OPENAPI}")
    document: dict[str, Any] = yaml.safe_load(DKRON_OPENAPI.read_text())
    return document


def _our_path(dkron_path: str) -> str:
    return "/v1" if dkron_path == "/" else "/v1" + dkron_path


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set()
    return {kind} if isinstance(kind, str) else set(kind)


def _assert_compatible(
    theirs: dict[str, Any], dkron: dict[str, Any], ours: dict[str, Any], ours_doc: dict[str, Any],
    where: str,
) -> None:  # fmt: skip
    """Every type and property Dkron documents is there in ours with a compatible type."""
    t = _resolve(theirs, dkron)
    o = _resolve(ours, ours_doc)
    name = theirs.get("$ref", "").rsplit("/", 1)[-1]
    assert _types(t) <= _types(o) | ({"string"} if "enum" in o else set()), where
    for required in t.get("required", []):
        if (name, required) not in RELAXED_REQUIRED:
            assert required in o.get("required", []), f"{where}: {required} not required"
    for prop, sub in t.get("properties", {}).items():
        assert prop in o.get("properties", {}), f"{where}: no property {prop}"
        _assert_compatible(sub, dkron, o["properties"][prop], ours_doc, f"{where}.{prop}")
    if "items" in t:
        _assert_compatible(t["items"], dkron, o["items"], ours_doc, f"{where}[]")


def _overlap(dkron: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    pairs = []
    for path, operations in dkron["paths"].items():
        for method, theirs in operations.items():
            if (method, path) in ONLY_IN_DKRON:
                assert _our_path(path) not in ours["paths"] or method not in ours["paths"].get(
                    _our_path(path), {}
                ), f"{method} {path} is listed as missing but exists"
                continue
            mine = ours["paths"].get(_our_path(path), {}).get(method)
            assert mine is not None, f"{method.upper()} {path} of Dkron's API is missing"
            pairs.append((method, path, theirs, mine))
    return pairs


async def test_agrees_with_dkrons_openapi(api: Api) -> None:
    dkron = _dkron()
    ours = await _document(api)
    pairs = _overlap(dkron, ours)
    assert len(pairs) == 20
    for method, path, theirs, mine in pairs:
        where = f"{method.upper()} {path}"
        assert mine["operationId"] == theirs["operationId"], where
        our_params = {(p["name"], p["in"]) for p in mine["parameters"]}
        dkron_params = {(p["name"], p["in"]) for p in theirs.get("parameters", [])}
        assert dkron_params <= our_params, f"{where}: {dkron_params - our_params}"
        assert set(theirs["responses"]) <= set(mine["responses"]), where
        for status, reply in theirs["responses"].items():
            for ctype, media in reply.get("content", {}).items():
                if ctype == "text/plain":
                    assert "application/json" in mine["responses"][status]["content"], (
                        PLAIN_TEXT_ERRORS
                    )
                    continue
                our_media = mine["responses"][status]["content"][ctype]
                _assert_compatible(
                    media["schema"], dkron, our_media["schema"], ours, f"{where} {status}"
                )
        if "requestBody" in theirs:
            for ctype, media in theirs["requestBody"]["content"].items():
                our_media = mine["requestBody"]["content"][ctype]
                _assert_compatible(media["schema"], dkron, our_media["schema"], ours, where)


def test_deliberate_differences_are_still_real() -> None:
    dkron = _dkron()
    for method, path in ONLY_IN_DKRON:
        assert method in dkron["paths"][path]
    assert "schedule" in dkron["components"]["schemas"]["job"]["required"]
