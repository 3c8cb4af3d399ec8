"""Client commands of the CLI: talk to a server's Dkron-compatible HTTP API and print the answer.

Output is a rich table for people or, with ``--json``, the server's JSON unchanged for
scripts. Failures become a one-line message and exit code 1.
"""

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from rich.console import Console
from rich.table import Table

DEFAULT_ADDRESS = "http://127.0.0.1:8080"
ADDRESS_ENV = "DKRON_ADDRESS"
TOKEN_ENV = "DKRON_TOKEN"
"""The ACL token the client sends (``--token`` wins), when the server runs with ACLs."""
_TIMEOUT = httpx.Timeout(30.0)
# A manual run may answer only when the execution has finished (Dkron's behaviour).
_RUN_TIMEOUT = httpx.Timeout(30.0, read=None)
_ZERO_TIME = "0001-01-01T00:00:00Z"
_PIPE_WIDTH = 250


class ClientError(Exception):
    """A request that did not give a usable answer; the message is shown to the user."""


class ApiClient:
    """A small synchronous client for the /v1 API."""

    def __init__(
        self,
        address: str,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.address = address if "://" in address else f"http://{address}"
        self._http = httpx.Client(
            base_url=self.address,
            timeout=_TIMEOUT,
            transport=transport,
            headers=token_headers(token),
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        timeout: httpx.Timeout = _TIMEOUT,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=body,
                timeout=timeout,
            )
        except httpx.ConnectError as exc:
            raise ClientError(
                f"cannot connect to {self.address}: {_reason(exc)} "
                "(is a dkron-trio server running there? set --address or DKRON_ADDRESS)"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(f"{self.address} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.address} failed: {exc}") from None
        if response.status_code >= 400:
            raise ClientError(f"{response.status_code} {_error_text(response)}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{method} {path}: the server's answer is not JSON") from None


def _reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    return "connection refused" if "refused" in text.lower() or not text else text


def _error_text(response: httpx.Response) -> str:
    """The server's ``{"error": ...}`` message, or its plain-text body (Dkron's style)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    text = response.text.strip()
    return text or response.reason_phrase


def resolve_address(given: str | None) -> str:
    return given or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def token_headers(given: str | None) -> dict[str, str]:
    """The ACL token header for ``--token`` or ``DKRON_TOKEN``; none when neither is set."""
    token = given or os.environ.get(TOKEN_ENV)
    return {"X-Dkron-Token": token} if token else {}


def _job_path(name: str, *rest: str) -> str:
    return "/".join(["/v1/jobs", quote(name, safe=""), *rest])


def _console() -> Console:
    """Tables fit the terminal; piped output is not wrapped, so scripts see whole rows."""
    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, width=width)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _text(value: object) -> str:
    if value is None or (isinstance(value, str) and value in {"", _ZERO_TIME}):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _jobs_table(jobs: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for title in ("NAME", "SCHEDULE", "STATUS", "DISABLED", "OK", "ERR", "LAST SUCCESS", "NEXT"):
        table.add_column(title, no_wrap=title == "NAME")
    for job in jobs:
        table.add_row(
            _text(job.get("name")),
            _text(job.get("schedule")),
            _text(job.get("status")) if job.get("status") else "untriggered",
            _text(bool(job.get("disabled"))),
            _text(job.get("success_count", 0)),
            _text(job.get("error_count", 0)),
            _text(job.get("last_success")),
            _text(job.get("next")),
        )
    return table


def _execution_status(ex: Mapping[str, Any]) -> str:
    if ex.get("status"):
        return str(ex["status"])
    if not ex.get("finished_at") or ex.get("finished_at") == _ZERO_TIME:
        return "running"
    return "success" if ex.get("success") else "failed"


def _executions_table(executions: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for title in ("ID", "NODE", "STATUS", "ATTEMPT", "STARTED", "FINISHED"):
        table.add_column(title, no_wrap=title == "ID")
    for ex in executions:
        table.add_row(
            _text(ex.get("id")),
            _text(ex.get("node_name")),
            _execution_status(ex),
            _text(ex.get("attempt")),
            _text(ex.get("started_at")),
            _text(ex.get("finished_at")),
        )
    return table


def _detail_table(job: Mapping[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in job.items():
        table.add_row(key, _text(value))
    return table


def _expect_list(data: object, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ClientError(f"the server's answer is not a list of {what}")
    return data


def _expect_object(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ClientError(f"the server's answer is not a {what}")
    return data


def read_jobs_file(path: str) -> list[Mapping[str, Any]]:
    """Jobs from a JSON or YAML file ("-" = stdin): one job object or a list of them."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ClientError(f"cannot parse {path}: {exc}") from None
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ClientError(f"{path}: item {index} is not a job object")
    return items


def run_client_command(args: argparse.Namespace) -> int:
    """Run one client command; print the result or the error (exit 1)."""
    client = ApiClient(resolve_address(args.address), token=getattr(args, "token", None))
    try:
        _dispatch(client, args)
    except ClientError as exc:
        print(f"dkron-trio: error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def _dispatch(client: ApiClient, args: argparse.Namespace) -> None:
    command = args.command if args.command != "jobs" else f"jobs {args.jobs_command}"
    as_json: bool = getattr(args, "json", False)
    if command == "leave":
        members = client.request("POST", "/v1/leave")
        if as_json:
            _print_json(members)
        else:
            print(f"{client.address}: node is leaving the cluster")
    elif command == "keyring":
        _keyring(client, args, as_json)
    elif command == "acl":
        _acl(client, args, as_json)
    elif command == "jobs list":
        jobs = _expect_list(client.request("GET", "/v1/jobs"), "jobs")
        if as_json:
            _print_json(jobs)
        else:
            _console().print(_jobs_table(jobs))
    elif command == "jobs show":
        job = _expect_object(client.request("GET", _job_path(args.name)), "job")
        if as_json:
            _print_json(job)
        else:
            _console().print(_detail_table(job))
    elif command == "jobs apply":
        _apply(client, args.file, as_json)
    elif command == "jobs run":
        params = {"force": "true"} if args.force else None
        job = client.request(
            "POST", _job_path(args.name, "run"), params=params, timeout=_RUN_TIMEOUT
        )
        if as_json:
            _print_json(job)
        else:
            print(f"job {args.name}: run requested")
    elif command == "jobs toggle":
        job = _expect_object(client.request("POST", _job_path(args.name, "toggle")), "job")
        if as_json:
            _print_json(job)
        else:
            state = "disabled" if job.get("disabled") else "enabled"
            print(f"job {args.name}: {state}")
    elif command == "jobs delete":
        job = client.request("DELETE", _job_path(args.name))
        if as_json:
            _print_json(job)
        else:
            print(f"job {args.name}: deleted")
    elif command == "executions":
        executions = _expect_list(
            client.request("GET", _job_path(args.job, "executions")), "executions"
        )
        if as_json:
            _print_json(executions)
        else:
            _console().print(_executions_table(executions))
    else:
        raise AssertionError(f"unhandled command {command}")


def _tokens_table(tokens: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for title in ("ID", "ROLE", "DESCRIPTION", "CREATED"):
        table.add_column(title, no_wrap=title == "ID")
    for token in tokens:
        table.add_row(
            _text(token.get("id")),
            _text(token.get("role")),
            _text(token.get("description")),
            _text(token.get("created_at")),
        )
    return table


def _acl(client: ApiClient, args: argparse.Namespace, as_json: bool) -> None:
    """``acl bootstrap`` and ``acl token create|list|delete``; a new token's secret is
    printed once (the server keeps only its hash)."""
    if args.acl_command == "bootstrap":
        created = _expect_object(client.request("POST", "/v1/acl/bootstrap"), "token")
    elif args.token_command == "create":
        body = {"role": args.role, "description": args.description}
        created = _expect_object(client.request("POST", "/v1/acl/tokens", body=body), "token")
    elif args.token_command == "list":
        tokens = _expect_list(client.request("GET", "/v1/acl/tokens"), "tokens")
        if as_json:
            _print_json(tokens)
        else:
            _console().print(_tokens_table(tokens))
        return
    else:
        path = "/v1/acl/tokens/" + quote(args.id, safe="")
        deleted = _expect_object(client.request("DELETE", path), "token")
        if as_json:
            _print_json(deleted)
        else:
            print(f"token {deleted.get('id')} ({deleted.get('role')}): deleted")
        return
    if as_json:
        _print_json(created)
    else:
        print(f"{created.get('token')}")
        print(
            f"token {created.get('id')} ({created.get('role')}): keep the line above, it is "
            "shown only once",
            file=sys.stderr,
        )


def _apply(client: ApiClient, path: str, as_json: bool) -> None:
    """POST each job in order; stop at the first refusal, saying which were stored."""
    jobs = read_jobs_file(path)
    stored: list[object] = []
    for job in jobs:
        name = job.get("name", "?")
        try:
            stored.append(client.request("POST", "/v1/jobs", body=job))
        except ClientError as exc:
            done = f" ({len(stored)} of {len(jobs)} jobs were applied before it)" if stored else ""
            raise ClientError(f"job {name}: {exc}{done}") from None
        if not as_json:
            print(f"job {name}: applied")
    if as_json:
        _print_json(stored)


def _keyring(client: ApiClient, args: argparse.Namespace, as_json: bool) -> None:
    """One keyring operation on every member; a report with refusals or silent members is
    printed and then fails the command."""
    if args.list:
        report = client.request("GET", "/v1/keyring")
    else:
        method, key = (
            ("POST", args.install) if args.install
            else ("PUT", args.use) if args.use
            else ("DELETE", args.remove)
        )  # fmt: skip
        report = client.request(method, "/v1/keyring", body={"key": key})
    report = _expect_object(report, "keyring report")
    if as_json:
        _print_json(report)
    else:
        asked = len(report.get("asked", []))
        print(f"{report.get('op')}: {len(report.get('answered', []))}/{asked} members applied it")
        for key, count in dict(report.get("keys", {})).items():
            primary = dict(report.get("primary_keys", {})).get(key, 0)
            note = f" (primary on {primary})" if primary else ""
            print(f"  {key} [{count}/{asked}]{note}")
    problems = [f"{n}: {e}" for n, e in dict(report.get("errors", {})).items()]
    problems += [f"{n}: no answer" for n in report.get("missing", [])]
    if problems:
        raise ClientError("not applied everywhere: " + "; ".join(problems))
