"""Notification templates: Dkron's ``{{.Name}}`` placeholders, rendered JSON-safely.

Dkron renders ``webhook-payload`` and ``mail-payload`` with Go's text/template and does not
escape anything, so an output holding a quote breaks a JSON payload. Here a template is
parsed once (unknown variables and Go actions are configuration errors) and rendered in one
of two modes: ``TEXT`` substitutes values as they are; ``JSON`` escapes a value placed inside
a JSON string and writes a value placed outside one as a JSON string literal, so the result
is always valid JSON when the template is.
"""

import json
import re
from collections.abc import Mapping
from enum import Enum

import attrs

VARIABLES = (
    "Report",
    "JobName",
    "ReportingNode",
    "StartTime",
    "FinishedAt",
    "Success",
    "NodeName",
    "Output",
    "Events",
)
"""Dkron's template variables (``dkron/notifier.go``), plus ``Events``: the events of the
run (``failure``, ``state_change``, ... see `dkron_trio.notify.targets`), comma-separated."""

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_VARIABLE = re.compile(r"^\.([A-Za-z]+)$")


class TemplateError(ValueError):
    """A template that cannot be rendered: names the problem."""


class Mode(Enum):
    TEXT = "text"
    JSON = "json"


@attrs.frozen
class Placeholder:
    name: str
    in_string: bool
    """Inside a JSON string literal (so the value is escaped, not quoted)."""


Part = str | Placeholder


@attrs.frozen
class Template:
    """A parsed template: literal text and placeholders, in order."""

    parts: tuple[Part, ...]
    mode: Mode

    def render(self, values: Mapping[str, str]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.name, "")
            if self.mode is Mode.TEXT:
                out.append(value)
            elif part.in_string:
                out.append(json.dumps(value)[1:-1])
            else:
                out.append(json.dumps(value))
        return "".join(out)


def _string_states(text: str) -> list[bool]:
    """For each index of ``text``: whether it lies inside a JSON string literal."""
    states: list[bool] = []
    inside = escaped = False
    for char in text:
        states.append(inside)
        if escaped:
            escaped = False
        elif inside and char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return states


def parse_template(text: str, mode: Mode) -> Template:
    """Parse ``text``; raise TemplateError on an unknown variable or an unsupported action.

    In JSON mode the template rendered with sample values must be valid JSON."""
    parts: list[Part] = []
    states = _string_states(text) if mode is Mode.JSON else []
    pos = 0
    for match in _ACTION.finditer(text):
        parts.append(text[pos : match.start()])
        variable = _VARIABLE.match(match.group(1))
        if variable is None:
            raise TemplateError(
                f"unsupported template action {match.group(0)!r}: only {{{{.Name}}}} "
                f"placeholders are supported"
            )
        name = variable.group(1)
        if name not in VARIABLES:
            raise TemplateError(f"unknown template variable .{name}; known: {', '.join(VARIABLES)}")
        in_string = bool(states and states[match.start()])
        parts.append(Placeholder(name, in_string))
        pos = match.end()
    parts.append(text[pos:])
    template = Template(tuple(p for p in parts if p != ""), mode)
    if mode is Mode.JSON:
        sample = {name: f'sample "{name}"\n\\' for name in VARIABLES}
        try:
            json.loads(template.render(sample))
        except ValueError as exc:
            raise TemplateError(f"payload is not valid JSON once rendered: {exc}") from None
    return template


def mode_for(text: str) -> Mode:
    """JSON for a payload that looks like a JSON object or array, else TEXT."""
    return Mode.JSON if text.lstrip()[:1] in {"{", "["} else Mode.TEXT
