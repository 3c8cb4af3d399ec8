"""Operations described as data: path, method, query parameters and answers.

Each handler is registered together with its `Operation`; the router parses and checks the
query string with the operation's own `QueryParam`s before the handler runs, and the OpenAPI
document is generated from the same operations. So what the document says a parameter
accepts is exactly what the server accepts.
"""

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

import attrs

from dkron_trio.acl import Access
from dkron_trio.http.schemas import ERROR, ref
from dkron_trio.job import ValidationError

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_TRUE = frozenset({"1", "t", "true", "yes"})
_FALSE = frozenset({"0", "f", "false", "no"})


class ParamKind(Enum):
    """How a query parameter is written and what it means."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    """true/false (also 1/0, t/f, yes/no); an empty value means true."""
    PRESENCE = "presence"
    """True when present, whatever its value (Dkron's ``runoncreate`` and ``pretty``)."""
    MAP = "map"
    """``name[key]=value`` pairs, repeatable (Dkron's ``metadata[k]=v``)."""


@attrs.frozen
class QueryParam:
    """One query parameter: its parsing rules, which are also its OpenAPI description."""

    name: str
    kind: ParamKind
    description: str
    choices: tuple[str, ...] = ()
    """Allowed values, compared case-insensitively (STRING only)."""
    minimum: int | None = None
    maximum: int | None = None
    default: str | int | bool | None = None

    def parse(self, args: Mapping[str, str]) -> object:
        """This parameter's value from the query arguments (the default when absent)."""
        if self.kind is ParamKind.MAP:
            prefix = f"{self.name}["
            return {
                key[len(prefix) : -1]: value
                for key, value in args.items()
                if key.startswith(prefix) and key.endswith("]")
            }
        if self.kind is ParamKind.PRESENCE:
            return self.name in args
        raw = args.get(self.name)
        if raw is None:
            return self.default
        if self.kind is ParamKind.BOOLEAN:
            return self._boolean(raw)
        if self.kind is ParamKind.INTEGER:
            return self._integer(raw)
        return self._string(raw)

    def _boolean(self, raw: str) -> bool:
        text = raw.strip().lower()
        if text == "" or text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValidationError(self.name, f"must be true or false, got {raw!r}")

    def _integer(self, raw: str) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise ValidationError(self.name, f"must be an integer, got {raw!r}")
        value = int(text)
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(self.name, f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(self.name, f"must be at most {self.maximum}")
        return value

    def _string(self, raw: str) -> str:
        if not self.choices:
            return raw
        for choice in self.choices:
            if raw.lower() == choice.lower():
                return choice
        allowed = ", ".join(self.choices)
        raise ValidationError(self.name, f"must be one of {allowed}, got {raw!r}")

    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any]
        out: dict[str, Any] = {"name": self.name, "in": "query", "required": False}
        if self.kind is ParamKind.MAP:
            schema = {"type": "object", "additionalProperties": {"type": "string"}}
            out.update(style="deepObject", explode=True)
        elif self.kind is ParamKind.PRESENCE:
            schema = {"type": "boolean"}
            out["allowEmptyValue"] = True
        else:
            schema = {"type": self.kind.value}
            if self.kind is ParamKind.BOOLEAN:
                out["allowEmptyValue"] = True
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.default is not None:
            schema["default"] = self.default
        out["description"] = self.description
        out["schema"] = schema
        return out


PRETTY = QueryParam(
    "pretty", ParamKind.PRESENCE, "Present (any value): indent the JSON answer for people."
)
"""Accepted by every operation."""


@attrs.frozen
class Reply:
    """One documented answer of an operation."""

    status: int
    description: str
    schema: Mapping[str, Any] | None = None
    headers: tuple[str, ...] = ()
    content_type: str = "application/json"


def error_reply(status: int, description: str) -> Reply:
    """A documented error answer: JSON ``{"error": ...}``."""
    return Reply(status, description, ref(ERROR))


BAD_REQUEST = error_reply(400, "Invalid input; the error names the field or parameter.")
NOT_FOUND = error_reply(404, "No such job.")
TOO_LARGE = error_reply(413, "The request body is larger than the body limit (1 MiB by default).")
INTERNAL = error_reply(500, "Internal error.")
UNAVAILABLE = error_reply(503, "Paused (POST /v1/pause) or no cluster leader.")
UNAUTHORIZED = error_reply(401, "ACLs are on and no token, or an unknown one, was sent.")
FORBIDDEN = error_reply(403, "The token's role may not do this.")


@attrs.frozen
class Body:
    """A request body: its media type and schema."""

    schema: Mapping[str, Any]
    description: str
    content_type: str = "application/json"


@attrs.frozen(kw_only=True)
class Operation:
    """One method on one path, as both the router and the OpenAPI document see it."""

    method: str
    path: str
    """OpenAPI path template, e.g. ``/v1/jobs/{job_name}``."""
    operation_id: str
    tag: str
    access: Access
    """What a token must grant when ACLs are on (checked once, in `dkron_trio.http.auth`)."""
    summary: str
    description: str = ""
    query: tuple[QueryParam, ...] = ()
    body: Body | None = None
    replies: tuple[Reply, ...]

    def rule(self) -> str:
        """The Quart URL rule for the path (``{job_name}`` -> ``<job_name>``)."""
        return _PATH_PARAM.sub(r"<\1>", self.path)

    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    def all_query(self) -> tuple[QueryParam, ...]:
        return (*self.query, PRETTY)

    def parse_query(self, args: Mapping[str, str]) -> dict[str, object]:
        """Parse and check every declared parameter; unknown parameters are ignored."""
        return {param.name: param.parse(args) for param in self.query}
