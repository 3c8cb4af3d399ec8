"""The `backend` keys: Dkron's values, a clear refusal of the rest, machines required."""

from datetime import timedelta

import pytest

from dkron_trio.backends.registry import BACKENDS, driver_opener
from dkron_trio.config import AgentConfig, ConfigError, load_config


def _load(argv: dict[str, object], env: dict[str, str] | None = None) -> AgentConfig:
    return load_config(argv, env or {}, None, [], hostname="h")


def test_the_embedded_store_is_the_default_and_accepts_dkrons_names() -> None:
    assert _load({}).backend == ""
    for name in ("raft", "boltdb"):
        assert _load({"backend": name}).backend == name


def test_an_external_backend_takes_machines_keyspace_and_lease_ttl() -> None:
    config = _load(
        {
            "backend": "etcd",
            "backend-machines": ["127.0.0.1:2379", "127.0.0.1:2380"],
            "keyspace": "prod-cron",
            "backend-lease-ttl": "3s",
        }
    )
    assert config.backend_machines == ("127.0.0.1:2379", "127.0.0.1:2380")
    assert (config.keyspace, config.backend_lease_ttl) == ("prod-cron", timedelta(seconds=3))
    env = _load({}, {"DKRON_BACKEND": "zk", "DKRON_BACKEND_MACHINES": "a:2181,b:2181"})
    assert (env.backend, env.backend_machines) == ("zk", ("a:2181", "b:2181"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ({"backend": "etcd"}, "backend-machines: backend etcd needs at least one host:port"),
        ({"backend": "consul"}, "no Consul server can be installed here"),
        ({"backend": "mongo"}, "unknown backend 'mongo'"),
        ({"keyspace": "a/b"}, "keyspace"),
        ({"backend-lease-ttl": "500ms"}, "backend-lease-ttl: must be at least 1s"),
    ],
)
def test_bad_backend_settings_are_refused_by_name(argv: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(argv)


def test_every_backend_names_an_open_driver_function() -> None:
    assert set(BACKENDS) >= {"etcd", "redis", "zk", "zookeeper", "dynamodb"}
    assert callable(driver_opener("etcd"))
