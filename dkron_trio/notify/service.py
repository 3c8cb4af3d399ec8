"""After each finished execution: its job's processors, then notifications, in the background.

`RunManager` calls `ExecutionOutputs.on_finished` once an execution's outcome is stored; the
call only queues, so a slow webhook or SMTP server never delays the record, the next attempt
or the job's dependents. Deliveries are retried (`NotifyConfig.retry_delays`) and then
dropped with an error log. Notifications follow Dkron: after the final attempt of a run
(success or failure), an email to the job's ``owner_email`` when SMTP is configured and a
POST of ``webhook-payload`` when a webhook is. With a pre-webhook, `on_started` queues a POST
of ``pre-webhook-payload`` as each execution starts (once per execution, where Dkron posts
it for every streamed message); the same queue and retries carry it.

A job's own targets (its ``notify`` field, `dkron_trio.notify.targets`) go out after the
final attempt too, each once when the run has one of its events. Whether the outcome
changed is read from the job's stored executions (the latest earlier run), so it holds
across retries, several target nodes and a new leader.
"""

from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import httpx
import trio

from dkron_trio.config import AgentConfig
from dkron_trio.execution import Execution
from dkron_trio.job import Job, JobStatus
from dkron_trio.logs import get_logger
from dkron_trio.notify.config import MailConfig, NotifyConfig, WebhookConfig, notify_config
from dkron_trio.notify.message import (
    is_final,
    mail_subject,
    previous_status,
    run_events,
    template_values,
)
from dkron_trio.notify.send import DeliveryError, post_webhook, send_mail
from dkron_trio.notify.targets import EmailTarget, NotifyEvent, WebhookTarget
from dkron_trio.notify.template import Template, TemplateError
from dkron_trio.processors.config import ProcessorError, parse_processors
from dkron_trio.processors.run import ProcessorFailed, run_processor
from dkron_trio.runs import RunManager
from dkron_trio.store.base import ExecutionQuery, StoreError

log = get_logger(__name__)

MAX_CONCURRENT = 8
"""Finished executions handled at once (the rest wait in the queue)."""
HISTORY_WINDOW = 64
"""Newest executions read to find the run before a finished one (its state change)."""


class ExecutionHistory(Protocol):
    """Where a job's earlier executions are read (the Store)."""

    async def list_executions(self, job_name: str, q: ExecutionQuery) -> list[Execution]: ...


def notify_config_of(config: AgentConfig) -> NotifyConfig:
    """The agent's notification settings (AgentConfig has validated them already)."""
    return notify_config(
        mail_host=config.mail_host,
        mail_port=config.mail_port,
        mail_username=config.mail_username,
        mail_password=config.mail_password,
        mail_from=config.mail_from,
        mail_payload=config.mail_payload,
        mail_subject_prefix=config.mail_subject_prefix,
        webhook_endpoint=config.webhook_endpoint,
        webhook_payload=config.webhook_payload,
        webhook_headers=config.webhook_headers,
        pre_webhook_endpoint=config.pre_webhook_endpoint,
        pre_webhook_payload=config.pre_webhook_payload,
        pre_webhook_headers=config.pre_webhook_headers,
    )


@attrs.define
class ExecutionOutputs:
    """Processors and notifications for finished executions; `run` is its worker."""

    _config: NotifyConfig
    _node_name: str
    _history: ExecutionHistory
    _send: trio.MemorySendChannel[tuple[Job, Execution]]
    _receive: trio.MemoryReceiveChannel[tuple[Job, Execution]]
    _idle: trio.Event = attrs.field(factory=trio.Event)
    _pending: int = 0

    @classmethod
    def create(
        cls, config: NotifyConfig, node_name: str, history: ExecutionHistory
    ) -> "ExecutionOutputs":
        send, receive = trio.open_memory_channel[tuple[Job, Execution]](config.queue_size)
        return cls(config, node_name, history, send, receive)

    def on_started(self, job: Job, execution: Execution) -> None:
        """RunManager's started listener: queue the pre-webhook (if any), never block."""
        if self._config.pre_webhook is not None:
            self._queue(job, execution)

    def on_finished(self, job: Job, execution: Execution) -> None:
        """RunManager's finished listener: queue, never block; an execution of a job with
        no processors and nothing to notify is not queued (at hundreds of runs a second
        the queue would fill with no-ops and drop the runs that have work)."""
        if job.processors or self._notifies(job):
            self._queue(job, execution)

    def _notifies(self, job: Job) -> bool:
        """Whether a finished run of the job may send anything."""
        owner_mail = self._config.mail is not None and bool(job.owner_email)
        return bool(owner_mail or self._config.webhook or job.notify.webhooks or job.notify.emails)

    def _queue(self, job: Job, execution: Execution) -> None:
        """Queue an execution: a running one for its pre-webhook, a finished one for its
        processors and notifications."""
        try:
            self._send.send_nowait((job, execution))
        except trio.WouldBlock:
            log.error("execution outputs dropped: queue full", job=job.name, execution=execution.id)
            return
        self._pending += 1

    @property
    def idle(self) -> bool:
        return not self._pending

    async def wait_idle(self) -> None:
        """Wait until every queued execution is processed and notified (or given up)."""
        while self._pending:
            self._idle = trio.Event()
            await self._idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        limit = trio.CapacityLimiter(MAX_CONCURRENT)
        async with (
            httpx.AsyncClient(timeout=self._config.timeout) as client,
            trio.open_nursery() as nursery,
        ):
            task_status.started()
            async for job, execution in self._receive:
                token = object()
                await limit.acquire_on_behalf_of(token)
                nursery.start_soon(self._handle, client, limit, token, job, execution)

    async def _handle(
        self,
        client: httpx.AsyncClient,
        limit: trio.CapacityLimiter,
        token: object,
        job: Job,
        execution: Execution,
    ) -> None:
        try:
            if not execution.status.finished:
                await self._pre_notify(client, job, execution)
                return
            await self._process(job, execution)
            if is_final(job, execution):
                await self._notify(client, job, execution)
        finally:
            limit.release_on_behalf_of(token)
            self._pending -= 1
            if not self._pending:
                self._idle.set()

    async def _process(self, job: Job, execution: Execution) -> None:
        try:
            processors = parse_processors(job.processors)
        except ProcessorError as exc:
            log.error("processors skipped", job=job.name, error=str(exc))
            return
        for processor in processors:
            try:
                await run_processor(processor, job, execution)
            except ProcessorFailed as exc:
                log.error("processor failed", job=job.name, execution=execution.id, error=str(exc))

    async def _notify(self, client: httpx.AsyncClient, job: Job, execution: Execution) -> None:
        if not self._notifies(job):
            return
        mail = self._config.mail
        events = run_events(execution, await self._previous(job, execution))
        values = template_values(job, execution, self._node_name, events)
        async with trio.open_nursery() as nursery:
            if mail is not None and job.owner_email:
                body = execution.output if mail.payload is None else mail.payload.render(values)
                self._start_mail(nursery, "mail", job, execution, mail, [job.owner_email], body)
            hook = self._config.webhook
            if hook is not None:
                self._start_post(nursery, client, "webhook", job, hook, hook.payload.render(values))
            self._start_job_targets(nursery, client, job, execution, events, values)

    def _start_job_targets(  # noqa: PLR0917
        self,
        nursery: trio.Nursery,
        client: httpx.AsyncClient,
        job: Job,
        execution: Execution,
        events: frozenset[NotifyEvent],
        values: dict[str, str],
    ) -> None:
        """The job's own webhooks and emails that name one of the run's events."""
        for index, hook in enumerate(job.notify.webhooks):
            kind = f"notify.webhooks[{index}]"
            template = _template_of(hook, events, job, kind)
            if template is not None:
                config = WebhookConfig(hook.url, template, hook.headers)
                self._start_post(nursery, client, kind, job, config, template.render(values))
        mail = self._config.mail
        for index, email in enumerate(job.notify.emails):
            kind = f"notify.emails[{index}]"
            template = _template_of(email, events, job, kind)
            if template is None:
                continue
            if mail is None:
                log.error("notification skipped: no mail-host", kind=kind, job=job.name)
                continue
            body = template.render(values)
            self._start_mail(nursery, kind, job, execution, mail, list(email.to), body)

    async def _previous(self, job: Job, execution: Execution) -> JobStatus | None:
        """The job's status before this run, from its stored executions (None: unknown)."""
        query = ExecutionQuery(output_size_limit=0, limit=HISTORY_WINDOW)
        try:
            history = await self._history.list_executions(job.name, query)
        except StoreError as exc:
            log.warning("previous run unknown", job=job.name, error=str(exc))
            return None
        return previous_status(execution, history)

    def _start_mail(  # noqa: PLR0917  (one argument per part of the message)
        self,
        nursery: trio.Nursery,
        kind: str,
        job: Job,
        execution: Execution,
        mail: MailConfig,
        recipients: list[str],
        body: str,
    ) -> None:
        subject = mail_subject(mail.subject_prefix, job, execution)
        timeout = self._config.timeout

        async def mail_once() -> None:
            await send_mail(mail, recipients, subject, body, timeout)

        nursery.start_soon(self._deliver, kind, job, mail_once)

    def _start_post(  # noqa: PLR0917
        self,
        nursery: trio.Nursery,
        client: httpx.AsyncClient,
        kind: str,
        job: Job,
        hook: WebhookConfig,
        payload: str,
    ) -> None:
        async def post_once() -> None:
            await post_webhook(client, hook, payload)

        nursery.start_soon(self._deliver, kind, job, post_once)

    async def _pre_notify(self, client: httpx.AsyncClient, job: Job, execution: Execution) -> None:
        hook = self._config.pre_webhook
        assert hook is not None, "queued only with a pre-webhook"
        payload = hook.payload.render(template_values(job, execution, self._node_name))

        async def post_once() -> None:
            await post_webhook(client, hook, payload)

        await self._deliver("pre-webhook", job, post_once)

    async def _deliver(self, kind: str, job: Job, attempt: Callable[[], Awaitable[None]]) -> None:
        delays = self._config.retry_delays
        for tries, delay in enumerate((*delays, None), start=1):
            try:
                with trio.fail_after(self._config.timeout * 2):
                    await attempt()
            except (DeliveryError, trio.TooSlowError) as exc:
                error = str(exc) or "timed out"
                if delay is None:
                    log.error("notification given up", kind=kind, job=job.name, error=error)
                    return
                log.warning("notification failed", kind=kind, job=job.name, error=error)
                await trio.sleep(delay)
            else:
                log.info("notification sent", kind=kind, job=job.name, tries=tries)
                return


def _template_of(
    target: WebhookTarget | EmailTarget, events: frozenset[NotifyEvent], job: Job, kind: str
) -> Template | None:
    """The target's payload template if the run has one of its events; None (logged) if its
    stored template no longer parses (it was checked when the job was stored)."""
    if events.isdisjoint(target.events):
        return None
    try:
        return target.template()
    except TemplateError as exc:
        log.error("notification skipped: bad payload", kind=kind, job=job.name, error=str(exc))
        return None


async def run_execution_outputs(
    config: AgentConfig,
    runs: RunManager,
    history: ExecutionHistory,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The agent's hook: ``await nursery.start(run_execution_outputs, config, runs, store)``."""
    outputs = ExecutionOutputs.create(notify_config_of(config), config.node_name, history)
    runs.add_finished_listener(outputs.on_finished)
    runs.add_started_listener(outputs.on_started)
    await outputs.run(task_status=task_status)
