"""Gossip encryption keys (Serf's keyring): the primary key seals every datagram, any installed
key opens one, so keys rotate without downtime (install everywhere, use, remove the old one).

A sealed datagram is the version byte `SEALED`, a random 96-bit nonce and the AES-GCM
ciphertext of the plain datagram with its tag; the version byte is authenticated as
associated data.
"""

from __future__ import annotations

import base64
import collections
import os

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dkron_trio.gossip.config import KEY_SIZES, KeyringError
from dkron_trio.gossip.messages import KeyOp

SEALED = 2
"""First byte of a sealed datagram (a plain one starts with codec.VERSION)."""
NONCE_SIZE = 12
TAG_SIZE = 16
_AAD = bytes([SEALED])


class UnsealError(ValueError):
    """A datagram no installed key opens (unsealed, tampered, foreign key or replayed)."""


def generate_key() -> str:
    """A new random 32-byte key, base64-encoded (what `keygen` prints)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def _check(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) not in KEY_SIZES:
        raise KeyringError("key: must be 16, 24 or 32 bytes")
    return key


@attrs.define
class Keyring:
    """Installed keys, the primary first."""

    _keys: list[bytes]
    _ciphers: dict[bytes, AESGCM] = attrs.field(factory=dict)

    @classmethod
    def of(cls, primary: bytes, *others: bytes) -> Keyring:
        ring = cls([_check(primary)])
        for key in others:
            ring.install(key)
        return ring

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    def keys(self) -> list[bytes]:
        return list(self._keys)

    def install(self, key: bytes) -> None:
        """Add a key that opens datagrams (idempotent)."""
        if _check(key) not in self._keys:
            self._keys.append(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary, sealing from now on."""
        if key not in self._keys:
            raise KeyringError("use: key is not installed")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        if key not in self._keys:
            raise KeyringError("remove: key is not installed")
        if key == self._keys[0]:
            raise KeyringError("remove: cannot remove the primary key; use another first")
        self._keys.remove(key)

    def check(self, op: KeyOp, key: bytes) -> None:
        """Raise KeyringError if `apply(op, key)` would be refused; change nothing."""
        if op is KeyOp.INSTALL:
            _check(key)
        elif op is KeyOp.USE and key not in self._keys:
            raise KeyringError("use: key is not installed")
        elif op is KeyOp.REMOVE:
            if key not in self._keys:
                raise KeyringError("remove: key is not installed")
            if key == self._keys[0]:
                raise KeyringError("remove: cannot remove the primary key; use another first")

    def apply(self, op: KeyOp, key: bytes) -> None:
        """One keyring operation as asked by a KeyRequest (LIST changes nothing)."""
        self.check(op, key)
        if op is KeyOp.INSTALL:
            self.install(key)
        elif op is KeyOp.USE:
            self.use(key)
        elif op is KeyOp.REMOVE:
            self.remove(key)

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return _AAD + nonce + self._cipher(self.primary).encrypt(nonce, plain, _AAD)

    def open(self, data: bytes) -> bytes:
        """The plain datagram inside `data`; UnsealError if no installed key opens it."""
        if len(data) < 1 + NONCE_SIZE + TAG_SIZE or data[0] != SEALED:
            raise UnsealError("datagram: not sealed")
        nonce, body = data[1 : 1 + NONCE_SIZE], data[1 + NONCE_SIZE :]
        for key in self._keys:
            try:
                return self._cipher(key).decrypt(nonce, body, _AAD)
            except InvalidTag:
                continue
        raise UnsealError("datagram: no installed key opens it")


@attrs.define
class ReplayWindow:
    """Remembers the nonces of the last `size` opened datagrams, so a captured datagram sent
    again is refused. (Older replays only repeat stale news, which incarnation numbers make
    harmless.)"""

    size: int = 65536
    _seen: set[bytes] = attrs.field(factory=set)
    _order: collections.deque[bytes] = attrs.field(factory=collections.deque)

    def admit(self, data: bytes) -> bool:
        """True the first time a sealed datagram's nonce is seen."""
        nonce = data[1 : 1 + NONCE_SIZE]
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        self._order.append(nonce)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True
