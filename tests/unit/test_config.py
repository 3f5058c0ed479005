"""Config: file formats, environment overrides and every error path."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from pollnet.config import (
    ClientConfig,
    EfviConfig,
    EfviOptions,
    ServerConfig,
    SimOptions,
    SocketConfig,
    TcpdirectConfig,
    config_from_dict,
    env_overrides,
    load_config,
)
from pollnet.errors import ConfigError

FULL_TOML = """
backend = "efvi"
[client]
interface = "eth0"
server_ip = "10.0.0.2"
server_port = 4321
local_port = 5555
conn_retry_sec = 0
conn_timeout_sec = 2.5
send_timeout_sec = 1
recv_timeout_sec = 2
recv_buf_size = 4096
[server]
listen_ip = "127.0.0.1"
port = 9000
max_conns = 3
[efvi]
link = "af_packet"
interface = "veth0"
local_ip = "10.0.0.1"
pcap = "/tmp/x.pcap"
xdp_mode = "generic"
recv_buf_cnt = 4095
congestion_control = "cubic"
timestamps = true
window_scale = false
[efvi.sim]
seed = 7
loss = 0.25
bandwidth_mbps = 100
"""


def _full_dict() -> dict[str, Any]:
    import tomllib

    return tomllib.loads(FULL_TOML)


def _check_full(cfg: object) -> None:
    assert isinstance(cfg, EfviConfig)
    assert cfg.client.server_port == 4321
    assert cfg.client.local_port == 5555
    assert cfg.client.conn_retry_sec == 0
    assert cfg.client.conn_timeout_sec == 2.5
    assert cfg.server.max_conns == 3
    assert cfg.efvi.link == "af_packet"
    assert cfg.efvi.recv_buf_cnt == 4095
    assert cfg.efvi.congestion_control == "cubic"
    assert cfg.efvi.timestamps is True
    assert cfg.efvi.window_scale is False  # timestamps need not imply window scale
    assert cfg.efvi.sim.seed == 7
    assert cfg.efvi.sim.loss == 0.25


def test_defaults_are_socket_with_documented_values() -> None:
    cfg = load_config(None, env={})
    assert isinstance(cfg, SocketConfig)
    assert cfg.client == ClientConfig()
    assert cfg.client.server_ip == "127.0.0.1"
    assert cfg.client.conn_retry_sec == 1
    assert cfg.client.recv_buf_size == 65536
    assert cfg.server.max_conns == 64
    opts = EfviOptions()
    assert (opts.conn_send_buf_cnt, opts.send_buf_1k, opts.conn_recv_buf_size) == (
        512,
        True,
        40960,
    )
    assert (opts.max_conn_cnt, opts.max_time_wait_conn_cnt, opts.recv_buf_cnt) == (200, 100, 512)
    assert (opts.syn_retries, opts.tcp_retries, opts.delayed_ack_ms) == (3, 10, 10)
    assert (opts.min_rto_ms, opts.max_rto_ms, opts.user_timer_cnt) == (100, 30000, 1)
    assert opts.congestion_control == "none"
    assert opts.sim == SimOptions()


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(FULL_TOML)
    _check_full(load_config(path, env={}))


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_full_dict()))
    _check_full(load_config(str(path), env={}))


def test_yaml_file(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is an optional extra")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_full_dict()))
    _check_full(load_config(path, env={}))


def test_dict_round_trip_through_model_dump() -> None:
    cfg = load_config(_full_dict(), env={})
    again = config_from_dict(cfg.model_dump())
    assert again == cfg


def test_tcpdirect_attributes() -> None:
    cfg = load_config(
        {"backend": "tcpdirect", "tcpdirect": {"attributes": {"interface": "ens1", "n": 3}}},
        env={},
    )
    assert isinstance(cfg, TcpdirectConfig)
    assert cfg.tcpdirect.library == "libonload_zf.so"
    assert cfg.tcpdirect.attributes == {"interface": "ens1", "n": 3}


def test_env_overrides_nest_and_parse_json_scalars() -> None:
    env = {
        "POLLNET_BACKEND": "efvi",
        "POLLNET_CLIENT__SERVER_PORT": "4242",
        "POLLNET_CLIENT__INTERFACE": "0",  # a JSON number, still a string field
        "POLLNET_EFVI__SIM__LOSS": "0.5",
        "POLLNET_EFVI__WINDOW_SCALE": "false",
        "POLLNET_EFVI__PCAP": "/tmp/a b.pcap",  # not JSON: kept as a string
        "POLLNET_CONFIG": "ignored.toml",  # reserved for the CLI
        "POLLNET_CORE_MODULE": "/x.so",  # a build/test knob, not config
        "HOME": "/root",
    }
    cfg = load_config(None, env=env)
    assert isinstance(cfg, EfviConfig)
    assert cfg.client.server_port == 4242
    assert cfg.client.interface == "0"
    assert cfg.efvi.sim.loss == 0.5
    assert cfg.efvi.window_scale is False  # the pollnet level's default is True
    assert cfg.efvi.pcap == "/tmp/a b.pcap"


def test_env_overrides_win_over_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(FULL_TOML)
    cfg = load_config(path, env={"POLLNET_EFVI__SIM__SEED": "99", "POLLNET_SERVER__PORT": "1"})
    assert isinstance(cfg, EfviConfig)
    assert cfg.efvi.sim.seed == 99
    assert cfg.server.port == 1
    assert cfg.efvi.sim.loss == 0.25  # the rest of the section is kept


def test_env_overrides_only_take_config_keys() -> None:
    assert env_overrides({"POLLNET_CONFIG": "a", "POLLNET_SANITIZE": "1", "OTHER": "2"}) == {}
    assert env_overrides({"POLLNET_EFVI__SIM__LOSS": "0.1"}) == {"efvi": {"sim": {"loss": 0.1}}}


@pytest.mark.parametrize("name", ["POLLNET_SERVR__PORT", "POLLNET_X"])
def test_an_unknown_pollnet_variable_is_an_error(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^environment {name}: not a config override"):
        load_config(None, env={name: "1"})


@pytest.mark.parametrize(("env", "message"), [
    ({"POLLNET_SERVER__PORT": "abc"},
     "environment POLLNET_SERVER__PORT: server.port = 'abc' is invalid"),
    ({"POLLNET_BACKEND": "foo"},
     "environment POLLNET_BACKEND: backend = 'foo' is not a backend"),
    ({"POLLNET_SERVER__PROT": "1"}, "environment POLLNET_SERVER__PROT: server.prot: unknown"),
])
def test_environment_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env)
    assert str(info.value).startswith(message), str(info.value)
    assert "defaults" not in str(info.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides={"server": {"port": 70000}},
                    override_names={"server.port": "--port 70000"})
    assert str(info.value).startswith("--port 70000: server.port = 70000 is invalid")


def test_section_and_value_clash_in_env() -> None:
    with pytest.raises(ConfigError, match="both a value and a section"):
        env_overrides({"POLLNET_EFVI": "1", "POLLNET_EFVI__SIM__LOSS": "0.1"})


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"backend": "carrier-pigeon"}, ["backend", "'carrier-pigeon'", "socket, efvi, tcpdirect"]),
        ({"client": {"server_port": 70000}}, ["client.server_port", "70000", "65535"]),
        ({"client": {"local_port": -1}}, ["client.local_port", "-1", "greater than or equal"]),
        ({"client": {"server_ip": "localhost"}}, ["client.server_ip", "'localhost'", "IPv4"]),
        ({"client": {"local_ip": "::1"}}, ["client.local_ip", "'::1'", "IPv4"]),
        ({"client": {"conn_retry_sec": -1}}, ["client.conn_retry_sec", "-1"]),
        ({"client": {"recv_buf_size": 0}}, ["client.recv_buf_size", "0"]),
        ({"client": {"srever_port": 1}}, ["client.srever_port", "unknown", "server_port"]),
        ({"client": 5}, ["client", "section"]),
        ({"server": {"max_conns": 0}}, ["server.max_conns", "0"]),
        ({"server": {"listen_ip": "1.2.3"}}, ["server.listen_ip", "IPv4"]),
        ({"nonsense": 1}, ["nonsense", "unknown", "client"]),
        ({"efvi": {}}, ["[efvi]", "backend = 'efvi'", "'socket'"]),
        ({"backend": "efvi", "tcpdirect": {}}, ["[tcpdirect]", "backend = 'tcpdirect'"]),
        ({"backend": "efvi", "efvi": {"link": "wifi"}}, ["efvi.link", "'wifi'", "'af_xdp'"]),
        ({"backend": "efvi", "efvi": {"xdp_mode": "fast"}}, ["efvi.xdp_mode", "'generic'"]),
        ({"backend": "efvi", "efvi": {"recv_buf_cnt": 4096}}, ["efvi.recv_buf_cnt", "4095"]),
        ({"backend": "efvi", "efvi": {"recv_buf_cnt": 0}}, ["efvi.recv_buf_cnt", "1"]),
        ({"backend": "efvi", "efvi": {"congestion_control": "bbr"}}, ["cubic"]),
        ({"backend": "efvi", "efvi": {"local_ip": "x"}}, ["efvi.local_ip", "IPv4"]),
        (
            {"backend": "efvi", "efvi": {"min_rto_ms": 500, "max_rto_ms": 200}},
            ["efvi", "min_rto_ms (500)", "max_rto_ms (200)"],
        ),
        ({"backend": "efvi", "efvi": {"link": "af_xdp"}}, ["efvi", "interface is required"]),
        ({"backend": "efvi", "efvi": {"sim": {"loss": 1.5}}}, ["efvi.sim.loss", "1.5"]),
        ({"backend": "efvi", "efvi": {"sim": {"reorder": -0.1}}}, ["efvi.sim.reorder"]),
        ({"backend": "efvi", "efvi": {"sim": {"delay_us": -5}}}, ["efvi.sim.delay_us"]),
        ({"backend": "efvi", "efvi": {"sim": {"bogus": 1}}}, ["efvi.sim.bogus", "jitter_us"]),
        (
            {"backend": "tcpdirect", "tcpdirect": {"attributes": {"a": [1]}}},
            ["tcpdirect.attributes", "'a'", "string or an integer"],
        ),
    ],
)
def test_config_errors_name_field_value_and_allowed(
    data: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(data, env={})
    message = str(info.value)
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_several_problems_are_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"client": {"server_port": -1, "local_port": 99999}}, env={})
    assert "2 problems" in str(info.value)


def test_env_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"client\.server_port"):
        load_config(None, env={"POLLNET_CLIENT__SERVER_PORT": "port"})


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.toml", "backend = ", "not valid TOML"),
        ("bad.json", "{", "not valid JSON"),
        ("bad.yaml", "a: [", "not valid YAML"),
        ("list.json", "[1, 2]", "top level must be a table"),
        ("c.ini", "x", "unknown config file type '.ini'"),
    ],
)
def test_file_errors(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml", reason="PyYAML is an optional extra")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
        load_config(path, env={})
    assert name in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert isinstance(load_config(path, env={}), SocketConfig)


def test_models_validate_on_assignment() -> None:
    server = ServerConfig()
    with pytest.raises(ValueError, match="port"):
        server.port = 123456


def test_yaml_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    path = tmp_path / "c.yml"
    path.write_text("backend: socket\n")
    with pytest.raises(ConfigError, match=r"needs PyYAML.*pollnet\[yaml\]"):
        load_config(path, env={})


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(path, env={})


def test_overrides_win_over_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 1\nmax_conns = 5\n")
    cfg = load_config(
        path, env={"POLLNET_SERVER__PORT": "2"}, overrides={"server": {"port": 3}}
    )
    assert cfg.server.port == 3
    assert cfg.server.max_conns == 5


def test_efvi_defaults_differ_by_level() -> None:
    # efvitcp's own defaults at the efvitcp level (TcpClient/TcpServer take EfviOptions);
    # the pollnet level, a config file's [efvi], gets RFC 5681 congestion control and
    # RFC 6298's 200 ms RTO floor (docs/core.md says why).
    from pollnet.config import EfviConfig, EfviOptions, config_from_dict

    assert (EfviOptions().congestion_control, EfviOptions().min_rto_ms) == ("none", 100)
    cfg = config_from_dict({"backend": "efvi"})
    assert isinstance(cfg, EfviConfig)
    assert (cfg.efvi.congestion_control, cfg.efvi.min_rto_ms) == ("newreno", 200)
    explicit = config_from_dict({"backend": "efvi", "efvi": {"congestion_control": "none",
                                                              "min_rto_ms": 100}})
    assert isinstance(explicit, EfviConfig)
    assert (explicit.efvi.congestion_control, explicit.efvi.min_rto_ms) == ("none", 100)


@pytest.mark.parametrize(("data", "field"), [
    ({"server": {"max_conns": True}}, "server.max_conns"),
    ({"server": {"port": 12.0}}, "server.port"),
    ({"server": {"port": "1234"}}, "server.port"),
    ({"backend": "efvi", "efvi": {"window_scale": "yes"}}, "efvi.window_scale"),
    ({"client": {"conn_retry_sec": "1"}}, "client.conn_retry_sec"),
])
def test_values_of_the_wrong_type_are_refused_not_coerced(data: dict[str, Any],
                                                          field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        config_from_dict(data)


def test_environment_overrides_still_parse_as_json() -> None:
    cfg = load_config(None, env={"POLLNET_CLIENT__SERVER_PORT": "4000",
                                 "POLLNET_CLIENT__INTERFACE": "0",
                                 "POLLNET_CLIENT__CONN_RETRY_SEC": "2"})
    assert cfg.client.server_port == 4000
    assert cfg.client.interface == "0"
    assert cfg.client.conn_retry_sec == 2.0


@pytest.mark.parametrize(("efvi", "says"), [
    ({"link": "af_xdp", "interface": "eth0", "shards": 2, "queue": 2},
     "queue (2) must be below shards (2)"),
    ({"link": "efvi", "interface": "eth0", "shards": 2},
     'shards (2) needs link = "af_xdp"'),
    ({"send_buf_size": 1000}, "send_buf_size"),
    ({"mtu": 9001}, "efvi.mtu"),
])
def test_sharding_and_bulk_knobs_are_checked(efvi: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        config_from_dict({"backend": "efvi", "efvi": efvi})
