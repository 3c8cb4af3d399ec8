"""Keyring rules: key parsing, install / use / remove, sealing and opening."""

from __future__ import annotations

import base64

import pytest

from dkron_trio.gossip.config import KeyringError, parse_key
from dkron_trio.gossip.keyring import Keyring, ReplayWindow, UnsealError, generate_key

K1, K2, K3 = b"1" * 16, b"2" * 24, b"3" * 32


def test_keys_parse_from_base64_of_aes_sizes() -> None:
    for key in (K1, K2, K3):
        assert parse_key(base64.b64encode(key).decode()) == key
    assert len(parse_key(generate_key())) == 32
    with pytest.raises(KeyringError, match="base64"):
        parse_key("not base64!")
    with pytest.raises(KeyringError, match="16, 24 or 32"):
        parse_key(base64.b64encode(b"x" * 20).decode())


def test_primary_seals_and_any_installed_key_opens() -> None:
    old, new = Keyring.of(K1), Keyring.of(K2, K1)
    assert new.open(old.seal(b"\x01hello")) == b"\x01hello"
    with pytest.raises(UnsealError):
        old.open(new.seal(b"\x01hello"))
    new.use(K1)
    assert old.open(new.seal(b"x")) == b"x"


def test_sealed_datagrams_are_authenticated() -> None:
    ring = Keyring.of(K3)
    sealed = bytearray(ring.seal(b"\x01payload"))
    for i in (0, 5, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x40
        with pytest.raises(UnsealError):
            ring.open(bytes(tampered))
    with pytest.raises(UnsealError, match="not sealed"):
        ring.open(b"\x01plain")


def test_key_operations_are_checked() -> None:
    ring = Keyring.of(K1)
    with pytest.raises(KeyringError, match="not installed"):
        ring.use(K2)
    with pytest.raises(KeyringError, match="primary"):
        ring.remove(K1)
    with pytest.raises(KeyringError, match="16, 24 or 32"):
        ring.install(b"short")
    ring.install(K2)
    ring.install(K2)
    assert ring.keys() == [K1, K2]
    ring.use(K2)
    ring.remove(K1)
    assert ring.keys() == [K2] and ring.primary == K2


def test_replay_window_refuses_repeats_and_forgets_the_oldest() -> None:
    window = ReplayWindow(size=2)
    ring = Keyring.of(K1)
    a, b, c = (ring.seal(bytes([i])) for i in range(3))
    assert window.admit(a) and not window.admit(a)
    assert window.admit(b) and window.admit(c)
    assert window.admit(a)  # pushed out of the window
