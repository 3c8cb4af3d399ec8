"""ACL tokens: the roles, what each role may do, and how a token is kept.

A token is 32 random bytes (from the OS's CSPRNG, drawn by the caller) written as base64url.
The cluster keeps only its SHA-256, never the token: a leaked ``state.db``, snapshot, backup
or Raft log cannot be replayed as a credential. A plain fast hash is enough (no bcrypt or
argon2) because the secret is not a password: with 256 random bits there is no dictionary to
try and no way to brute-force the preimage, so slowing each guess buys nothing, while every
API request must hash its token cheaply. A token's public id is the first 16 hex digits of its
hash: unique for practical purposes, shown in listings, and useless for authenticating.
"""

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import attrs

from dkron_trio.job import ValidationError, format_time, parse_time, require_aware

SECRET_BYTES = 32
"""Random bytes in a token."""
MAX_TOKEN_CHARS = 256
"""Presented credentials longer than this are refused unread (a token is 43 characters)."""
MAX_DESCRIPTION_CHARS = 256
ID_CHARS = 16

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_ID_RE = re.compile(r"[0-9a-f]{16}")


class Access(Enum):
    """What an operation needs, declared next to it (`dkron_trio.http.spec.Operation`)."""

    OPEN = "open"
    """No token: health and the API document, and the first token's bootstrap."""
    READ = "read"
    """Any token: every GET that shows state."""
    OPERATE = "operate"
    """Run a job, toggle it, cancel an execution."""
    ADMIN = "admin"
    """Everything else: job definitions, tokens, keyring, backup, restore, leave, pause."""


class Role(Enum):
    READ_ONLY = "read-only"
    OPERATOR = "operator"
    ADMIN = "admin"

    def may(self, access: Access) -> bool:
        """Does a token of this role grant `access`?"""
        return access in _GRANTS[self]


_GRANTS: Mapping[Role, frozenset[Access]] = {
    Role.READ_ONLY: frozenset({Access.OPEN, Access.READ}),
    Role.OPERATOR: frozenset({Access.OPEN, Access.READ, Access.OPERATE}),
    Role.ADMIN: frozenset(Access),
}


def parse_role(value: object) -> Role:
    """The role named by ``value``; ValidationError naming the choices otherwise."""
    for role in Role:
        if value == role.value:
            return role
    choices = ", ".join(r.value for r in Role)
    raise ValidationError("role", f"must be one of {choices}, got {value!r}")


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen(kw_only=True)
class AclToken:
    """A stored token: no secret, only its hash."""

    id: str
    secret_hash: str
    role: Role
    description: str
    created_at: datetime

    def __attrs_post_init__(self) -> None:
        if not _HASH_RE.fullmatch(self.secret_hash):
            raise ValidationError("hash", "must be 64 lowercase hex digits (a SHA-256)")
        if self.id != self.secret_hash[:ID_CHARS]:
            raise ValidationError("id", "must be the first 16 hex digits of the hash")
        if len(self.description) > MAX_DESCRIPTION_CHARS:
            raise ValidationError(
                "description", f"must be at most {MAX_DESCRIPTION_CHARS} characters"
            )
        require_aware(self.created_at, "created_at")

    def to_json(self) -> dict[str, Any]:
        """What the API shows (never the hash)."""
        return {
            "id": self.id,
            "role": self.role.value,
            "description": self.description,
            "created_at": format_time(self.created_at),
        }

    def to_record(self) -> dict[str, Any]:
        """The replicated form (commands, images)."""
        return {**self.to_json(), "hash": self.secret_hash}

    @classmethod
    def from_record(cls, obj: Mapping[str, Any]) -> "AclToken":
        created_at = parse_time(obj["created_at"], "created_at")
        if created_at is None:
            raise ValidationError("created_at", "is required")
        description = obj["description"]
        if not isinstance(description, str):
            raise ValidationError("description", "must be a string")
        return cls(
            id=obj["id"],
            secret_hash=obj["hash"],
            role=parse_role(obj["role"]),
            description=description,
            created_at=created_at,
        )


def issue(secret: bytes, role: Role, description: str, now: datetime) -> tuple[str, AclToken]:
    """A new token from ``secret`` (`SECRET_BYTES` random bytes): the text handed to its
    owner once, and the record the cluster keeps."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a token secret is {SECRET_BYTES} bytes, got {len(secret)}")
    text = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
    digest = hash_token(text)
    record = AclToken(
        id=digest[:ID_CHARS],
        secret_hash=digest,
        role=role,
        description=description,
        created_at=now,
    )
    return text, record


def valid_token_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))
