"""After each finished execution: its job's processors, then notifications, in the background.

`RunManager` calls `ExecutionOutputs.on_finished` once an execution's outcome is stored; the
call only queues, so a slow webhook or SMTP server never delays the record, the next attempt
or the job's dependents. Deliveries are retried (`NotifyConfig.retry_delays`) and then
dropped with an error log. Notifications follow Dkron: after the final attempt of a run
(success or failure), an email to the job's ``owner_email`` when SMTP is configured and a
POST of ``webhook-payload`` when a webhook is. With a pre-webhook, `on_started` queues a POST
of ``pre-webhook-payload`` as each execution starts (once per execution, where Dkron posts
it for every streamed message); the same queue and retries carry it.
"""

from collections.abc import Awaitable, Callable

import attrs
import httpx
import trio

from dkron_trio.config import AgentConfig
from dkron_trio.execution import Execution
from dkron_trio.job import Job
from dkron_trio.logs import get_logger
from dkron_trio.notify.config import NotifyConfig, notify_config
from dkron_trio.notify.message import is_final, mail_subject, template_values
from dkron_trio.notify.send import DeliveryError, post_webhook, send_mail
from dkron_trio.processors.config import ProcessorError, parse_processors
from dkron_trio.processors.run import ProcessorFailed, run_processor
from dkron_trio.runs import RunManager

log = get_logger(__name__)

MAX_CONCURRENT = 8
"""Finished executions handled at once (the rest wait in the queue)."""


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
    _send: trio.MemorySendChannel[tuple[Job, Execution]]
    _receive: trio.MemoryReceiveChannel[tuple[Job, Execution]]
    _idle: trio.Event = attrs.field(factory=trio.Event)
    _pending: int = 0

    @classmethod
    def create(cls, config: NotifyConfig, node_name: str) -> "ExecutionOutputs":
        send, receive = trio.open_memory_channel[tuple[Job, Execution]](config.queue_size)
        return cls(config, node_name, send, receive)

    def on_started(self, job: Job, execution: Execution) -> None:
        """RunManager's started listener: queue the pre-webhook (if any), never block."""
        if self._config.pre_webhook is not None:
            self._queue(job, execution)

    def on_finished(self, job: Job, execution: Execution) -> None:
        """RunManager's finished listener: queue, never block."""
        self._queue(job, execution)

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
        values = template_values(job, execution, self._node_name)
        timeout = self._config.timeout
        async with trio.open_nursery() as nursery:
            mail = self._config.mail
            if mail is not None and job.owner_email:
                body = execution.output if mail.payload is None else mail.payload.render(values)
                subject = mail_subject(mail.subject_prefix, job, execution)
                recipients = [job.owner_email]

                async def mail_once() -> None:
                    await send_mail(mail, recipients, subject, body, timeout)

                nursery.start_soon(self._deliver, "mail", job, mail_once)
            hook = self._config.webhook
            if hook is not None:
                payload = hook.payload.render(values)

                async def post_once() -> None:
                    await post_webhook(client, hook, payload)

                nursery.start_soon(self._deliver, "webhook", job, post_once)

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


async def run_execution_outputs(
    config: AgentConfig,
    runs: RunManager,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The agent's hook: ``await nursery.start(run_execution_outputs, config, runs)``."""
    outputs = ExecutionOutputs.create(notify_config_of(config), config.node_name)
    runs.add_finished_listener(outputs.on_finished)
    runs.add_started_listener(outputs.on_started)
    await outputs.run(task_status=task_status)
