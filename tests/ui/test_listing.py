"""The jobs list's URL parameters, pager and the job page's upcoming fire times (no loop)."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import attrs

from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.http.ui.listing import DEFAULT_PER_PAGE, ListParams, Pager, parse_metadata
from dkron_trio.http.ui.present import form_values, run_span, upcoming, zoned_time
from dkron_trio.job import Job, JobStatus
from dkron_trio.store.base import JobQuery, SortOrder
from tests.http.harness import T0


def test_defaults_give_the_first_page_sorted_by_name() -> None:
    params = ListParams.from_args({})
    assert params.job_query() == JobQuery(end=DEFAULT_PER_PAGE)
    assert params.problems == ()
    assert params.to_args() == ""


def test_filters_sort_and_page_become_the_store_query() -> None:
    params = ListParams.from_args(
        {
            "q": " nightly ",
            "status": "untriggered",
            "disabled": "false",
            "meta": "team=ops, env = prod",
            "sort": "last_error",
            "order": "DESC",
            "page": "3",
            "per_page": "25",
        }
    )
    assert params.job_query() == JobQuery(
        metadata={"team": "ops", "env": "prod"},
        q="nightly",
        status=JobStatus.UNTRIGGERED,
        disabled=False,
        sort="last_error",
        order=SortOrder.DESC,
        start=50,
        end=75,
    )
    assert params.problems == ()
    assert ListParams.from_args(dict(parse_qsl(params.to_args()))) == params


def test_unusable_values_fall_back_and_are_named() -> None:
    params = ListParams.from_args(
        {
            "status": "great",
            "disabled": "maybe",
            "meta": "team",
            "sort": "owner; drop",
            "page": "-1",
            "per_page": "x",
        }
    )
    assert params.job_query() == JobQuery(end=DEFAULT_PER_PAGE)
    assert len(params.problems) == 6
    assert any("status 'great'" in p for p in params.problems)


def test_per_page_snaps_to_the_nearest_choice() -> None:
    assert ListParams.from_args({"per_page": "1000"}).per_page == 200
    assert ListParams.from_args({"per_page": "30"}).per_page == 25


def test_sort_links_flip_the_order_of_the_current_field() -> None:
    params = ListParams.from_args({"sort": "next", "page": "4"})
    assert params.sort_args("next") == "sort=next&order=desc"
    assert params.sort_args("status") == "sort=status"


def test_metadata_filter_text() -> None:
    assert parse_metadata("a=1,b=x=y,, c =") == ({"a": "1", "b": "x=y", "c": ""}, [])
    assert parse_metadata("=1")[1] == ["metadata filter '=1' ignored: write key=value"]


def test_pager() -> None:
    pager = Pager(page=5, per_page=10, total=95)
    assert (pager.pages, pager.first_index, pager.last_index) == (10, 41, 50)
    assert pager.window() == [1, 3, 4, 5, 6, 7, 10]
    assert Pager(1, 10, 0).first_index == 0
    assert Pager(1, 10, 0).pages == 1
    assert not Pager(10, 10, 95).has_next
    beyond = Pager(12, 10, 95)
    assert beyond.past_end
    assert beyond.first_index == 0


def _job(**fields: object) -> Job:
    base = {"name": "nightly", "executor": "shell", "executor_config": {"command": "true"}}
    return Job.from_json(base | fields, now=T0)


def test_upcoming_times_are_in_the_schedules_zone() -> None:
    job = _job(schedule="0 30 2 * * *", timezone="Europe/Berlin")
    soon = upcoming(job, datetime(2026, 3, 27, tzinfo=UTC))
    assert soon.zone == "Europe/Berlin"
    assert [zoned_time(t, soon.zone) for t in soon.times[:3]] == [
        "2026-03-27 02:30:00 CET (UTC+0100)",
        "2026-03-28 02:30:00 CET (UTC+0100)",
        "2026-03-29 03:00:00 CEST (UTC+0200)",
    ]
    assert len(soon.times) == 5
    assert soon.note == ""


def test_upcoming_respects_expiry_and_says_why_there_is_nothing() -> None:
    job = _job(schedule="@every 1h", expires_at="2026-01-01T02:30:00Z")
    assert len(upcoming(job, T0).times) == 2
    assert upcoming(_job(schedule="@manually"), T0).note == "does not fire again"
    child = attrs.evolve(_job(schedule="@every 1h"), parent_job="parent")
    assert upcoming(child, T0).note == "runs after its parent job parent succeeds"
    disabled = upcoming(_job(schedule="@every 1h", disabled=True), T0)
    assert len(disabled.times) == 5
    assert disabled.note.startswith("disabled")


def test_form_values_show_maps_as_json_and_defaults_for_a_new_job() -> None:
    values = form_values(_job(schedule="@every 1h", tags={"role": "web"}))
    assert values["tags"] == '{\n  "role": "web"\n}'
    assert values["metadata"] == "{}"
    assert values["timeout"] == ""
    blank = form_values(None)
    assert blank["executor"] == "shell"
    assert blank["executor_config"] == '{\n  "command": ""\n}'


def test_run_span() -> None:
    job = _job(schedule="@every 1h")
    ex = Execution(
        id="1",
        job_name=job.name,
        started_at=T0,
        finished_at=None,
        success=False,
        output="",
        node_name="n",
        group=1,
        attempt=1,
        scheduled_at=T0,
        fence=0,
        status=ExecutionStatus.RUNNING,
        exit_code=None,
    )
    assert run_span(ex, T0 + timedelta(seconds=2.25)) == "2.2s"
    assert run_span(ex, T0 + timedelta(seconds=125)) == "2m05s"
    assert run_span(ex, T0 + timedelta(hours=2, seconds=5)) == "2h00m05s"


def test_the_tag_filter_reaches_the_store_query() -> None:
    params = ListParams.from_args({"tags": "kind=worker:1, zone=eu", "meta": "env=prod"})
    query = params.job_query()
    assert dict(query.tags) == {"kind": "worker:1", "zone": "eu"}
    assert dict(query.metadata) == {"env": "prod"}
    assert "tags=kind" in params.to_args()
    assert ListParams.from_args({"tags": "oops"}).problems == (
        "tag filter 'oops' ignored: write key=value",
    )
