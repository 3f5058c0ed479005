"""The config: one pydantic model, a discriminated union on `backend`.

Loaded from TOML, JSON or YAML (when PyYAML imports) or a dict, then overridden by
`POLLNET_*` environment variables (`__` nests: `POLLNET_EFVI__SIM__LOSS=0.01`). Every
mistake becomes one `ConfigError` naming the field path, the bad value and what is allowed.

About 510 lines: the models, their loading and the error wording stay together because an
error names the fields and allowed values the models declare, for the backend chosen.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from pollnet.errors import ConfigError

__all__ = [
    "BACKENDS",
    "ClientConfig",
    "Config",
    "EfviConfig",
    "EfviOptions",
    "ServerConfig",
    "SimOptions",
    "SocketConfig",
    "TcpdirectConfig",
    "TcpdirectOptions",
    "config_from_dict",
    "load_config",
]

BACKENDS = ("socket", "efvi", "tcpdirect")
ENV_PREFIX = "POLLNET_"
# POLLNET_ names that are not config overrides: the CLI's config file, and the knobs of
# the build and the test suite (README, "Environment"). Any other POLLNET_ name must be
# a config path, so a typo (POLLNET_SERVR__PORT) is an error, not silently ignored.
ENV_NOT_CONFIG = frozenset({
    "CONFIG", "CORE_MODULE", "SANITIZE", "NO_EFVI", "NO_AF_XDP", "EFVI_SHIM", "ZF_INCLUDE",
    "TCPDIRECT_LIBRARY", "BENCH_ROWS", "HOSTILE_FLOOD_COUNT", "HOSTILE_FLOOD_INTERVAL",
    "PURE_PYTHON", "FAST_MODULE",
})
_ENV_ROOTS = ("backend", "client", "server", "efvi", "tcpdirect")

Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
BufSize = Annotated[int, Field(ge=1, le=1 << 30)]
# A string field that also takes a number from an environment override (parsed as JSON).
Text = Annotated[str, Strict(False)]


def _ipv4(value: str, *, allow_empty: bool) -> str:
    if allow_empty and value == "":
        return value
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        extra = ' or "" for the default' if allow_empty else ""
        raise ValueError(f"must be an IPv4 address like 127.0.0.1{extra}") from None
    return value


class _Section(BaseModel):
    # strict: a value of the wrong type is refused, not coerced (`port = "1234"`,
    # `max_conns = true`, `window_scale = "yes"`); ints still fill float fields.
    # coerce_numbers_to_str (for `Text` fields only): an environment override
    # `POLLNET_CLIENT__INTERFACE=0` parses as JSON 0.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, coerce_numbers_to_str=True
    )


class ClientConfig(_Section):
    """`[client]`: what a `PollTcpClient` connects to and how it behaves."""

    interface: Text = ""
    server_ip: Text = "127.0.0.1"
    server_port: Port = 1234
    local_ip: str = ""
    local_port: Port = 0
    conn_retry_sec: Seconds = 1.0
    conn_timeout_sec: Seconds = 3.0
    send_timeout_sec: Seconds = 0.0
    recv_timeout_sec: Seconds = 0.0
    recv_buf_size: BufSize = 65536

    @field_validator("server_ip")
    @classmethod
    def _check_ip(cls, v: str) -> str:
        return _ipv4(v, allow_empty=False)

    @field_validator("local_ip")
    @classmethod
    def _check_local_ip(cls, v: str) -> str:
        return _ipv4(v, allow_empty=True)


class ServerConfig(_Section):
    """`[server]`: where a `PollTcpServer` listens and how many it serves."""

    interface: Text = ""
    listen_ip: Text = "0.0.0.0"
    port: Port = 1234
    max_conns: Annotated[int, Field(ge=1, le=1 << 20)] = 64
    send_timeout_sec: Seconds = 0.0
    recv_timeout_sec: Seconds = 0.0
    recv_buf_size: BufSize = 65536

    @field_validator("listen_ip")
    @classmethod
    def _check_ip(cls, v: str) -> str:
        return _ipv4(v, allow_empty=False)


class SimOptions(_Section):
    """`[efvi.sim]`: the simulated wire's faults, reproducible from `seed`."""

    seed: Annotated[int, Field(ge=0, le=(1 << 64) - 1)] = 1
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    corrupt: Probability = 0.0
    delay_us: Annotated[int, Field(ge=0)] = 0
    jitter_us: Annotated[int, Field(ge=0)] = 0
    bandwidth_mbps: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0  # 0 = unlimited


class EfviOptions(_Section):
    """`[efvi]`: the user-space stack's link and every efvitcp knob (efvitcp's defaults)."""

    link: Literal["sim", "af_xdp", "af_packet", "efvi"] = "sim"
    interface: Text = ""
    local_ip: Text = ""
    pcap: Text = ""
    xdp_mode: Literal["auto", "native", "generic", "zerocopy"] = "auto"
    # the RX queue this stack reads (af_xdp, efvi); shards > 1: it is one of that many
    # stacks on the interface, one a queue, sharing its address (docs/sharding.md)
    queue: Annotated[int, Field(ge=0, le=63)] = 0
    shards: Annotated[int, Field(ge=1, le=64)] = 1
    conn_send_buf_cnt: Annotated[int, Field(ge=1, le=65536)] = 512
    send_buf_1k: bool = True
    # bytes per send buffer (a multiple of 64, 1024..65536; our MSS is at most this - 64):
    # 0 = send_buf_1k's 1024 or 2048; "mtu" = what the MTU's MSS needs
    send_buf_size: Annotated[int, Field(ge=0, le=65536, multiple_of=64)] | Literal["mtu"] = 0
    # the largest IP packet we send and advertise (MSS = mtu - 40), never above the link's:
    # a number (576..9000), or "link" = the interface's own MTU (up to 9000)
    mtu: Annotated[int, Field(ge=576, le=9000)] | Literal["link"] = 1500
    conn_recv_buf_size: Annotated[int, Field(ge=1, le=1 << 30)] = 40960
    max_conn_cnt: Annotated[int, Field(ge=1, le=65536)] = 200
    max_time_wait_conn_cnt: Annotated[int, Field(ge=0, le=65536)] = 100
    recv_buf_cnt: Annotated[int, Field(ge=1, le=4095)] = 512
    syn_retries: Annotated[int, Field(ge=0, le=255)] = 3
    tcp_retries: Annotated[int, Field(ge=0, le=255)] = 10
    delayed_ack_ms: Annotated[int, Field(ge=0, le=65535)] = 10
    # full in-order segments an ACK may wait for (2: RFC 5681 4.2; more: stretch ACKs,
    # after a connection's first 64 KB and 64 KB after each filled hole)
    ack_every: Annotated[int, Field(ge=1, le=64)] = 2
    min_rto_ms: Annotated[int, Field(ge=1)] = 100
    max_rto_ms: Annotated[int, Field(ge=1)] = 30000
    window_scale: bool = False
    timestamps: bool = False  # independent of window_scale, as RFC 7323 allows
    sack: bool = False  # selective ACKs (RFC 2018) and the loss recovery they allow
    congestion_control: Literal["none", "newreno", "cubic"] = "none"
    user_timer_cnt: Annotated[int, Field(ge=0, le=65535)] = 1
    verify_checksums: bool = True
    # hostile peers (docs/core.md): the half-open pool, SYN cookies, bounds and limits
    max_syn_backlog: Annotated[int, Field(ge=0, le=1 << 20)] = 0  # 0 = max_conn_cnt / 2
    syn_cookies: Literal["never", "when_full", "always"] = "when_full"
    max_ooo_segs: Annotated[int, Field(ge=1, le=32)] = 8
    max_ooo_bytes: Annotated[int, Field(ge=0, le=1 << 30)] = 0  # 0 = conn_recv_buf_size
    zero_window_timeout_ms: Annotated[int, Field(ge=0, le=(1 << 32) - 1)] = 0  # 0 = never
    max_conns_per_source: Annotated[int, Field(ge=0, le=1 << 20)] = 0  # 0 = no limit
    challenge_ack_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 1000  # per second
    oow_rate_limit_ms: Annotated[int, Field(ge=0, le=60_000)] = 500  # 0 = no limit
    # FIN_WAIT_2 without the peer's FIN ends after this (Linux's tcp_fin_timeout); 0 = never
    fin_timeout_ms: Annotated[int, Field(ge=0, le=(1 << 32) - 1)] = 60_000
    # keepalive (RFC 1122 4.2.3.6): probe after this much silence from the peer; 0 = off
    keepalive_idle_ms: Annotated[int, Field(ge=0, le=(1 << 32) - 1)] = 0
    keepalive_intvl_ms: Annotated[int, Field(ge=1, le=(1 << 32) - 1)] = 75_000
    keepalive_cnt: Annotated[int, Field(ge=1, le=1 << 16)] = 9  # unanswered probes: end
    sim: SimOptions = Field(default_factory=SimOptions)

    @field_validator("local_ip")
    @classmethod
    def _check_ip(cls, v: str) -> str:
        return _ipv4(v, allow_empty=True)

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.min_rto_ms > self.max_rto_ms:
            raise ValueError(
                f"min_rto_ms ({self.min_rto_ms}) must not exceed max_rto_ms ({self.max_rto_ms})"
            )
        if self.max_ooo_bytes > self.conn_recv_buf_size:
            raise ValueError(
                f"max_ooo_bytes ({self.max_ooo_bytes}) must not exceed conn_recv_buf_size "
                f"({self.conn_recv_buf_size})"
            )
        if self.max_syn_backlog > self.max_conn_cnt:
            raise ValueError(
                f"max_syn_backlog ({self.max_syn_backlog}) must not exceed max_conn_cnt "
                f"({self.max_conn_cnt})"
            )
        if self.shards > 1 and self.link not in ("af_xdp", "af_packet"):
            raise ValueError(f'shards ({self.shards}) needs link = "af_xdp" (one XDP program '
                             'steers each RX queue to its stack) or "af_packet" (a fanout '
                             f'group splits flows by hash); link = "{self.link}" has no such '
                             "steering here")
        if self.shards > 1 and self.queue >= self.shards:
            raise ValueError(f"queue ({self.queue}) must be below shards ({self.shards}): "
                             "shard i reads RX queue i")
        if isinstance(self.send_buf_size, int) and 0 < self.send_buf_size < 1024:
            raise ValueError(f"send_buf_size ({self.send_buf_size}) must be 0, \"mtu\" or "
                             "a multiple of 64 from 1024 to 65536")
        if self.link != "sim" and not self.interface:
            raise ValueError(f'interface is required when link = "{self.link}" (a NIC name)')
        return self


class PollnetEfviOptions(EfviOptions):
    """`[efvi]` of a pollnet config: efvitcp's knobs with safer and bulk-ready defaults
    for the pollnet level (docs/core.md, "Defaults by level"): congestion control on
    (RFC 5681; efvitcp's "none" resends a whole window in one burst after a timeout), a
    200 ms RTO floor (RFC 6298 and Linux; efvitcp's 100 ms retransmits spuriously on
    paths with a delayed-ACK peer), the interface's MTU with send buffers its MSS fits
    (efvitcp: MTU 1500, MSS 960), a 256 KB receive window, scaled (RFC 7323; efvitcp:
    40 KB, unscaled), SACK, and an ACK per 8 segments of a bulk stream (efvitcp: per 2).
    The efvitcp level (`EfviOptions`) keeps efvitcp's."""

    min_rto_ms: Annotated[int, Field(ge=1)] = 200
    congestion_control: Literal["none", "newreno", "cubic"] = "newreno"
    mtu: Annotated[int, Field(ge=576, le=9000)] | Literal["link"] = "link"
    send_buf_size: Annotated[int, Field(ge=0, le=65536, multiple_of=64)] | Literal["mtu"] = "mtu"
    conn_recv_buf_size: Annotated[int, Field(ge=1, le=1 << 30)] = 262144
    window_scale: bool = True
    sack: bool = True
    ack_every: Annotated[int, Field(ge=1, le=64)] = 8


class TcpdirectOptions(_Section):
    """`[tcpdirect]`: where libonload_zf lives and the ZF attributes to set."""

    library: Text = "libonload_zf.so"
    attributes: dict[str, str | int] = Field(default_factory=dict)

    @field_validator("attributes", mode="before")
    @classmethod
    def _check_attributes(cls, v: Any) -> Any:
        # One message per bad attribute rather than pydantic's one per union member.
        if isinstance(v, Mapping):
            for name, value in v.items():
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise ValueError(
                        f"attribute {name!r} = {value!r} must be a string or an integer"
                    )
        return v


class _Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    client: ClientConfig = Field(default_factory=ClientConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)


class SocketConfig(_Variant):
    backend: Literal["socket"] = "socket"


class EfviConfig(_Variant):
    backend: Literal["efvi"] = "efvi"
    efvi: PollnetEfviOptions = Field(default_factory=PollnetEfviOptions)


class TcpdirectConfig(_Variant):
    backend: Literal["tcpdirect"] = "tcpdirect"
    tcpdirect: TcpdirectOptions = Field(default_factory=TcpdirectOptions)


Config = Annotated[SocketConfig | EfviConfig | TcpdirectConfig, Field(discriminator="backend")]
AnyConfig = SocketConfig | EfviConfig | TcpdirectConfig

_ADAPTER: TypeAdapter[AnyConfig] = TypeAdapter(Config)
_VARIANTS: dict[str, type[_Variant]] = {
    "socket": SocketConfig,
    "efvi": EfviConfig,
    "tcpdirect": TcpdirectConfig,
}
_SECTION_OWNER = {"efvi": "efvi", "tcpdirect": "tcpdirect"}


# ---------------------------------------------------------------- loading


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
) -> AnyConfig:
    """Load a config from a file path or a dict (None: defaults), apply `POLLNET_*`
    overrides from `env` (default `os.environ`; pass `{}` for none), then `overrides`
    (nested dicts, e.g. from command-line options), and validate it. An error in a value
    that came from the environment or the command line names the variable or the flag
    (`override_names` maps a dotted path such as "server.port" to its flag)."""
    if source is None:
        data: dict[str, Any] = {}
        origin = "defaults"
    elif isinstance(source, Mapping):
        data = _deep_copy(source)
        origin = "config"
    else:
        path = Path(source)
        data = _read_file(path)
        origin = str(path)
    blame: dict[tuple[str, ...], str] = {}
    from_env, names = _env_overrides(os.environ if env is None else env)
    _merge(data, from_env)
    blame.update({p: f"environment {n}" for p, n in names.items()})
    if overrides:
        _merge(data, _deep_copy(overrides))
        for p in _leaves(overrides):
            dotted = ".".join(p)
            flag = (override_names or {}).get(dotted)
            blame[p] = flag if flag else f"command line ({dotted})"
    return config_from_dict(data, origin=origin, blame=blame)


def config_from_dict(data: Mapping[str, Any], *, origin: str = "config",
                     blame: Mapping[tuple[str, ...], str] | None = None) -> AnyConfig:
    """Validate a plain dict (no environment applied); `backend` defaults to "socket".
    `blame` names where a value came from when that is not `origin` (path -> text)."""
    data = dict(data)
    data.setdefault("backend", "socket")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, origin, blame or {})) from None


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """`POLLNET_A__B=v` -> {"a": {"b": v}}; v parsed as a JSON scalar when it parses.
    Names in ENV_NOT_CONFIG are skipped; any other POLLNET_ name that is not a config
    path is a ConfigError naming it."""
    return _env_overrides(env)[0]


def _env_overrides(env: Mapping[str, str]
                   ) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    out: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in ENV_NOT_CONFIG:
            continue
        parts = rest.lower().split("__")
        if parts[0] not in _ENV_ROOTS or not all(parts):
            raise ConfigError(
                f"environment {name}: not a config override ({parts[0] or '(empty)'!r} is not "
                f"one of {', '.join(_ENV_ROOTS)}; POLLNET_ names that are not config: "
                f"{', '.join(sorted(ENV_NOT_CONFIG))}): unset it or fix the name"
            )
        node = out
        for key in parts[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {key} is both a value and a section")
            node = child
        node[parts[-1]] = text_value(raw)
        names[tuple(parts)] = name
    return out, names


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out += _leaves(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


def text_value(raw: str) -> Any:
    """A value given as text (an environment variable, a command-line KNOB=VALUE): JSON when
    it parses to a scalar (`0`, `true`, `0.01`), the text itself otherwise."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str | int | float | bool) or value is None else raw


def _read_file(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(
            f"{path}: unknown config file type {suffix or '(none)'!r}; "
            "use .toml, .json, .yaml or .yml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    data: Any
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = _load_yaml(path, text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a table of settings, got {type(data).__name__}"
        )
    return data


def _load_yaml(path: Path, text: str) -> Any:
    try:
        # Imported by name: PyYAML is optional and ships no type stubs.
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise ConfigError(
            f"{path}: YAML config needs PyYAML: pip install 'pollnet[yaml]' "
            "(or use TOML or JSON)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _merge(into: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# ---------------------------------------------------------------- error messages


def _describe(exc: ValidationError, data: Mapping[str, Any], origin: str,
              blame: Mapping[tuple[str, ...], str]) -> str:
    backend = data.get("backend")
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        # The union tag pydantic puts in front of the path is noise to a user.
        if loc and isinstance(backend, str) and loc[0] == backend:
            loc = loc[1:]
        line = _describe_one(err["type"], loc, err, backend)
        where = _blamed(blame, loc, err["type"])
        lines.append(f"{where}: {line}" if where else line)
    if len(lines) == 1 and lines[0].startswith(tuple(blame.values())):
        return lines[0]  # it came from the environment or a flag, not from `origin`
    head = f"{origin}: " if origin else ""
    if len(lines) == 1:
        return head + lines[0]
    return head + f"{len(lines)} problems:\n  " + "\n  ".join(lines)


def _blamed(blame: Mapping[tuple[str, ...], str], loc: list[Any], kind: str) -> str:
    """Where the value at `loc` came from, when that was an override."""
    path = tuple(str(p) for p in loc)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = ("backend",)
    while path:
        if path in blame:
            return blame[path]
        path = path[:-1]
    return ""


def _describe_one(kind: str, loc: list[Any], err: Any, backend: Any) -> str:
    path = ".".join(str(p) for p in loc) or "(top level)"
    value = err.get("input")
    msg = str(err["msg"])
    if kind == "union_tag_invalid":
        got = value.get("backend") if isinstance(value, dict) else value
        return f"backend = {got!r} is not a backend; allowed: {', '.join(BACKENDS)}"
    if kind == "union_tag_not_found" or (kind == "missing" and path == "backend"):
        return f"backend is missing; allowed: {', '.join(BACKENDS)}"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else path
        owner = _SECTION_OWNER.get(name)
        if len(loc) == 1 and owner is not None:
            return (
                f"[{name}] is only allowed with backend = {owner!r} "
                f"(this config has backend = {backend!r})"
            )
        allowed = _allowed_fields(backend, loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown setting{hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path} must be a section (table of settings), got {value!r}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        if kind == "value_error" and isinstance(value, dict):
            return f"{path}: {msg}" if path != "(top level)" else msg
    return f"{path} = {value!r} is invalid: {msg[:1].lower()}{msg[1:]}"


def _allowed_fields(backend: Any, loc: list[Any]) -> list[str]:
    model: Any = _VARIANTS.get(backend) if isinstance(backend, str) else None
    for key in loc:
        if model is None:
            return []
        field = model.model_fields.get(key)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            model = None
    if model is None:
        return []
    return list(model.model_fields)
