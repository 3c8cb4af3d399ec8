"""Schemathesis against the OpenAPI document a real ``dkron-trio agent --server`` serves: a
bounded number of generated requests per operation, and no 5xx, no answer outside the
documented statuses, content types and schemas, no crash of the process.

Two operations are left out because their documented effect ends the test: POST /v1/leave
stops the agent, and POST /v1/pause makes writes answer 503 (documented, but a 5xx).
"""

import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.process import AgentProcess, free_port, wait_for

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 6
SEED = 7
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
LEFT_OUT = ("/v1/leave", "/v1/pause")


async def test_generated_requests_get_documented_answers_and_never_a_5xx(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "dkron.data", free_port())
    agent.start()
    try:
        async with httpx.AsyncClient(base_url=agent.url) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, within=30, what="the HTTP API", agent=agent)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{agent.url}/v1/openapi.json",
            f"--max-examples={MAX_EXAMPLES}",
            f"--seed={SEED}",
            "--workers=1",
            "--phases=examples,fuzzing",
            f"--checks={','.join(CHECKS)}",
            "--request-timeout=10",
            "--no-color",
        ]
        for path in LEFT_OUT:
            command += ["--exclude-path", path]
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path
        )
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        print(output[-3000:])
        agent.assert_alive()
        assert result.returncode == 0, output[-8000:] + "\n" + agent.log_text()[-4000:]
        assert " passed" in output
    finally:
        agent.stop_quietly()
