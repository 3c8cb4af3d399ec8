"""The http executor against a real HTTP(S) server on 127.0.0.1 (h11 over trio, in this file)."""

import contextlib
import functools
import socket
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path

import attrs
import h11
import pytest
import trio

from dkron_trio.executors.base import ExecutionRequest, ExecutionResult
from dkron_trio.executors.http import HttpExecutor

EXECUTOR = HttpExecutor()
BIG_BODY = b"y" * 999_997 + b"END"


@attrs.frozen
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Server:
    """Routes: /ok, /status/<code>, /slow (never answers), /big, /stream (one chunk, then
    hangs), /redirect (to /ok), /echo (200 with the request body)."""

    url: str = ""
    seen: list[Seen] = attrs.field(factory=list)

    async def handle(self, stream: trio.abc.Stream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # e.g. a failed TLS handshake
            await self._exchange(stream)

    async def _exchange(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert request is not None
        target = request.target.decode()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.seen.append(Seen(request.method.decode(), target, headers, body))

        async def respond(status: int, content: bytes, extra: list[tuple[str, str]]) -> None:
            fields = [("content-length", str(len(content))), ("connection", "close"), *extra]
            reason = HTTPStatus(status).phrase
            response = h11.Response(status_code=status, headers=fields, reason=reason)
            await stream.send_all(conn.send(response))
            await stream.send_all(conn.send(h11.Data(data=content)))
            await stream.send_all(conn.send(h11.EndOfMessage()))

        if target == "/ok":
            await respond(200, b"all good", [])
        elif target.startswith("/status/"):
            await respond(int(target.rsplit("/", 1)[1]), b"status body", [])
        elif target == "/slow":
            await trio.sleep_forever()
        elif target == "/big":
            await respond(200, BIG_BODY, [])
        elif target == "/stream":
            chunked = [("transfer-encoding", "chunked")]
            response = h11.Response(status_code=200, headers=chunked, reason=b"OK")
            await stream.send_all(conn.send(response))
            await stream.send_all(conn.send(h11.Data(data=b"part one")))
            await trio.sleep_forever()
        elif target == "/redirect":
            await respond(302, b"", [("location", "/ok")])
        elif target == "/echo":
            await respond(200, body, [])
        else:
            await respond(404, b"not found", [])


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    srv = Server()
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, host="127.0.0.1"), srv.handle, 0
    )
    srv.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    return srv


@attrs.frozen
class Cert:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cert]:
    """A self-signed EC certificate for 127.0.0.1 (also a CA, so it can be its own root)."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield Cert(d / "cert.pem", d / "key.pem")


async def tls_server(nursery: trio.Nursery, cert: Cert, *, client_ca: Path | None) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    srv = Server()
    serve = functools.partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, srv.handle, 0, context)
    srv.url = f"https://127.0.0.1:{listeners[0].transport_listener.socket.getsockname()[1]}"
    return srv


def request(job_timeout: timedelta | None = None, **config: str) -> ExecutionRequest:
    return ExecutionRequest(
        job_name="ping",
        execution_id="1714552200000000000-node1",
        scheduled_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
        attempt=1,
        fence=12,
        executor_config=config,
        timeout=job_timeout,
    )


async def run(job_timeout: timedelta | None = None, **config: str) -> ExecutionResult:
    return await EXECUTOR.run(request(job_timeout, **config), lambda _: None)


async def test_get_sends_identity_headers_and_outputs_status_and_body(server: Server) -> None:
    result = await run(url=server.url + "/ok")
    assert result == ExecutionResult(True, "HTTP/1.1 200 OK\nall good", None, "")
    [seen] = server.seen
    assert (seen.method, seen.target, seen.body) == ("GET", "/ok", b"")
    assert seen.headers["x-dkron-job-name"] == "ping"
    assert seen.headers["x-dkron-execution-id"] == "1714552200000000000-node1"
    assert seen.headers["x-dkron-scheduled-at"] == "2024-05-01T08:30:00Z"
    assert seen.headers["x-dkron-attempt"] == "1"
    assert seen.headers["x-dkron-fence"] == "12"


async def test_method_headers_and_body(server: Server) -> None:
    result = await run(
        method="POST",
        url=server.url + "/echo",
        headers='["Content-Type: application/json", "X-Token: a:b", "X-Dkron-Fence: 999"]',
        body='{"hello": "world"}',
    )
    assert result.success
    assert result.output == 'HTTP/1.1 200 OK\n{"hello": "world"}'
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.body == b'{"hello": "world"}'
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-token"] == "a:b"
    assert seen.headers["x-dkron-fence"] == "12"


async def test_unexpected_status_fails_with_the_error_first(server: Server) -> None:
    result = await run(url=server.url + "/status/500")
    assert not result.success
    assert result.error == "response code 500 does not match expectCode 200"
    assert result.output == result.error + "\nHTTP/1.1 500 Internal Server Error\nstatus body"


async def test_expect_code_list(server: Server) -> None:
    assert (await run(url=server.url + "/status/503", expectCode="200,503")).success
    assert not (await run(url=server.url + "/ok", expectCode="201")).success


async def test_expect_body(server: Server) -> None:
    assert (await run(url=server.url + "/ok", expectBody="g[o]+d$")).success
    result = await run(url=server.url + "/ok", expectBody="^bad")
    assert not result.success
    assert result.error == "response body does not match expectBody"


async def test_executor_timeout(server: Server) -> None:
    start = trio.current_time()
    result = await run(url=server.url + "/slow", timeout="200ms")
    assert not result.success
    assert result.error == "no complete response within 0.2s"
    assert trio.current_time() - start < 5


async def test_job_timeout_when_shorter(server: Server) -> None:
    result = await run(timedelta(milliseconds=100), url=server.url + "/slow", timeout="60")
    assert result.error == "no complete response within 0.1s"


async def test_big_body_is_capped_to_its_tail(server: Server) -> None:
    received = 0

    def count(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    result = await EXECUTOR.run(request(url=server.url + "/big", expectBody="END$"), count)
    assert result.success
    assert len(result.output) == 256_000
    assert result.output.endswith("yyyEND")
    assert received == len("HTTP/1.1 200 OK\n") + len(BIG_BODY)


async def test_output_is_streamed_before_the_response_ends(server: Server) -> None:
    chunks: list[bytes] = []
    body_started = trio.Event()

    def collect(chunk: bytes) -> None:
        chunks.append(chunk)
        if b"part one" in chunk:
            body_started.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(EXECUTOR.run, request(url=server.url + "/stream"), collect)
        with trio.fail_after(5):
            await body_started.wait()
        assert chunks == [b"HTTP/1.1 200 OK\n", b"part one"]
        nursery.cancel_scope.cancel()


async def test_redirects_are_followed(server: Server) -> None:
    result = await run(url=server.url + "/redirect")
    assert result.output == "HTTP/1.1 200 OK\nall good"
    assert [s.target for s in server.seen] == ["/redirect", "/ok"]


async def test_debug_shows_request_and_response_headers(server: Server) -> None:
    result = await run(url=server.url + "/ok", debug="true")
    assert result.output.startswith(f"> GET {server.url}/ok\n")
    assert "> x-dkron-job-name: ping\n" in result.output
    assert "HTTP/1.1 200 OK\n< content-length: 8\n< connection: close\nall good" in result.output


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await run(url=f"http://127.0.0.1:{port}/")
    assert not result.success
    assert result.error.startswith("request failed: ConnectError")


async def test_invalid_config() -> None:
    result = await run(url="not a url")
    assert not result.success
    assert result.error.startswith("invalid executor_config: url:")


async def test_tls_with_root_ca_file(nursery: trio.Nursery, cert: Cert) -> None:
    srv = await tls_server(nursery, cert, client_ca=None)
    assert (await run(url=srv.url + "/ok", tlsRootCAsFile=str(cert.cert))).success
    untrusted = await run(url=srv.url + "/ok")
    assert not untrusted.success
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert (await run(url=srv.url + "/ok", tlsNoVerifyPeer="true")).success


async def test_tls_client_certificate(nursery: trio.Nursery, cert: Cert) -> None:
    srv = await tls_server(nursery, cert, client_ca=cert.cert)
    ca = str(cert.cert)
    assert not (await run(url=srv.url + "/ok", tlsRootCAsFile=ca)).success
    result = await run(
        url=srv.url + "/ok",
        tlsRootCAsFile=ca,
        tlsCertificateFile=str(cert.cert),
        tlsCertificateKeyFile=str(cert.key),
    )
    assert result.success, result.error


async def test_missing_tls_file(tmp_path: Path) -> None:
    result = await run(url="https://127.0.0.1:1/", tlsRootCAsFile=str(tmp_path / "nope.pem"))
    assert not result.success
    assert result.error.startswith("cannot load TLS files:")
