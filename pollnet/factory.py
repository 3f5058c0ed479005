"""The one place a config becomes a backend: lazy imports, clear failures.

A backend module provides `create_client(cfg) -> PollTcpClient` and
`create_server(cfg) -> PollTcpServer`, each taking the whole validated config.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pollnet.api import PollTcpClient, PollTcpServer
from pollnet.config import AnyConfig, EfviConfig, SocketConfig, TcpdirectConfig, load_config
from pollnet.errors import BackendUnavailable, PollnetError

BACKEND_MODULES = {
    "socket": "pollnet.backends.socket",
    "efvi": "pollnet.backends.efvi.adapter.factory",
    "tcpdirect": "pollnet.backends.tcpdirect.backend",
}

# What to do about a backend that does not import, by backend.
INSTALL_HINTS = {
    "socket": "reinstall pollnet: pip install -e .",
    "efvi": (
        "the efvi backend needs the native core pollnet._pncore: build it with "
        "`pip install -e .` (needs a C compiler; `make install` installs everything)"
    ),
    "tcpdirect": (
        "the tcpdirect backend needs AMD/Solarflare Onload with TCPDirect "
        "(libonload_zf.so on the library path, or [tcpdirect] library = its path)"
    ),
}

ConfigSource = AnyConfig | str | os.PathLike[str] | Mapping[str, Any] | None


def as_config(cfg: ConfigSource) -> AnyConfig:
    """A validated config from a model, a file path, a dict or None (defaults + env)."""
    if isinstance(cfg, SocketConfig | EfviConfig | TcpdirectConfig):
        return cfg
    return load_config(cfg)


def backend_module(backend: str) -> ModuleType:
    """Import the backend's module, turning every import failure into BackendUnavailable."""
    name = BACKEND_MODULES.get(backend)
    if name is None:
        raise BackendUnavailable(backend, f"unknown backend; known: {', '.join(BACKEND_MODULES)}")
    try:
        return importlib.import_module(name)
    except PollnetError:
        raise
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise BackendUnavailable(
            backend, f"cannot import {name} (missing: {missing}); {INSTALL_HINTS[backend]}"
        ) from exc
    except OSError as exc:  # a shared library that does not load
        raise BackendUnavailable(backend, f"{exc}; {INSTALL_HINTS[backend]}") from exc


def _factory(backend: str, what: str) -> Any:
    module = backend_module(backend)
    fn = getattr(module, what, None)
    if fn is None:
        raise BackendUnavailable(
            backend, f"{module.__name__} has no {what}() yet (backend not implemented)"
        )
    return fn


def create_client(cfg: ConfigSource = None) -> PollTcpClient:
    """A `PollTcpClient` on the configured backend, from its `[client]` section."""
    config = as_config(cfg)
    client: PollTcpClient = _factory(config.backend, "create_client")(config)
    return client


def create_server(cfg: ConfigSource = None) -> PollTcpServer:
    """A `PollTcpServer` on the configured backend, from its `[server]` section."""
    config = as_config(cfg)
    server: PollTcpServer = _factory(config.backend, "create_server")(config)
    return server
