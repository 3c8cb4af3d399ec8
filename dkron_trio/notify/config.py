"""Notification settings: defaults and validation in one place.

AgentConfig validates its ``mail-*``, ``webhook-*`` and ``pre-webhook-*`` keys through
`notify_config`, so a bad value stops the agent at start with the key named, never at the
first notification.
"""

from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

from dkron_trio.notify.template import Mode, Template, TemplateError, mode_for, parse_template

DEFAULT_SUBJECT_PREFIX = "[Dkron]"
RETRY_DELAYS = (1.0, 5.0, 30.0)
"""Seconds before each retry of a failed delivery (so four tries in all)."""
SEND_TIMEOUT = 10.0
"""Seconds one delivery (an HTTP POST, an SMTP session) may take."""
QUEUE_SIZE = 1000
"""Finished executions waiting for their processors and notifications; beyond, dropped."""


class NotifyConfigError(ValueError):
    """A bad notification setting; ``key`` is the configuration key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@attrs.frozen
class MailConfig:
    host: str
    port: int
    username: str
    password: str
    sender: str
    subject_prefix: str
    payload: Template | None
    """Body template; None = the execution's output, as Dkron."""


@attrs.frozen
class WebhookConfig:
    endpoint: str
    payload: Template
    headers: tuple[tuple[str, str], ...]

    @property
    def content_type(self) -> str:
        return "application/json" if self.payload.mode is Mode.JSON else "text/plain"


@attrs.frozen
class NotifyConfig:
    """What to send after a run's final attempt, and how hard to try."""

    mail: MailConfig | None = None
    webhook: WebhookConfig | None = None
    pre_webhook: WebhookConfig | None = None
    """Posted as each execution starts (Dkron's pre-webhook; once per execution here)."""
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    timeout: float = SEND_TIMEOUT
    queue_size: int = QUEUE_SIZE


def _template(key: str, text: str, mode: Mode) -> Template:
    try:
        return parse_template(text, mode)
    except TemplateError as exc:
        raise NotifyConfigError(key, str(exc)) from None


def parse_headers(key: str, items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Dkron's ``Key:Value`` header strings."""
    headers: list[tuple[str, str]] = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
            raise NotifyConfigError(key, f"invalid header {item!r}: expected Key:Value")
        if "\n" in value or "\r" in value:
            raise NotifyConfigError(key, f"invalid header {item!r}: line break in the value")
        headers.append((name.strip(), value.strip()))
    return tuple(headers)


def _mail(  # noqa: PLR0917  (one argument per key)
    host: str, port: int, username: str, password: str, sender: str, payload: str, prefix: str
) -> MailConfig | None:
    if not 0 <= port <= 65535:
        raise NotifyConfigError("mail-port", "must be 0-65535")
    if not host:
        for key, value in (("mail-from", sender), ("mail-username", username)):
            if value:
                raise NotifyConfigError(key, "needs mail-host")
        return None
    if port == 0:
        raise NotifyConfigError("mail-port", "must be set (1-65535) together with mail-host")
    if bool(username) != bool(password):
        raise NotifyConfigError("mail-password", "mail-username and mail-password go together")
    if "@" not in sender:
        raise NotifyConfigError("mail-from", "must be an email address when mail-host is set")
    body = _template("mail-payload", payload, Mode.TEXT) if payload else None
    return MailConfig(host, port, username, password, sender, prefix, body)


def _webhook(
    prefix: str, endpoint: str, payload: str, headers: Sequence[str]
) -> WebhookConfig | None:
    """``{prefix}-endpoint``, ``-payload`` and ``-headers`` (prefix ``webhook`` or
    ``pre-webhook``)."""
    if not endpoint:
        if payload or headers:
            raise NotifyConfigError(f"{prefix}-payload", f"needs {prefix}-endpoint")
        return None
    url = urlsplit(endpoint)
    if url.scheme not in {"http", "https"} or not url.netloc:
        raise NotifyConfigError(f"{prefix}-endpoint", f"must be an http(s) URL, not {endpoint!r}")
    if not payload:
        raise NotifyConfigError(f"{prefix}-payload", f"must be set together with {prefix}-endpoint")
    template = _template(f"{prefix}-payload", payload, mode_for(payload))
    return WebhookConfig(endpoint, template, parse_headers(f"{prefix}-headers", headers))


def notify_config(
    *,
    mail_host: str = "",
    mail_port: int = 0,
    mail_username: str = "",
    mail_password: str = "",
    mail_from: str = "",
    mail_payload: str = "",
    mail_subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
    webhook_endpoint: str = "",
    webhook_payload: str = "",
    webhook_headers: Sequence[str] = (),
    pre_webhook_endpoint: str = "",
    pre_webhook_payload: str = "",
    pre_webhook_headers: Sequence[str] = (),
) -> NotifyConfig:
    """Validate Dkron's notification keys; raise NotifyConfigError naming the bad key."""
    mail = _mail(
        mail_host,
        mail_port,
        mail_username,
        mail_password,
        mail_from,
        mail_payload,
        mail_subject_prefix,
    )
    webhook = _webhook("webhook", webhook_endpoint, webhook_payload, webhook_headers)
    pre_webhook = _webhook(
        "pre-webhook", pre_webhook_endpoint, pre_webhook_payload, pre_webhook_headers
    )
    return NotifyConfig(mail=mail, webhook=webhook, pre_webhook=pre_webhook)
