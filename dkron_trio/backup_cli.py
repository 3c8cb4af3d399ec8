"""``dkron-trio backup FILE``: save a server's state image (``GET /v1/backup``) to a file.

The file is written beside its final name and renamed into place once complete, so an
interrupted backup never leaves a truncated file under the name asked for.
"""

import os
import sys
from pathlib import Path

import httpx

from dkron_trio.cli_client import resolve_address, token_headers

BACKUP_TIMEOUT_SECONDS = 300.0


def backup(address: str | None, target: Path, token: str | None = None) -> int:
    """Download the image to ``target``; return the process exit code."""
    base = resolve_address(address)
    partial = target.with_name(target.name + ".partial")
    try:
        with (
            httpx.Client(
                base_url=base, timeout=BACKUP_TIMEOUT_SECONDS, headers=token_headers(token)
            ) as client,
            client.stream("GET", "/v1/backup") as response,
        ):
            if response.status_code != 200:
                response.read()
                print(
                    f"dkron-trio backup: {base} answered {response.status_code}: "
                    f"{response.text.strip()}",
                    file=sys.stderr,
                )
                return 1
            applied = response.headers.get("X-Dkron-Applied-Index", "?")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
    except (httpx.HTTPError, OSError) as exc:
        partial.unlink(missing_ok=True)
        print(f"dkron-trio backup: {exc}", file=sys.stderr)
        return 1
    partial.replace(target)
    print(f"backup of {base} at applied index {applied} written to {target}")
    return 0
