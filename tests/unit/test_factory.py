"""The factory: config sources, lazy backend import, BackendUnavailable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import pollnet
from pollnet import factory
from pollnet.api import PollTcpClient, PollTcpServer
from pollnet.errors import BackendUnavailable, ConfigError


def test_socket_backend_from_a_dict_and_a_file(tmp_path: Path) -> None:
    server = pollnet.create_server({"server": {"listen_ip": "127.0.0.1", "port": 0}})
    try:
        assert isinstance(server, PollTcpServer)
        path = tmp_path / "c.toml"
        path.write_text(f"[client]\nserver_port = {server.address[1]}\n")
        client = pollnet.create_client(path)
        assert isinstance(client, PollTcpClient)
    finally:
        server.close()


def test_config_errors_surface_from_the_factory() -> None:
    with pytest.raises(ConfigError, match="server_port"):
        pollnet.create_client({"client": {"server_port": "x"}})


def test_missing_backend_module_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(factory.BACKEND_MODULES, "tcpdirect", "pollnet.backends.no_such_module")
    with pytest.raises(BackendUnavailable) as info:
        pollnet.create_client({"backend": "tcpdirect"})
    message = str(info.value)
    assert "tcpdirect" in message
    assert "pollnet.backends.no_such_module" in message
    assert "libonload_zf.so" in message  # what to install


def test_import_error_inside_backend_names_the_missing_piece(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fake_efvi_adapter.py").write_text("import pollnet._no_native_core_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(factory.BACKEND_MODULES, "efvi", "fake_efvi_adapter")
    with pytest.raises(BackendUnavailable) as info:
        pollnet.create_server({"backend": "efvi"})
    assert "pollnet._no_native_core_here" in str(info.value)
    assert "native core" in str(info.value)
    sys.modules.pop("fake_efvi_adapter", None)


def test_backend_without_factories_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "empty_backend.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(factory.BACKEND_MODULES, "efvi", "empty_backend")
    with pytest.raises(BackendUnavailable, match=r"has no create_client\(\)"):
        pollnet.create_client({"backend": "efvi"})
    sys.modules.pop("empty_backend", None)


def test_unknown_backend_name() -> None:
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        factory.backend_module("carrier-pigeon")


def test_listen_failure_is_a_transport_error() -> None:
    first = pollnet.create_server({"server": {"listen_ip": "127.0.0.1", "port": 0}})
    try:
        port = first.address[1]
        # SO_REUSEADDR does not allow two listeners on one port.
        with pytest.raises(pollnet.TransportError, match=f"cannot listen on 127.0.0.1:{port}"):
            pollnet.create_server({"server": {"listen_ip": "127.0.0.1", "port": port}})
    finally:
        first.close()
