"""The pure side of per-job notifications: parsing and the wire form of ``notify``, and which
events a final attempt has."""

import json
from typing import Any

import attrs
import pytest

from dkron_trio.execution import ExecutionStatus
from dkron_trio.job import JobStatus
from dkron_trio.notify.message import previous_status, run_events, template_values
from dkron_trio.notify.targets import (
    DEFAULT_EVENTS,
    JobNotify,
    NotifyEvent,
    NotifyFieldError,
    WebhookTarget,
    parse_notify,
)
from tests.store.helpers import NOTIFY, execution, job

F, S, C, R = (
    NotifyEvent.FAILURE,
    NotifyEvent.SUCCESS,
    NotifyEvent.STATE_CHANGE,
    NotifyEvent.RETRY_EXHAUSTED,
)


def test_wire_form_round_trips_and_null_means_no_targets() -> None:
    assert JobNotify.from_record(NOTIFY.to_json()) == NOTIFY
    assert parse_notify(NOTIFY.to_json()) == NOTIFY
    assert JobNotify.from_record(None) == JobNotify() == parse_notify(None)
    assert parse_notify({"webhooks": None, "emails": []}) == JobNotify()


def test_defaults_events_in_order_and_duplicates_dropped() -> None:
    parsed = parse_notify(
        {
            "webhooks": [{"url": "https://h.example.com"}],
            "emails": [{"to": ["a@b"], "on": ["state_change", "failure", "failure"]}],
        }
    )
    assert parsed.webhooks[0].events == DEFAULT_EVENTS
    assert parsed.emails[0].events == (F, C)
    assert parsed.events == {F, C}


def test_the_default_webhook_payload_is_json_for_any_output() -> None:
    template = WebhookTarget("http://h").template()
    ex = attrs.evolve(execution("j", 1), output='a "quote" \\ {{.X}}\n')
    body = json.loads(template.render(template_values(job("j"), ex, "n1", {F, C})))
    assert body["output"] == ex.output
    assert body["events"] == "failure,state_change"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"webhooks": [{"url": "http://h", "on": "failure"}]}, "notify.webhooks[0].on"),
        ({"webhooks": [{"url": "http://h", "headers": {"X": 1}}]}, "notify.webhooks[0].headers.X"),
        (
            {"webhooks": [{"url": "http://h", "headers": {"X": "a\r\nB: c"}}]},
            "notify.webhooks[0].headers.X",
        ),
        ({"webhooks": [{"url": "http://h x"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "http://[::1/x"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "https:///path-only"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "http://h"}] * 11}, "notify.webhooks"),
        ({"emails": [{"to": ["a@b", "x <a@b>"]}]}, "notify.emails[0].to[1]"),
        (
            {"emails": [{"to": ["a@b"], "payload": "{{if .Success}}x{{end}}"}]},
            "notify.emails[0].payload",
        ),
    ],
)
def test_errors_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(NotifyFieldError) as info:
        parse_notify(value)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("status", "attempt", "previous", "events"),
    [
        (ExecutionStatus.SUCCESS, 1, JobStatus.SUCCESS, {S}),
        (ExecutionStatus.SUCCESS, 1, JobStatus.UNTRIGGERED, {S}),
        (ExecutionStatus.SUCCESS, 2, JobStatus.FAILED, {S, C}),
        (ExecutionStatus.SUCCESS, 1, JobStatus.PARTIALLY_FAILED, {S, C}),
        (ExecutionStatus.FAILED, 1, JobStatus.UNTRIGGERED, {F, C}),
        (ExecutionStatus.FAILED, 1, JobStatus.FAILED, {F}),
        (ExecutionStatus.FAILED, 3, JobStatus.SUCCESS, {F, C, R}),
        (ExecutionStatus.FAILED, 3, None, {F, R}),
        (ExecutionStatus.CANCELLED, 2, JobStatus.FAILED, {F}),
    ],
)
def test_events_of_a_final_attempt(
    status: ExecutionStatus, attempt: int, previous: JobStatus | None, events: set[NotifyEvent]
) -> None:
    ex = attrs.evolve(
        execution("j", 1, status), attempt=attempt, success=status is ExecutionStatus.SUCCESS
    )
    assert run_events(ex, previous) == events


def test_previous_status_is_the_latest_earlier_run() -> None:
    earlier = [
        execution("j", 1, ExecutionStatus.SUCCESS, group=1),
        execution("j", 2, ExecutionStatus.FAILED, group=2, node="a"),
        execution("j", 3, ExecutionStatus.SUCCESS, group=2, node="b"),
    ]
    current = execution("j", 4, ExecutionStatus.FAILED, group=3)
    later = execution("j", 5, ExecutionStatus.SUCCESS, group=4)
    history = [*earlier, current, later]
    assert previous_status(current, history) is JobStatus.PARTIALLY_FAILED
    assert previous_status(earlier[0], history) is JobStatus.UNTRIGGERED
