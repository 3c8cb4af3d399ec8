"""The `http` executor: one HTTP request per attempt, response streamed as output.

Output is the status line and the body (capped like shell output); with `debug` also the
request and the response headers. `expectBody` is matched against the kept tail of the body,
so a large response never has to be held in memory.
"""

import logging
import math
import ssl
from collections.abc import Callable

import attrs
import httpx
import trio

from dkron_trio.durations import format_go_duration
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.executors.config import (
    OUTPUT_LIMIT_BYTES,
    ExecutorConfigError,
    HttpConfig,
    TlsOptions,
    parse_http_config,
)
from dkron_trio.executors.output import OutputBuffer

logger = logging.getLogger(__name__)

SSL_CONTEXT_CACHE_SIZE = 100
"""Distinct TLS settings whose SSL contexts are kept (Dkron keeps 100 clients)."""


def identity_headers(req: ExecutionRequest) -> list[tuple[str, str]]:
    """The attempt's identity as headers: DKRON_JOB_NAME -> X-Dkron-Job-Name, and so on."""
    return [
        ("X-Dkron-" + name.removeprefix("DKRON_").title().replace("_", "-"), value)
        for name, value in req.identity().items()
    ]


def make_ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """Client context for `tls`; with a root CA file only those CAs are trusted (as in Dkron).

    Reads files; raises OSError or ssl.SSLError if they are missing or invalid.
    """
    context = ssl.create_default_context(cafile=tls.root_cas_file)
    if not tls.verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certificate_file is not None:
        context.load_cert_chain(tls.certificate_file, tls.certificate_key_file)
    return context


@attrs.define
class HttpExecutor:
    """Runs `http` jobs. SSL contexts are cached per TLS settings: building one reads the
    system's CA bundle, which costs more than a small request."""

    output_limit: int = OUTPUT_LIMIT_BYTES
    _ssl_contexts: dict[TlsOptions, ssl.SSLContext] = attrs.field(factory=dict)

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        output = OutputBuffer(self.output_limit)
        try:
            cfg = parse_http_config(req.executor_config)
        except ExecutorConfigError as exc:
            return _failed(output, f"invalid executor_config: {exc}")
        try:
            context = await self._ssl_context(cfg.tls)
        except (OSError, ssl.SSLError) as exc:
            return _failed(output, f"cannot load TLS files: {exc}")

        def emit(data: bytes) -> None:
            output.append(data)
            on_output(data)

        body = OutputBuffer(self.output_limit)
        timeout = req.effective_timeout(cfg.timeout)
        with trio.move_on_after(math.inf if timeout is None else timeout.total_seconds()) as scope:
            try:
                status = await _exchange(req, cfg, context, emit, body)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                return _failed(output, f"request failed: {_describe_error(exc)}")
        if scope.cancelled_caught:
            assert timeout is not None
            return _failed(output, f"no complete response within {format_go_duration(timeout)}")
        if status not in cfg.expect_codes:
            expected = ",".join(str(code) for code in sorted(cfg.expect_codes))
            return _failed(output, f"response code {status} does not match expectCode {expected}")
        if cfg.expect_body is not None and not cfg.expect_body.search(
            body.tail().decode("utf-8", errors="replace")
        ):
            return _failed(output, "response body does not match expectBody")
        return ExecutionResult(success=True, output=output.text(), exit_code=None, error="")

    async def _ssl_context(self, tls: TlsOptions) -> ssl.SSLContext:
        context = self._ssl_contexts.get(tls)
        if context is None:
            context = await trio.to_thread.run_sync(make_ssl_context, tls)
            if len(self._ssl_contexts) >= SSL_CONTEXT_CACHE_SIZE:
                del self._ssl_contexts[next(iter(self._ssl_contexts))]
            self._ssl_contexts[tls] = context
        return context


async def _exchange(
    req: ExecutionRequest,
    cfg: HttpConfig,
    context: ssl.SSLContext,
    emit: Callable[[bytes], None],
    body: OutputBuffer,
) -> int:
    """Send the request and stream the response to `emit` (and `body`); the status code."""
    reserved = {name.lower() for name, _ in identity_headers(req)}
    headers = [(k, v) for k, v in cfg.headers if k.lower() not in reserved]
    headers += identity_headers(req)
    content = cfg.body.encode("utf-8") if cfg.body else None
    async with httpx.AsyncClient(verify=context, timeout=None, follow_redirects=True) as client:
        request = client.build_request(cfg.method, cfg.url, headers=headers, content=content)
        if cfg.debug:
            emit(_debug_lines(f"> {request.method} {request.url}", request.headers, ">"))
        response = await client.send(request, stream=True)
        try:
            status_line = (
                f"{response.http_version} {response.status_code} {response.reason_phrase}".rstrip()
            )
            if cfg.debug:
                emit(_debug_lines(status_line, response.headers, "<"))
            else:
                emit(status_line.encode("utf-8", errors="replace") + b"\n")
            async for chunk in response.aiter_bytes():
                body.append(chunk)
                emit(chunk)
        finally:
            await response.aclose()
        return response.status_code


def _describe_error(exc: Exception) -> str:
    """The exception's type and the first message along its chain (httpx often wraps the
    telling one, e.g. a certificate verification failure, in an empty ConnectError)."""
    cause: BaseException | None = exc
    while cause is not None:
        if str(cause):
            return f"{type(exc).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _debug_lines(first: str, headers: httpx.Headers, marker: str) -> bytes:
    lines = [first, *(f"{marker} {name}: {value}" for name, value in headers.items())]
    return ("\n".join(lines) + "\n").encode("utf-8", errors="replace")


def _failed(output: OutputBuffer, error: str) -> ExecutionResult:
    return ExecutionResult(success=False, output=output.text(error), exit_code=None, error=error)
