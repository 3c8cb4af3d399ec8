"""The job field ``notify`` through the API: stored and answered as given (defaults filled
in), refused with a 400 naming the field, restored from a job list."""

import io
import json
from typing import Any

import pytest
from quart.datastructures import FileStorage

from dkron_trio.notify.targets import NotifyEvent
from dkron_trio.store.base import JobQuery
from tests.http.harness import Api

NOTIFY: dict[str, Any] = {
    "webhooks": [
        {
            "url": "https://hooks.example.com/dkron",
            "on": ["state_change", "failure"],
            "headers": {"X-Token": "abc"},
        }
    ],
    "emails": [{"to": ["ops@example.com"], "payload": "{{.JobName}}: {{.Events}}"}],
}
STORED = {
    "webhooks": [
        {
            "url": "https://hooks.example.com/dkron",
            "on": ["failure", "state_change"],
            "payload": "",
            "headers": {"X-Token": "abc"},
        }
    ],
    "emails": [
        {"to": ["ops@example.com"], "on": ["failure"], "payload": "{{.JobName}}: {{.Events}}"}
    ],
}


async def test_notify_is_stored_and_answered_with_its_defaults(api: Api) -> None:
    response = await api.put(name="watched", notify=NOTIFY)
    assert response.status_code == 201
    assert (await response.get_json())["notify"] == STORED
    status, shown = await api.json("GET", "/v1/jobs/watched")
    assert (status, shown["notify"]) == (200, STORED)
    stored = await api.store.get_job("watched")
    assert stored.notify.webhooks[0].events == (NotifyEvent.FAILURE, NotifyEvent.STATE_CHANGE)
    response = await api.put(name="plain")
    assert (await response.get_json())["notify"] == {"webhooks": [], "emails": []}


@pytest.mark.parametrize(
    ("notify", "field"),
    [
        ({"webhooks": [{"url": "ftp://example.com/x"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "http://x", "on": ["boom"]}]}, "notify.webhooks[0].on[0]"),
        ({"webhooks": [{"url": "http://x", "on": []}]}, "notify.webhooks[0].on"),
        (
            {"webhooks": [{"url": "http://x", "payload": '{"a": {{.Nope}}}'}]},
            "notify.webhooks[0].payload",
        ),
        (
            {"webhooks": [{"url": "http://x", "headers": {"Bad Name": "v"}}]},
            "notify.webhooks[0].headers",
        ),
        ({"webhooks": [{"uri": "http://x"}]}, "notify.webhooks[0].url"),
        ({"webhooks": [{"url": "http://x", "event": ["success"]}]}, "notify.webhooks[0].event"),
        ({"emails": [{"to": ["ops@example.com", "not-an-address"]}]}, "notify.emails[0].to[1]"),
        ({"emails": [{"to": []}]}, "notify.emails[0].to"),
        ({"emails": "ops@example.com"}, "notify.emails"),
        ({"slack": []}, "notify.slack"),
    ],
)
async def test_a_bad_notify_setting_is_a_400_naming_the_field(
    api: Api, notify: dict[str, Any], field: str
) -> None:
    response = await api.put(name="watched", notify=notify)
    assert response.status_code == 400
    error = (await response.get_json())["error"]
    assert error.startswith(f"{field}:"), error
    assert (await api.store.list_jobs(JobQuery())).total == 0


async def test_restore_keeps_notify(api: Api) -> None:
    jobs = [{"name": "restored", "schedule": "@every 1h", "executor": "shell",
             "executor_config": {"command": "true"}, "notify": NOTIFY}]  # fmt: skip
    content = json.dumps(jobs).encode()
    files = {"file": FileStorage(stream=io.BytesIO(content), filename="jobs.json")}
    status, _ = await api.json("POST", "/v1/restore", files=files)
    assert status == 200
    assert (await api.store.get_job("restored")).notify.to_json() == STORED
