"""A job's own notification settings: the job field ``notify``.

Dkron only has global notifications, sent after every final attempt; its users asked for
years for "only on failure" and "on state change" (dkron-reference.md §J item 8). Here a job
lists webhooks and emails, each with the events it is sent on::

    "notify": {
      "webhooks": [{"url": "https://hooks.example.com/x", "on": ["failure", "state_change"],
                    "payload": "", "headers": {"X-Token": "abc"}}],
      "emails": [{"to": ["ops@example.com"], "on": ["retry_exhausted"], "payload": ""}]
    }

``on`` defaults to ``["failure"]``; an empty ``payload`` means the default one
(`DEFAULT_WEBHOOK_PAYLOAD`, `DEFAULT_EMAIL_PAYLOAD`). Everything is checked when the job is
stored, naming the field at fault, so a bad URL, address, event or template never reaches
the sender. Pure: parsing, validation and the wire form only.
"""

import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import attrs

from dkron_trio.notify.template import Mode, Template, TemplateError, mode_for, parse_template


class NotifyEvent(Enum):
    """What a finished run (its final attempt) can be notified for."""

    FAILURE = "failure"
    """The final attempt did not succeed."""
    SUCCESS = "success"
    """The final attempt succeeded."""
    STATE_CHANGE = "state_change"
    """The outcome differs from the job's previous run (a job that never ran counts as
    succeeding, so a first run that fails is a change)."""
    RETRY_EXHAUSTED = "retry_exhausted"
    """The final attempt failed after at least one retry."""


DEFAULT_EVENTS = (NotifyEvent.FAILURE,)
MAX_TARGETS = 10
"""Webhooks, and emails, one job may list (each)."""
MAX_RECIPIENTS = 50
DEFAULT_WEBHOOK_PAYLOAD = (
    '{"job": {{.JobName}}, "events": {{.Events}}, "success": {{.Success}}, '
    '"node": {{.NodeName}}, "started_at": {{.StartTime}}, "finished_at": {{.FinishedAt}}, '
    '"output": {{.Output}}}'
)
DEFAULT_EMAIL_PAYLOAD = "{{.Report}}"

_EVENT_ORDER = {event: index for index, event in enumerate(NotifyEvent)}
_EVENT_NAMES = ", ".join(f'"{event.value}"' for event in NotifyEvent)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[^@\s<>(),;:\"\[\]\\]+@{_LABEL}(?:\.{_LABEL})*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_WEBHOOK_KEYS = frozenset({"url", "on", "payload", "headers"})
_EMAIL_KEYS = frozenset({"to", "on", "payload"})
_NOTIFY_KEYS = frozenset({"webhooks", "emails"})


class NotifyFieldError(ValueError):
    """A bad ``notify`` setting; ``field`` is its JSON path (``notify.webhooks[0].url``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _ordered(events: Iterable[NotifyEvent]) -> tuple[NotifyEvent, ...]:
    return tuple(sorted(set(events), key=_EVENT_ORDER.__getitem__))


@attrs.frozen
class WebhookTarget:
    """POST ``payload`` (a template) to ``url`` on any of ``events``."""

    url: str
    events: tuple[NotifyEvent, ...] = DEFAULT_EVENTS
    payload: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def template(self) -> Template:
        """The payload template (JSON-safe when the payload is a JSON document)."""
        text = self.payload or DEFAULT_WEBHOOK_PAYLOAD
        return parse_template(text, mode_for(text))

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "on": [event.value for event in self.events],
            "payload": self.payload,
            "headers": dict(self.headers),
        }


@attrs.frozen
class EmailTarget:
    """Mail ``payload`` (a text template) to ``to`` on any of ``events``, through the
    agent's SMTP settings (``mail-host`` and friends)."""

    to: tuple[str, ...]
    events: tuple[NotifyEvent, ...] = DEFAULT_EVENTS
    payload: str = ""

    def template(self) -> Template:
        return parse_template(self.payload or DEFAULT_EMAIL_PAYLOAD, Mode.TEXT)

    def to_json(self) -> dict[str, Any]:
        return {
            "to": list(self.to),
            "on": [event.value for event in self.events],
            "payload": self.payload,
        }


@attrs.frozen
class JobNotify:
    """A job's notification targets; empty by default (only the global ones apply)."""

    webhooks: tuple[WebhookTarget, ...] = ()
    emails: tuple[EmailTarget, ...] = ()

    @property
    def events(self) -> frozenset[NotifyEvent]:
        """Every event some target is sent on."""
        targets: tuple[WebhookTarget | EmailTarget, ...] = (*self.webhooks, *self.emails)
        return frozenset(event for target in targets for event in target.events)

    def to_json(self) -> dict[str, Any]:
        return {
            "webhooks": [hook.to_json() for hook in self.webhooks],
            "emails": [mail.to_json() for mail in self.emails],
        }

    @classmethod
    def from_record(cls, obj: Mapping[str, Any] | None) -> "JobNotify":
        """The trusted inverse of `to_json`; None (a record from before the field) is empty."""
        if obj is None or (not obj["webhooks"] and not obj["emails"]):
            return _NO_TARGETS
        return cls(
            webhooks=tuple(
                WebhookTarget(
                    url=hook["url"],
                    events=tuple(NotifyEvent(e) for e in hook["on"]),
                    payload=hook["payload"],
                    headers=tuple(hook["headers"].items()),
                )
                for hook in obj["webhooks"]
            ),
            emails=tuple(
                EmailTarget(
                    to=tuple(mail["to"]),
                    events=tuple(NotifyEvent(e) for e in mail["on"]),
                    payload=mail["payload"],
                )
                for mail in obj["emails"]
            ),
        )


_NO_TARGETS = JobNotify()
"""Shared by every job without targets (decoding one is on every replica's hot path)."""


def parse_notify(value: object, field: str = "notify") -> JobNotify:
    """Validate client JSON (null = no targets); raise NotifyFieldError naming the field."""
    if value is None:
        return JobNotify()
    obj = _object(value, field, _NOTIFY_KEYS)
    webhooks = _list(obj.get("webhooks"), f"{field}.webhooks")
    emails = _list(obj.get("emails"), f"{field}.emails")
    return JobNotify(
        webhooks=tuple(_webhook(item, f"{field}.webhooks[{i}]") for i, item in enumerate(webhooks)),
        emails=tuple(_email(item, f"{field}.emails[{i}]") for i, item in enumerate(emails)),
    )


def _object(value: object, field: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NotifyFieldError(field, "must be a JSON object")
    for key in value:
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise NotifyFieldError(f"{field}.{key}", f"is not a known field (known: {known})")
    return value


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NotifyFieldError(field, "must be a JSON array")
    if len(value) > MAX_TARGETS:
        raise NotifyFieldError(field, f"at most {MAX_TARGETS} entries")
    return value


def _string(obj: Mapping[str, Any], key: str, field: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NotifyFieldError(f"{field}.{key}", "must be a string")
    return value


def _events(obj: Mapping[str, Any], field: str) -> tuple[NotifyEvent, ...]:
    value = obj.get("on")
    if value is None:
        return DEFAULT_EVENTS
    path = f"{field}.on"
    if not isinstance(value, list) or not value:
        raise NotifyFieldError(path, f"must be a non-empty JSON array of events ({_EVENT_NAMES})")
    events: list[NotifyEvent] = []
    for index, item in enumerate(value):
        try:
            events.append(NotifyEvent(item))
        except ValueError:
            raise NotifyFieldError(
                f"{path}[{index}]", f"unknown event {item!r}, use {_EVENT_NAMES}"
            ) from None
    return _ordered(events)


def _template(text: str, mode: Mode, field: str) -> None:
    try:
        parse_template(text, mode)
    except TemplateError as exc:
        raise NotifyFieldError(field, str(exc)) from None


def _webhook(value: object, field: str) -> WebhookTarget:
    obj = _object(value, field, _WEBHOOK_KEYS)
    url = _string(obj, "url", field)
    if any(c.isspace() for c in url):
        raise NotifyFieldError(f"{field}.url", f"must not contain white space: {url!r}")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise NotifyFieldError(f"{field}.url", f"must be an http(s) URL, not {url!r}")
    payload = _string(obj, "payload", field)
    if payload:
        _template(payload, mode_for(payload), f"{field}.payload")
    return WebhookTarget(url, _events(obj, field), payload, _headers(obj.get("headers"), field))


def _headers(value: object, field: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    path = f"{field}.headers"
    if not isinstance(value, Mapping):
        raise NotifyFieldError(path, 'must be a JSON object of strings ({"Name": "value"})')
    headers: list[tuple[str, str]] = []
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise NotifyFieldError(path, f"invalid header name {name!r}")
        if not isinstance(text, str):
            raise NotifyFieldError(f"{path}.{name}", "must be a string")
        if any(c in text for c in "\r\n\0"):
            raise NotifyFieldError(f"{path}.{name}", "must not contain a line break")
        headers.append((name, text))
    return tuple(headers)


def _email(value: object, field: str) -> EmailTarget:
    obj = _object(value, field, _EMAIL_KEYS)
    to = obj.get("to")
    path = f"{field}.to"
    if not isinstance(to, list) or not to:
        raise NotifyFieldError(path, "must be a non-empty JSON array of email addresses")
    if len(to) > MAX_RECIPIENTS:
        raise NotifyFieldError(path, f"at most {MAX_RECIPIENTS} addresses")
    for index, address in enumerate(to):
        if not isinstance(address, str) or len(address) > 254 or not _EMAIL.fullmatch(address):
            raise NotifyFieldError(f"{path}[{index}]", f"invalid email address {address!r}")
    payload = _string(obj, "payload", field)
    if payload:
        _template(payload, Mode.TEXT, f"{field}.payload")
    return EmailTarget(tuple(to), _events(obj, field), payload)
