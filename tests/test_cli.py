"""The command line: agent flags reach AgentConfig; client commands make the right requests
to a small fake Dkron-compatible server (a test double for the CLI only) and print the answer.
"""

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from dkron_trio import __version__
from dkron_trio.cli import main
from dkron_trio.config import AgentConfig, HostPort

Reply = tuple[int, object]  # status, JSON payload (bytes = plain-text body)


@attrs.frozen
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    token: str | None = None
    """The X-Dkron-Token header sent."""


@attrs.define
class FakeDkron:
    """Canned answers by (method, raw path); a callable answer gets the request's JSON body."""

    address: str = ""
    routes: dict[tuple[str, str], Reply | Callable[[Any], Reply]] = attrs.Factory(dict)
    seen: list[Seen] = attrs.Factory(list)

    def answer(self, method: str, path: str, body: Any) -> Reply:
        route = self.routes.get((method, path))
        if route is None:
            return 404, {"error": f"no route {method} {path}"}
        return route(body) if callable(route) else route


@pytest.fixture
def fake() -> Iterator[FakeDkron]:
    state = FakeDkron()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            token = self.headers.get("X-Dkron-Token")
            state.seen.append(Seen(self.command, url.path, parse_qs(url.query), body, token))
            status, payload = state.answer(self.command, url.path, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            kind = "text/plain" if isinstance(payload, bytes) else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval only makes shutdown() at teardown quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.address = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DKRON_"):
            monkeypatch.delenv(name)


JOB = {
    "name": "backup",
    "schedule": "@every 1m",
    "status": "success",
    "disabled": False,
    "success_count": 3,
    "error_count": 1,
    "last_success": "2024-05-01T10:00:00Z",
    "next": "2024-05-01T10:01:00Z",
    "executor": "shell",
    "executor_config": {"command": "echo hi"},
}
OTHER = {**JOB, "name": "report", "status": "", "schedule": "0 0 * * * *", "last_success": None}


def run_cli(fake: FakeDkron, *argv: str) -> int:
    return main([*argv, "--address", fake.address])


def test_jobs_list_prints_a_table(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs"] = (200, [JOB, OTHER])
    assert run_cli(fake, "jobs", "list") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "SCHEDULE", "STATUS"]
    assert lines[1].split()[:4] == ["backup", "@every", "1m", "success"]
    assert "2024-05-01T10:00:00Z" in lines[1]
    assert lines[2].split()[0] == "report" and "untriggered" in lines[2]
    assert fake.seen == [Seen("GET", "/v1/jobs", {}, None)]


def test_jobs_list_json(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs"] = (200, [JOB])
    assert run_cli(fake, "jobs", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [JOB]


def test_jobs_show(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs/backup"] = (200, JOB)
    assert run_cli(fake, "jobs", "show", "backup") == 0
    rows = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1].strip()
            for line in capsys.readouterr().out.splitlines()}  # fmt: skip
    assert rows["schedule"] == "@every 1m"
    assert rows["executor_config"] == '{"command": "echo hi"}'
    assert rows["disabled"] == "no"
    assert run_cli(fake, "jobs", "show", "backup", "--json") == 0
    assert json.loads(capsys.readouterr().out) == JOB


def test_job_names_are_quoted_in_paths(fake: FakeDkron) -> None:
    fake.routes["GET", "/v1/jobs/a%2Fb"] = (200, JOB)
    assert run_cli(fake, "jobs", "show", "a/b") == 0
    assert fake.seen[0].path == "/v1/jobs/a%2Fb"


def test_jobs_apply_json_list(
    fake: FakeDkron, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST", "/v1/jobs"] = lambda body: (201, body)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([JOB, OTHER]))
    assert run_cli(fake, "jobs", "apply", "-f", str(path)) == 0
    assert [(s.method, s.path, s.body) for s in fake.seen] == [
        ("POST", "/v1/jobs", JOB),
        ("POST", "/v1/jobs", OTHER),
    ]
    assert capsys.readouterr().out.splitlines() == ["job backup: applied", "job report: applied"]


def test_jobs_apply_single_yaml_job(
    fake: FakeDkron, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST", "/v1/jobs"] = lambda body: (201, body)
    path = tmp_path / "job.yml"
    path.write_text("name: nightly\nschedule: '@daily'\nexecutor: shell\n")
    assert run_cli(fake, "jobs", "apply", "-f", str(path), "--json") == 0
    expected = {"name": "nightly", "schedule": "@daily", "executor": "shell"}
    assert [s.body for s in fake.seen] == [expected]
    assert json.loads(capsys.readouterr().out) == [expected]


def test_jobs_apply_stops_at_the_first_refusal(
    fake: FakeDkron, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(body: Any) -> Reply:
        if body["name"] == "report":
            return 400, {"error": "schedule: invalid cron expression"}
        return 201, body

    fake.routes["POST", "/v1/jobs"] = answer
    path = tmp_path / "jobs.yaml"
    path.write_text(json.dumps([JOB, OTHER, {**JOB, "name": "third"}]))
    assert run_cli(fake, "jobs", "apply", "-f", str(path)) == 1
    assert [s.body["name"] for s in fake.seen] == ["backup", "report"]
    captured = capsys.readouterr()
    assert captured.out == "job backup: applied\n"
    assert captured.err == (
        "dkron-trio: error: job report: 400 schedule: invalid cron expression "
        "(1 of 3 jobs were applied before it)\n"
    )


def test_jobs_apply_from_stdin(fake: FakeDkron, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.routes["POST", "/v1/jobs"] = lambda body: (201, body)
    monkeypatch.setattr(sys, "stdin", io.StringIO("- name: a\n- name: b\n"))
    assert run_cli(fake, "jobs", "apply", "-f", "-") == 0
    assert [s.body for s in fake.seen] == [{"name": "a"}, {"name": "b"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "item 0 is not a job object"), ("{", "cannot parse")],
)
def test_jobs_apply_bad_file(
    fake: FakeDkron, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(text)
    assert run_cli(fake, "jobs", "apply", "-f", str(path)) == 1
    assert message in capsys.readouterr().err
    assert fake.seen == []


def test_jobs_apply_missing_file(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(fake, "jobs", "apply", "-f", "/nonexistent/jobs.json") == 1
    assert "cannot read /nonexistent/jobs.json" in capsys.readouterr().err


def test_jobs_run_with_and_without_force(
    fake: FakeDkron, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST", "/v1/jobs/backup/run"] = (202, JOB)
    assert run_cli(fake, "jobs", "run", "backup") == 0
    assert run_cli(fake, "jobs", "run", "backup", "--force") == 0
    assert [(s.method, s.path, s.query) for s in fake.seen] == [
        ("POST", "/v1/jobs/backup/run", {}),
        ("POST", "/v1/jobs/backup/run", {"force": ["true"]}),
    ]
    assert capsys.readouterr().out == "job backup: run requested\n" * 2


def test_jobs_toggle_and_delete(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["POST", "/v1/jobs/backup/toggle"] = (200, {**JOB, "disabled": True})
    fake.routes["DELETE", "/v1/jobs/backup"] = (200, JOB)
    assert run_cli(fake, "jobs", "toggle", "backup") == 0
    assert run_cli(fake, "jobs", "delete", "backup") == 0
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/v1/jobs/backup/toggle"),
        ("DELETE", "/v1/jobs/backup"),
    ]
    assert capsys.readouterr().out == "job backup: disabled\njob backup: deleted\n"


EXECUTIONS = [
    {
        "id": "1714557600000000000-n1",
        "job_name": "backup",
        "node_name": "n1",
        "started_at": "2024-05-01T10:00:00Z",
        "finished_at": "2024-05-01T10:00:01Z",
        "success": True,
        "attempt": 1,
        "output": "hi\n",
    },
    {
        "id": "1714557660000000000-n2",
        "job_name": "backup",
        "node_name": "n2",
        "started_at": "2024-05-01T10:01:00Z",
        "finished_at": "0001-01-01T00:00:00Z",
        "success": False,
        "attempt": 1,
        "output": "",
    },
    {
        "id": "1714557720000000000-n3",
        "job_name": "backup",
        "node_name": "n3",
        "started_at": "2024-05-01T10:02:00Z",
        "finished_at": "2024-05-01T10:03:00Z",
        "success": False,
        "attempt": 2,
        "output": "",
        "status": "lost",
    },
]


def test_executions_table_and_json(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs/backup/executions"] = (200, EXECUTIONS)
    assert run_cli(fake, "executions", "backup") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NODE", "STATUS", "ATTEMPT", "STARTED", "FINISHED"]
    assert lines[1].split() == [
        "1714557600000000000-n1", "n1", "success", "1",
        "2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z",
    ]  # fmt: skip
    assert lines[2].split()[:3] == ["1714557660000000000-n2", "n2", "running"]
    assert lines[2].split()[-1] == "-"
    assert lines[3].split()[:4] == ["1714557720000000000-n3", "n3", "lost", "2"]
    assert run_cli(fake, "executions", "backup", "--json") == 0
    assert json.loads(capsys.readouterr().out) == EXECUTIONS


def test_leave(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["POST", "/v1/leave"] = (200, [{"Name": "n1"}])
    assert run_cli(fake, "leave") == 0
    assert fake.seen == [Seen("POST", "/v1/leave", {}, None)]
    assert capsys.readouterr().out == f"{fake.address}: node is leaving the cluster\n"


def test_json_error_body_is_printed(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs/nope"] = (404, {"error": "job not found: nope"})
    assert run_cli(fake, "jobs", "show", "nope") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "dkron-trio: error: 404 job not found: nope\n"


def test_plain_text_error_body_is_printed(
    fake: FakeDkron, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["DELETE", "/v1/jobs/parent"] = (404, b"could not delete job with dependent jobs")
    assert run_cli(fake, "jobs", "delete", "parent") == 1
    err = capsys.readouterr().err
    assert err == "dkron-trio: error: 404 could not delete job with dependent jobs\n"


def test_answer_that_is_not_json(fake: FakeDkron, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET", "/v1/jobs"] = (200, b"<html>")
    assert run_cli(fake, "jobs", "list") == 1
    assert "not JSON" in capsys.readouterr().err


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # A bound socket that never listens refuses connections, and nobody else can take it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert main(["jobs", "list", "--address", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dkron-trio: error: cannot connect to http://127.0.0.1:{port}: ")
    assert "connection refused" in err


def test_address_from_env_without_scheme(
    fake: FakeDkron, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["GET", "/v1/jobs"] = (200, [])
    monkeypatch.setenv("DKRON_ADDRESS", fake.address.removeprefix("http://"))
    assert main(["jobs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert len(fake.seen) == 1


NEW_TOKEN = {
    "id": "0123456789abcdef",
    "role": "admin",
    "description": "bootstrap",
    "created_at": "2024-05-01T10:00:00Z",
    "token": "s3cret",
}


def test_acl_bootstrap_prints_the_token_once(
    fake: FakeDkron, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes[("POST", "/v1/acl/bootstrap")] = (201, NEW_TOKEN)
    assert run_cli(fake, "acl", "bootstrap") == 0
    out, err = capsys.readouterr()
    assert out == "s3cret\n"
    assert "0123456789abcdef" in err and "only once" in err
    assert fake.seen[-1].token is None


def test_acl_token_commands_send_the_token(
    fake: FakeDkron, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes[("POST", "/v1/acl/tokens")] = lambda body: (201, {**NEW_TOKEN, **body})
    fake.routes[("GET", "/v1/acl/tokens")] = (200, [NEW_TOKEN])
    fake.routes[("DELETE", "/v1/acl/tokens/0123456789abcdef")] = (200, NEW_TOKEN)
    args = ("acl", "token", "create", "--role", "operator", "--description", "ci")
    assert run_cli(fake, *args, "--token", "adm") == 0
    assert fake.seen[-1].body == {"role": "operator", "description": "ci"}
    assert fake.seen[-1].token == "adm"
    monkeypatch.setenv("DKRON_TOKEN", "from-env")
    assert run_cli(fake, "acl", "token", "list") == 0
    assert fake.seen[-1].token == "from-env"
    assert run_cli(fake, "acl", "token", "delete", "0123456789abcdef", "--token", "flag") == 0
    assert fake.seen[-1].token == "flag"
    out = capsys.readouterr().out
    assert "ROLE" in out and "0123456789abcdef" in out and "deleted" in out
    assert run_cli(fake, "jobs", "list") == 1  # no route; but the token still went along
    assert fake.seen[-1].token == "from-env"


def test_acl_token_create_needs_a_known_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acl", "token", "create", "--role", "root"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_raft_commands_report_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    assert main(["raft", "list-peers", "--rpc-addr", f"127.0.0.1:{port}"]) == 1
    assert main(["raft", "remove-peer", "--rpc-addr", f"127.0.0.1:{port}", "--peer-id", "n2"]) == 1
    err = capsys.readouterr().err
    assert err.count(f"error: 127.0.0.1:{port}") == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("size", [16, 24, 32])
def test_keygen(size: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--bytes", str(size)]) == 0
    key = capsys.readouterr().out.strip()
    assert len(base64.b64decode(key, validate=True)) == size


def test_keygen_default_and_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32
    assert main(["keygen", "--bytes", "20"]) == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert f"Version: {__version__}" in capsys.readouterr().out


def test_usage_errors() -> None:
    assert main([]) == 2
    assert main(["jobs"]) == 2
    assert main(["jobs", "apply"]) == 2
    assert main(["agent", "--no-such-flag"]) == 2


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dkron_trio", "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert f"Version: {__version__}" in result.stdout


# ---- agent ------------------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[AgentConfig]:
    """Stands in for dkron_trio.agent: records the configs run_agent was given."""
    configs: list[AgentConfig] = []
    module = types.ModuleType("dkron_trio.agent")
    module.run_agent = configs.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dkron_trio.agent", module)
    return configs


def test_agent_flags_env_and_file_reach_run_agent(
    started: list[AgentConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "dkron.yml"
    config_file.write_text("region: eu\ndatacenter: file-dc\ntags: {from: file}\n")
    monkeypatch.setenv("DKRON_DATACENTER", "env-dc")
    monkeypatch.setenv("DKRON_JOIN", "10.0.0.5")
    argv = [
        "agent", "--config", str(config_file), "--server", "--bootstrap-expect", "1",
        "--node-name", "n1", "--http-addr", "127.0.0.1:0", "--tag", "a=b", "--tag", "c=d",
        "--data-dir", str(tmp_path / "data"), "--log-format", "json",
    ]  # fmt: skip
    assert main(argv) == 0
    [config] = started
    assert config.server is True and config.bootstrap_expect == 1
    assert config.node_name == "n1"
    assert config.http_addr == HostPort("127.0.0.1", 0)
    assert dict(config.tags) == {"a": "b", "c": "d"}
    assert config.region == "eu"
    assert config.datacenter == "env-dc"
    assert config.join == (HostPort("10.0.0.5", 8946),)
    assert config.data_dir == tmp_path / "data"


def test_agent_bool_flag_forms(started: list[AgentConfig], tmp_path: Path) -> None:
    empty = tmp_path / "dkron.yml"
    empty.write_text("")
    assert main(["agent", "--config", str(empty), "--server=false"]) == 0
    assert main(["agent", "--config", str(empty), "--server", "true"]) == 0
    assert [c.server for c in started] == [False, True]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--statsd-addr", "127.0.0.1:8125"], "flag --statsd-addr: not supported yet"),
        (["--encrypt", "abc"], "flag --encrypt: not valid base64"),
        (["--ui"], "flag --ui: not supported yet"),
        (["--rpc-port", "x"], "flag --rpc-port: expected an integer, got 'x'"),
        (["--bootstrap-expect", "3"], "flag --bootstrap-expect: only valid together with server"),
    ],
)
def test_agent_config_errors(
    started: list[AgentConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    empty = tmp_path / "dkron.yml"
    empty.write_text("")
    assert main(["agent", "--config", str(empty), *argv]) == 2
    assert capsys.readouterr().err == f"dkron-trio agent: {message}\n"
    assert started == []


def test_agent_interrupted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(config: AgentConfig) -> None:
        raise KeyboardInterrupt

    module = types.ModuleType("dkron_trio.agent")
    module.run_agent = interrupted  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dkron_trio.agent", module)
    empty = tmp_path / "dkron.yml"
    empty.write_text("")
    assert main(["agent", "--config", str(empty)]) == 130
