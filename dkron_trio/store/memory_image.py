"""The memory store's snapshot image: its records in the replicated commands' wire form.

Reusing the command codec means an image is read back with the same strict checks as a
log entry: any byte string either decodes to exactly the records it was made from or is
refused with ImageError.
"""

from typing import Any, TypeVar

import msgpack

from dkron_trio.commands import (
    CommandError,
    PutExecution,
    RecordMissed,
    SetCursor,
    SetJob,
    SetToken,
    decode_command,
    encode_command,
)
from dkron_trio.store.base import RaftMember
from dkron_trio.store.replica import ImageError
from dkron_trio.store.rules import StoreTx

IMAGE_VERSION = 2
"""2: adds the ACL tokens."""

T = TypeVar("T")


def encode(tx: Any) -> bytes:
    """Every record of the memory store's transaction object (`_MemoryTx`)."""
    jobs = tx.jobs()
    body = {
        "version": IMAGE_VERSION,
        "applied": tx.load_applied(),
        "members": [[m.node_id, m.name, m.address] for m in tx.load_members()],
        "jobs": [encode_command(SetJob(job)) for job in jobs],
        "executions": [encode_command(PutExecution(ex)) for ex in tx.executions(None)],
        "missed": [encode_command(RecordMissed(m)) for job in jobs for m in tx.missed(job.name)],
        "cursors": [encode_command(SetCursor(name, t)) for name, t in tx.cursors().items()],
        "tokens": [encode_command(SetToken(token)) for token in tx.load_tokens()],
    }
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def decode(image: bytes, tx: StoreTx) -> None:
    """Write the image's records into the empty ``tx``."""
    try:
        body = msgpack.unpackb(image, raw=False, strict_map_key=True)
        if not isinstance(body, dict) or body.get("version") != IMAGE_VERSION:
            raise ImageError("not a memory store image of this version")
        tx.save_applied(int(body["applied"]))
        for node_id, name, address in body["members"]:
            tx.save_member(RaftMember(int(node_id), str(name), str(address)))
        for data in body["jobs"]:
            tx.save_job(_expect(decode_command(data), SetJob).job)
        for data in body["executions"]:
            tx.save_execution(_expect(decode_command(data), PutExecution).execution)
        for data in body["missed"]:
            tx.save_missed(_expect(decode_command(data), RecordMissed).missed)
        for data in body["cursors"]:
            cursor = _expect(decode_command(data), SetCursor)
            tx.save_cursor(cursor.job_name, cursor.t)
        for data in body["tokens"]:
            tx.save_token(_expect(decode_command(data), SetToken).token)
    except (CommandError, KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
        raise ImageError(f"not a memory store image: {exc}") from exc


def _expect(cmd: object, kind: type[T]) -> T:
    if not isinstance(cmd, kind):
        raise ImageError(f"image holds {type(cmd).__name__} where {kind.__name__} belongs")
    return cmd
