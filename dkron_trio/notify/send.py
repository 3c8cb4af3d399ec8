"""Delivering one notification: an HTTP POST or an SMTP message (IO only, no policy)."""

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

import httpx
import trio

from dkron_trio.notify.config import MailConfig, WebhookConfig


class DeliveryError(Exception):
    """A notification that did not get through (retried by the service)."""


async def post_webhook(client: httpx.AsyncClient, hook: WebhookConfig, body: str) -> None:
    """POST ``body`` to the webhook; a status other than 2xx is a failure."""
    headers = {"Content-Type": hook.content_type}
    headers.update(dict(hook.headers))
    try:
        response = await client.post(hook.endpoint, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {hook.endpoint}: {exc!r}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {hook.endpoint}: HTTP {response.status_code}")


def _send_mail_blocking(
    mail: MailConfig, recipients: Sequence[str], subject: str, body: str, socket_seconds: float
) -> None:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(mail.host, mail.port, timeout=socket_seconds) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if mail.username:
            smtp.login(mail.username, mail.password)
        smtp.send_message(message)


async def send_mail(
    mail: MailConfig, recipients: Sequence[str], subject: str, body: str, socket_seconds: float
) -> None:
    """Send one email through the configured SMTP server (in a worker thread)."""
    try:
        await trio.to_thread.run_sync(
            _send_mail_blocking,
            mail,
            recipients,
            subject,
            body,
            socket_seconds,
            abandon_on_cancel=True,
        )
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"mail via {mail.host}:{mail.port}: {exc!r}") from exc
