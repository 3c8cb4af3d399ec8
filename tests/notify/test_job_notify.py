"""A job's own ``notify`` targets after real runs: one test per event kind, against a real
webhook receiver and a real SMTP server (aiosmtpd) on 127.0.0.1."""

import json
import socket
from typing import Any

import attrs
import pytest
import trio

from dkron_trio.notify.config import NotifyConfig, notify_config
from dkron_trio.store.base import ExecutionQuery
from tests.notify.harness import OUTPUT, Mailbox, Receiver, open_world


def _config(smtp_port: int = 0) -> NotifyConfig:
    """No global webhook and no owner_email: only the job's own targets send anything."""
    settings = notify_config(
        mail_host="127.0.0.1" if smtp_port else "",
        mail_port=smtp_port,
        mail_from="dkron@example.org" if smtp_port else "",
    )
    return attrs.evolve(settings, retry_delays=(0.01, 0.01), timeout=5.0)


def _hook(receiver: Receiver, target: str, on: list[str], **extra: Any) -> dict[str, Any]:
    return {"url": receiver.url, "on": on, "headers": {"X-Target": target}} | extra


def _bodies(receiver: Receiver, target: str) -> list[dict[str, Any]]:
    return [
        json.loads(body) for headers, body in receiver.requests if headers["X-Target"] == target
    ]


async def test_failure_webhook_once_per_failed_run_with_a_json_safe_payload(
    receiver: Receiver,
) -> None:
    notify = {"webhooks": [_hook(receiver, "failure", ["failure"])]}
    async with open_world(_config()) as world:
        await world.job(name="flaky", notify=notify)
        await world.run_once("flaky")
        assert receiver.requests == []  # succeeded: nothing
        world.executor.failing.add("flaky")
        await world.run_once("flaky")
        [execution, _] = await world.store.list_executions("flaky", ExecutionQuery())
    [(headers, _)] = receiver.requests
    assert headers["Content-Type"] == "application/json"
    [body] = _bodies(receiver, "failure")
    assert body == {
        "job": "flaky",
        "events": "failure,state_change",
        "success": "false",
        "node": "node1",
        "started_at": execution.started_at.isoformat(),
        "finished_at": execution.finished_at.isoformat() if execution.finished_at else "",
        "output": OUTPUT,  # quotes, backslashes and braces survive as JSON
    }


async def test_success_email_to_every_recipient(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    notify = {
        "emails": [
            {
                "to": ["a@example.org", "b@example.org"],
                "on": ["success"],
                "payload": "{{.JobName}} {{.Events}}",
            }
        ]
    }
    async with open_world(_config(port)) as world:
        await world.job(name="fail-always", notify=notify)
        await world.run_once("fail-always")
        await world.job(name="fine", notify=notify)
        await world.run_once("fine")
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["a@example.org", "b@example.org"]
    assert envelope.mail_from == "dkron@example.org"
    assert message["Subject"] == "[Dkron]Success fine execution report"
    assert message.get_payload(decode=True).decode().strip() == "fine success"


async def test_state_change_webhook_on_each_flip_only(receiver: Receiver) -> None:
    notify = {"webhooks": [_hook(receiver, "change", ["state_change"])]}
    async with open_world(_config()) as world:
        await world.job(name="flip", notify=notify)
        for failing in (False, True, True, False, False):
            if failing:
                world.executor.failing.add("flip")
            else:
                world.executor.failing.discard("flip")
            await world.run_once("flip")
    assert [b["events"] for b in _bodies(receiver, "change")] == [
        "failure,state_change",
        "success,state_change",
    ]


async def test_a_first_run_that_fails_is_a_state_change(receiver: Receiver) -> None:
    notify = {"webhooks": [_hook(receiver, "change", ["state_change"])]}
    async with open_world(_config()) as world:
        await world.job(name="fail-from-the-start", notify=notify)
        await world.run_once("fail-from-the-start")
        await world.run_once("fail-from-the-start")
    assert [b["success"] for b in _bodies(receiver, "change")] == ["false"]


async def test_retry_exhausted_email_once_after_the_last_retry(
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp
    notify = {"emails": [{"to": ["ops@example.org"], "on": ["retry_exhausted"]}]}
    async with open_world(_config(port)) as world:
        await world.job(name="fail-no-retries", notify=notify)
        await world.run_once("fail-no-retries")
        await world.job(name="fail-retried", retries=2, retry_backoff="10ms", notify=notify)
        await world.run_once("fail-retried")
        attempts = await world.store.list_executions("fail-retried", ExecutionQuery())
    assert len(attempts) == 3
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["ops@example.org"]
    assert message["Subject"] == "[Dkron]Failed fail-retried execution report"
    report = message.get_payload(decode=True).decode()
    assert "Executed: fail-retried" in report and "Attempt: 3" in report


async def test_a_dead_job_webhook_never_blocks_dependents() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        dead = Receiver(closed.getsockname()[1])
        config = attrs.evolve(_config(), retry_delays=(3600.0,))
        notify = {"webhooks": [_hook(dead, "dead", ["success", "failure"])]}
        async with open_world(config) as world:
            await world.job(name="parent", notify=notify)
            await world.job(name="child", parent_job="parent", notify=notify)
            await world.runs.start_manual_run(await world.store.get_job("parent"))
            with trio.fail_after(20):
                await world.runs.wait_idle()
            [child] = await world.store.list_executions("child", ExecutionQuery())
            assert child.success
            assert not world.outputs.idle  # the webhooks are still waiting to retry


async def test_a_job_email_without_mail_host_is_skipped_and_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notify = {
        "emails": [{"to": ["ops@example.org"]}],
        "webhooks": [_hook(receiver, "failure", ["failure"])],
    }
    async with open_world(_config()) as world:
        await world.job(name="fail-unmailed", notify=notify)
        await world.run_once("fail-unmailed")
    assert len(receiver.requests) == 1  # the webhook still goes out
    [skipped] = [
        r for r in caplog.records if r.getMessage() == "notification skipped: no mail-host"
    ]
    assert "notify.emails[0]" in str(vars(skipped))
