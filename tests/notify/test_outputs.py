"""Processors and notifications after real runs: a RunManager with the memory store, a real
SMTP server (aiosmtpd) and a real webhook receiver, both on 127.0.0.1."""

import json
import socket
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from dkron_trio.notify.config import NotifyConfig, notify_config
from dkron_trio.store.base import ExecutionQuery
from tests.notify.harness import OUTPUT, Mailbox, Receiver, open_world


def _config(receiver: Receiver | None, smtp_port: int = 0, **extra: Any) -> NotifyConfig:
    settings = notify_config(
        webhook_endpoint=receiver.url if receiver else "",
        webhook_payload='{"job": "{{.JobName}}", "ok": "{{.Success}}", "out": "{{.Output}}"}'
        if receiver
        else "",
        webhook_headers=["X-Token:abc"] if receiver else [],
        mail_host="127.0.0.1" if smtp_port else "",
        mail_port=smtp_port,
        mail_from="dkron@example.org" if smtp_port else "",
        mail_payload="{{.JobName}} said {{.Output}}" if smtp_port else "",
    )
    return attrs.evolve(settings, retry_delays=(0.01, 0.01), timeout=5.0, **extra)


async def test_webhook_and_mail_once_after_the_final_attempt(
    receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    async with open_world(_config(receiver, port)) as world:
        await world.job(name="fail-job", retries=1, owner_email="owner@example.org")
        job = await world.store.get_job("fail-job")
        await world.runs.start_manual_run(job)
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
        attempts = await world.store.list_executions("fail-job", ExecutionQuery())
        assert len(attempts) == 2
    assert len(receiver.requests) == 1  # after the final attempt only
    headers, body = receiver.requests[0]
    assert headers["X-Token"] == "abc"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"job": "fail-job", "ok": "false", "out": OUTPUT}
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["owner@example.org"]
    assert envelope.mail_from == "dkron@example.org"
    assert message["Subject"] == "[Dkron]Failed fail-job execution report"
    text = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert text.rstrip("\n") == f"fail-job said {OUTPUT}".rstrip("\n")


async def test_pre_webhook_once_per_execution_as_it_starts(receiver: Receiver) -> None:
    config = notify_config(
        pre_webhook_endpoint=receiver.url,
        pre_webhook_payload='{"job": "{{.JobName}}", "node": "{{.NodeName}}", '
        '"started": "{{.StartTime}}", "finished": "{{.FinishedAt}}"}',
        pre_webhook_headers=["X-Phase:start"],
    )
    async with open_world(attrs.evolve(config, retry_delays=(0.01,), timeout=5.0)) as world:
        await world.job(name="fail-twice", retries=1)
        await world.runs.start_manual_run(await world.store.get_job("fail-twice"))
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
        attempts = await world.store.list_executions("fail-twice", ExecutionQuery())
    assert len(receiver.requests) == 2  # one per attempt, none after the finish
    bodies = sorted((json.loads(body) for _, body in receiver.requests), key=str)
    assert sorted(b["started"] for b in bodies) == sorted(
        a.started_at.isoformat() for a in attempts
    )
    assert all(b == {**b, "job": "fail-twice", "node": "node1", "finished": ""} for b in bodies)
    assert all(h["X-Phase"] == "start" for h, _ in receiver.requests)


async def test_a_failing_webhook_is_retried_until_it_answers(receiver: Receiver) -> None:
    receiver.fail_first = 2
    async with open_world(_config(receiver)) as world:
        await world.job(name="ok")
        await world.runs.start_manual_run(await world.store.get_job("ok"))
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
    assert len(receiver.requests) == 3
    assert all(json.loads(body)["ok"] == "true" for _, body in receiver.requests)


async def test_an_unreachable_webhook_never_blocks_dependents() -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        dead = Receiver(closed.getsockname()[1])
        config = attrs.evolve(_config(dead), retry_delays=(3600.0,))
        async with open_world(config) as world:
            await world.job(name="parent")
            await world.job(name="child", parent_job="parent")
            await world.runs.start_manual_run(await world.store.get_job("parent"))
            with trio.fail_after(20):
                await world.runs.wait_idle()
            [child] = await world.store.list_executions("child", ExecutionQuery())
            assert child.success
            assert not world.outputs.idle  # the parent's webhook is still waiting to retry


async def test_no_mail_without_owner_email(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    async with open_world(_config(None, port)) as world:
        await world.job(name="quiet")
        await world.runs.start_manual_run(await world.store.get_job("quiet"))
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
    assert mailbox.messages == []


async def test_files_syslog_and_log_processors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    syslog = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await syslog.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{syslog.getsockname()[1]}"
    caplog.set_level("INFO", logger="dkron_trio.processors.run")
    async with open_world(_config(None)) as world:
        await world.job(
            name="fail-processed",
            processors={
                "files": {"log_dir": str(tmp_path / "logs"), "forward": "true"},
                "syslog": {"address": address},
                "log": {},
            },
        )
        await world.runs.start_manual_run(await world.store.get_job("fail-processed"))
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
            datagram = await syslog.recv(65536)
        [execution] = await world.store.list_executions("fail-processed", ExecutionQuery())
    syslog.close()
    [written] = (tmp_path / "logs").iterdir()
    assert written.name == f"{execution.id}.log"
    assert written.read_text() == OUTPUT
    assert datagram.startswith(b"<11>dkron[")
    assert b"job=fail-processed" in datagram and b"success=false" in datagram
    logged = [r for r in caplog.records if r.getMessage().startswith("execution output")]
    assert len(logged) == 1 and logged[0].levelname == "ERROR"


async def test_a_bad_processor_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    async with open_world(_config(None)) as world:
        await world.job(name="odd", processors={"fluent": {}})
        await world.runs.start_manual_run(await world.store.get_job("odd"))
        await world.runs.wait_idle()
        with trio.fail_after(20):
            await world.outputs.wait_idle()
    [skipped] = [r for r in caplog.records if r.getMessage() == "processors skipped"]
    assert "unknown processor 'fluent'" in str(vars(skipped))


async def test_runs_with_nothing_to_process_or_notify_are_not_queued(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A queue of one, and many runs of a job without processors or notifications: none is
    queued, so none is dropped; a job with a processor still queues (and drops when full)."""
    config = attrs.evolve(_config(None), queue_size=1)
    async with open_world(config) as world:
        await world.job(name="plain")
        plain = await world.store.get_job("plain")
        for _ in range(5):
            await world.runs.start_manual_run(plain)
        await world.runs.wait_idle()
        assert world.outputs.idle
        assert "queue full" not in caplog.text
        await world.job(name="logged", processors={"log": {}})
        logged = await world.store.get_job("logged")
        for _ in range(5):
            await world.runs.start_manual_run(logged)
        await world.runs.wait_idle()
        assert "queue full" in caplog.text
