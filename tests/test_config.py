"""Agent configuration: sources and precedence, file formats, errors naming their source."""

import itertools
import json
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

from dkron_trio.config import (
    AgentConfig,
    ConfigError,
    HostPort,
    LogFormat,
    LogLevel,
    load_config,
    parse_host_port,
    parse_tags,
)
from dkron_trio.config_keys import KEYS, NOT_SUPPORTED, KeyStatus


def load(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    search_paths: list[Path] | None = None,
) -> AgentConfig:
    return load_config(
        flags or {}, env or {}, config_file, search_paths or [], hostname="test-host"
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = load()
    assert config.node_name == "test-host"
    assert config.server is False
    assert config.data_dir == Path("dkron.data")
    assert config.http_addr == HostPort("", 8080)
    assert config.bind_addr == HostPort("0.0.0.0", 8946)
    assert config.advertise_addr is None
    assert config.rpc_port == 6868
    assert config.advertised_rpc_port == 6868
    assert config.rpc_addr == HostPort("0.0.0.0", 6868)
    assert dict(config.tags) == {}
    assert (config.region, config.datacenter) == ("global", "dc1")
    assert config.bootstrap_expect == 0
    assert config.join == () and config.retry_join == ()
    assert config.raft_multiplier == 1
    assert config.log_level is LogLevel.INFO
    assert config.log_format is LogFormat.TEXT
    assert config.body_limit == 1024 * 1024


@attrs.frozen
class Case:
    """One key given by each source, and the typed value each source should produce."""

    key: str
    field: str
    file_value: object
    env_text: str
    flag_text: str
    expected: Mapping[str, object]  # source ("file", "env", "flag", "default") -> value


PRECEDENCE_CASES = [
    Case("data-dir", "data_dir", "/f", "/e", "/c",
         {"file": Path("/f"), "env": Path("/e"), "flag": Path("/c"),
          "default": Path("dkron.data")}),
    Case("rpc-port", "rpc_port", 7001, "7002", "7003",
         {"file": 7001, "env": 7002, "flag": 7003, "default": 6868}),
    Case("region", "region", "file-r", "env-r", "flag-r",
         {"file": "file-r", "env": "env-r", "flag": "flag-r", "default": "global"}),
    Case("log-level", "log_level", "debug", "warn", "error",
         {"file": LogLevel.DEBUG, "env": LogLevel.WARN, "flag": LogLevel.ERROR,
          "default": LogLevel.INFO}),
    Case("http-addr", "http_addr", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3",
         {"file": HostPort("127.0.0.1", 1), "env": HostPort("127.0.0.1", 2),
          "flag": HostPort("127.0.0.1", 3), "default": HostPort("", 8080)}),
]  # fmt: skip


@pytest.mark.parametrize("case", PRECEDENCE_CASES, ids=lambda c: c.key)
@pytest.mark.parametrize(
    "given", [set(s) for n in range(4) for s in itertools.combinations(("file", "env", "flag"), n)]
)
def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, case: Case, given: set[str]
) -> None:
    file_data = {case.key: case.file_value} if "file" in given else {}
    path = write(tmp_path, "dkron.json", json.dumps(file_data))
    env = {KEYS[case.key].env: case.env_text} if "env" in given else {}
    flags = {case.key: case.flag_text} if "flag" in given else {}
    config = load(flags, env, path)
    winner = next((s for s in ("flag", "env", "file") if s in given), "default")
    assert getattr(config, case.field) == case.expected[winner]


FULL = {
    "server": True,
    "node-name": "n1",
    "data-dir": "/var/lib/dkron",
    "http-addr": "127.0.0.1:9090",
    "bind-addr": "10.0.0.1:7946",
    "advertise-addr": "10.0.0.9",
    "rpc-port": 7000,
    "advertise-rpc-port": 7100,
    "tags": {"role2": "web", "rack": 3},
    "region": "eu",
    "datacenter": "dc9",
    "bootstrap-expect": 3,
    "join": ["10.0.0.2", "10.0.0.3:9000"],
    "retry-join": ["[::1]:8946"],
    "raft-multiplier": 5,
    "log-level": "debug",
    "log-format": "json",
    "body-limit": 4096,
    "disable-usage-stats": True,
}
FULL_YAML = """
server: true
node-name: n1
data-dir: /var/lib/dkron
http-addr: "127.0.0.1:9090"
bind-addr: "10.0.0.1:7946"
advertise-addr: 10.0.0.9
rpc-port: 7000
advertise-rpc-port: 7100
tags:
  role2: web
  rack: 3
region: eu
datacenter: dc9
bootstrap-expect: 3
join: [10.0.0.2, "10.0.0.3:9000"]
retry-join: ["[::1]:8946"]
raft-multiplier: 5
log-level: debug
log-format: json
body-limit: 4096
disable-usage-stats: true
"""
FULL_TOML = """
server = true
node-name = "n1"
data-dir = "/var/lib/dkron"
http-addr = "127.0.0.1:9090"
bind-addr = "10.0.0.1:7946"
advertise-addr = "10.0.0.9"
rpc-port = 7000
advertise-rpc-port = 7100
region = "eu"
datacenter = "dc9"
bootstrap-expect = 3
join = ["10.0.0.2", "10.0.0.3:9000"]
retry-join = ["[::1]:8946"]
raft-multiplier = 5
log-level = "debug"
log-format = "json"
body-limit = 4096
disable-usage-stats = true

[tags]
role2 = "web"
rack = 3
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dkron.yml", FULL_YAML),
        ("dkron.yaml", FULL_YAML),
        ("dkron.json", json.dumps(FULL)),
        ("dkron.toml", FULL_TOML),
    ],
)
def test_every_file_format_gives_the_same_config(tmp_path: Path, name: str, text: str) -> None:
    config = load(config_file=write(tmp_path, name, text))
    assert config == AgentConfig(
        node_name="n1",
        server=True,
        data_dir=Path("/var/lib/dkron"),
        http_addr=HostPort("127.0.0.1", 9090),
        bind_addr=HostPort("10.0.0.1", 7946),
        advertise_addr=HostPort("10.0.0.9", 7946),
        rpc_port=7000,
        advertise_rpc_port=7100,
        tags={"role2": "web", "rack": "3"},
        region="eu",
        datacenter="dc9",
        bootstrap_expect=3,
        join=(HostPort("10.0.0.2", 8946), HostPort("10.0.0.3", 9000)),
        retry_join=(HostPort("::1", 8946),),
        raft_multiplier=5,
        log_level=LogLevel.DEBUG,
        log_format=LogFormat.JSON,
        body_limit=4096,
    )


def test_advertise_addr_takes_bind_port_and_needs_a_specific_host() -> None:
    config = load({"advertise-addr": "10.0.0.9:9000"})
    assert config.advertise_addr == HostPort("10.0.0.9", 9000)
    config = load({"advertise-addr": "10.0.0.9"}, env={"DKRON_BIND_ADDR": ":7777"})
    assert config.advertise_addr == HostPort("10.0.0.9", 7777)
    assert load({"advertise-addr": "10.0.0.9"}).advertise_addr == HostPort("10.0.0.9", 8946)
    assert load(env={"DKRON_ADVERTISE_ADDR": ""}).advertise_addr is None
    with pytest.raises(ConfigError, match=r"flag --advertise-addr: must name a specific"):
        load({"advertise-addr": "0.0.0.0:8946"})


def test_search_paths_find_dkron_yml_in_order(tmp_path: Path) -> None:
    first, second, third = tmp_path / "etc", tmp_path / "home", tmp_path / "config"
    for d in (first, second, third):
        d.mkdir()
    write(second, "dkron.yml", "region: second\n")
    write(third, "dkron.yml", "region: third\n")
    assert load(search_paths=[first, second, third]).region == "second"
    explicit = write(tmp_path, "other.json", '{"region": "explicit"}')
    assert load(config_file=explicit, search_paths=[first, second, third]).region == "explicit"


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(config_file=tmp_path / "nope.yml")


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "dkron.yml", "data_dir: /x\n")
    with pytest.raises(ConfigError) as info:
        load(config_file=path)
    assert str(info.value) == f"{path}: key 'data_dir': unknown key (did you mean 'data-dir'?)"
    assert info.value.key == "data_dir"


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("rpc-port: abc\n", "rpc-port", "expected an integer"),
        ("rpc-port: true\n", "rpc-port", "expected an integer"),
        ("server: 'yes'\n", "server", "expected true or false"),
        ("region: 12\n", "region", "expected a string"),
        ("join: 10.0.0.1\n", "join", "expected a list of strings"),
        ("join: [1, 2]\n", "join", "expected a list of non-empty strings"),
        ("tags: [a=b]\n", "tags", "expected a mapping of tags"),
        ("tags: {a: {b: c}}\n", "tags", "expected a mapping of tag names to strings"),
        ("disable-usage-stats: 3\n", "disable-usage-stats", "expected true or false"),
    ],
)
def test_wrong_type_in_file_names_file_and_key(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, "dkron.yml", text)
    with pytest.raises(ConfigError) as info:
        load(config_file=path)
    assert str(info.value).startswith(f"{path}: key '{key}': {expected}")
    assert info.value.key == key


def test_wrong_type_in_env_and_flag_names_them() -> None:
    with pytest.raises(ConfigError, match=r"^env DKRON_RPC_PORT: expected an integer"):
        load(env={"DKRON_RPC_PORT": "abc"})
    with pytest.raises(ConfigError, match=r"^flag --rpc-port: expected an integer"):
        load({"rpc-port": "6868x"})
    with pytest.raises(ConfigError, match=r"^env DKRON_SERVER: expected true or false"):
        load(env={"DKRON_SERVER": "maybe"})
    with pytest.raises(ConfigError, match=r"^flag --log-level: must be one of debug, info"):
        load({"log-level": "loud"})
    with pytest.raises(ConfigError, match=r"^env DKRON_LOG_FORMAT: must be one of text, json"):
        load(env={"DKRON_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("a: [\n", "dkron.yml", "cannot parse YML"),
        ("{", "dkron.json", "cannot parse JSON"),
        ("a = ", "dkron.toml", "cannot parse TOML"),
        ("- a\n- b\n", "dkron.yml", "must hold a mapping"),
        ("a: 1\n", "dkron.ini", "must end in .yml"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, name: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=message) as info:
        load(config_file=path)
    assert str(info.value).startswith(str(path))


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load(config_file=write(tmp_path, "dkron.yml", "")) == load()


@pytest.mark.parametrize("key", sorted(NOT_SUPPORTED - {"acl"}))
def test_not_supported_flag_is_refused(key: str) -> None:
    flag = KEYS[key].flag
    with pytest.raises(ConfigError, match=rf"^flag --{flag}: not supported yet$"):
        load({key: "x"})


def test_not_supported_env_and_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^env DKRON_STATSD_ADDR: not supported yet$"):
        load(env={"DKRON_STATSD_ADDR": "127.0.0.1:8125"})
    path = write(tmp_path, "dkron.yml", "acl:\n  enabled: true\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'acl': not supported yet$"):
        load(config_file=path)
    path = write(tmp_path, "dkron.yml", "webhook-url: abc\n")
    with pytest.raises(ConfigError, match=r"key 'webhook-url': not supported yet"):
        load(config_file=path)


def test_unknown_env_variables_are_left_alone() -> None:
    env = {"DKRON_ADDRESS": "http://x", "DKRON_JOB_NAME": "j", "DKRON_FENCE": "3"}
    assert load(env=env) == load()


def test_every_supported_key_is_a_field_and_back() -> None:
    supported = {n.replace("-", "_") for n, s in KEYS.items() if s.status is KeyStatus.SUPPORTED}
    assert supported | {"config_path"} == {f.name for f in attrs.fields(AgentConfig)}


def test_the_config_file_read_is_remembered(tmp_path: Path) -> None:
    path = write(tmp_path, "dkron.yml", "tags: {a: '1'}\n")
    assert load(config_file=path).config_path == path
    assert load().config_path is None


def test_tags_from_flags_env_and_file(tmp_path: Path) -> None:
    assert dict(load({"tags": ["a=b", "c=d,e=f=g"]}).tags) == {"a": "b", "c": "d", "e": "f=g"}
    assert dict(load(env={"DKRON_TAG": "zone=z1, rack=r2"}).tags) == {"zone": "z1", "rack": "r2"}
    assert dict(load({"tags": ["empty="]}).tags) == {"empty": ""}
    path = write(tmp_path, "dkron.yml", "tags: {a: '1', b: '2'}\n")
    assert dict(load(config_file=path).tags) == {"a": "1", "b": "2"}
    # Like Dkron, flag tags replace the file's tags rather than merging into them.
    assert dict(load({"tags": ["c=3"]}, config_file=path).tags) == {"c": "3"}


@pytest.mark.parametrize("bad", ["novalue", "=v", " =v"])
def test_bad_tags(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^flag --tag: invalid tag .*expected key=value"):
        load({"tags": [bad]})
    with pytest.raises(ValueError, match="expected key=value"):
        parse_tags([bad])


def test_reserved_tags_are_refused_naming_the_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^flag --tag: reserved tag region"):
        load({"tags": ["region=eu"]})
    path = write(tmp_path, "dkron.yml", "tags: {dc: x}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'tags': reserved tag dc"):
        load(config_file=path)


def test_lists_from_env_and_repeated_flags() -> None:
    config = load({"join": ["a:1", "b"]}, env={"DKRON_RETRY_JOIN": "c,d:2"})
    assert config.join == (HostPort("a", 1), HostPort("b", 8946))
    assert config.retry_join == (HostPort("c", 8946), HostPort("d", 2))
    with pytest.raises(ConfigError, match=r"^env DKRON_JOIN: empty item"):
        load(env={"DKRON_JOIN": "a,,b"})
    assert load(env={"DKRON_JOIN": ""}, config_file=None).join == ()


def test_bool_text_forms() -> None:
    for text, expected in [
        ("true", True),
        ("1", True),
        ("T", True),
        ("false", False),
        ("0", False),
    ]:
        assert load(env={"DKRON_SERVER": text}).server is expected


def test_acl_enabled_from_flag_env_and_file(tmp_path: Path) -> None:
    assert load().acl_enabled is False
    assert load({"acl-enabled": "true"}).acl_enabled is True
    assert load(env={"DKRON_ACL_ENABLED": "1"}).acl_enabled is True
    path = tmp_path / "dkron.yml"
    path.write_text("acl-enabled: true\n")
    assert load(config_file=path).acl_enabled is True


def test_bootstrap_expect_only_with_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^flag --bootstrap-expect: only valid together"):
        load({"bootstrap-expect": "3"})
    path = write(tmp_path, "dkron.yml", "bootstrap-expect: 3\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'bootstrap-expect': only valid"):
        load(config_file=path)
    assert load({"bootstrap-expect": "3"}, env={"DKRON_SERVER": "true"}).bootstrap_expect == 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"raft-multiplier": "11"}, "flag --raft-multiplier: must be between 1 and 10"),
        ({"raft-multiplier": "0"}, "flag --raft-multiplier: must be between 1 and 10"),
        ({"rpc-port": "70000"}, "flag --rpc-port: must be 0-65535"),
        ({"body-limit": "0"}, "flag --body-limit: must be a positive number"),
        ({"node-name": "has space"}, "flag --node-name: must be non-empty"),
        ({"http-addr": "localhost"}, "flag --http-addr: invalid address 'localhost': missing"),
        ({"http-addr": "h:99999"}, "flag --http-addr: invalid address 'h:99999': port"),
        ({"bind-addr": "[::1"}, "flag --bind-addr: invalid address '[::1': missing ']'"),
    ],
)
def test_value_checks_name_the_flag(flags: Mapping[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(flags)
    assert str(info.value).startswith(message)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match=r"^config raft-multiplier: must be between"):
        AgentConfig(node_name="n", raft_multiplier=0)


@pytest.mark.parametrize(
    ("text", "default_port", "expected"),
    [
        ("0.0.0.0:8946", None, HostPort("0.0.0.0", 8946)),
        (":8080", None, HostPort("", 8080)),
        ("[::1]:80", None, HostPort("::1", 80)),
        ("[::1]", 8946, HostPort("::1", 8946)),
        ("::1", 8946, HostPort("::1", 8946)),
        ("example.org", 8946, HostPort("example.org", 8946)),
        ("127.0.0.1:0", None, HostPort("127.0.0.1", 0)),
    ],
)
def test_parse_host_port(text: str, default_port: int | None, expected: HostPort) -> None:
    assert parse_host_port(text, default_port) == expected


def test_host_port_str_round_trips() -> None:
    for hp in [HostPort("::1", 80), HostPort("", 8080), HostPort("10.0.0.1", 1)]:
        assert parse_host_port(str(hp)) == hp
