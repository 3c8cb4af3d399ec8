"""The OpenAPI document and its HTML rendering."""

from quart import Response

from dkron_trio.acl import Access
from dkron_trio.http.errors import json_response
from dkron_trio.http.openapi import docs_html
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.spec import Operation, Reply

router = Router()


@router.add(
    Operation(
        method="GET",
        path="/v1/openapi.json",
        operation_id="openapi",
        access=Access.OPEN,
        tag="docs",
        summary="This API's OpenAPI 3.1 document",
        replies=(Reply(200, "The document.", {"type": "object"}),),
    )
)
async def openapi(state: ApiState, call: Call) -> Response:
    return json_response(state.document)


@router.add(
    Operation(
        method="GET",
        path="/v1/docs",
        operation_id="docs",
        access=Access.OPEN,
        tag="docs",
        summary="The OpenAPI document as a web page",
        replies=(Reply(200, "HTML.", {"type": "string"}, content_type="text/html"),),
    )
)
async def docs(state: ApiState, call: Call) -> Response:
    return Response(docs_html(state.document), mimetype="text/html")
