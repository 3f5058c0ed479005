"""What every command shares: loading the config from options, and clean errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from pollnet.config import BACKENDS, AnyConfig, load_config
from pollnet.errors import ConfigError, PollnetError

F = TypeVar("F", bound=Callable[..., Any])


class ConfigProblem(click.ClickException):
    """A config error: printed as it is, exit code 2 (like a usage error)."""

    exit_code = 2


class RuntimeProblem(click.ClickException):
    """The command could not do its job (backend unavailable, port in use...): exit 1."""

    exit_code = 1


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn pollnet's deliberate errors into one line and an exit code, no traceback."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    except PollnetError as exc:
        raise RuntimeProblem(str(exc)) from None


def config_options(fn: F) -> F:
    """--config FILE (or $POLLNET_CONFIG) and --backend."""
    fn = click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default=None,
        help="Override the config's backend.",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="POLLNET_CONFIG",
        default=None,
        help="Config file (.toml, .json, .yaml); $POLLNET_CONFIG is read too.",
    )(fn)
    return fn


def load(
    config_path: str | None, backend: str | None, **sections: dict[str, Any]
) -> AnyConfig:
    """The config from file + environment + command-line overrides (options left None
    are not overrides)."""
    overrides: dict[str, Any] = {}
    # An error in an overridden value names its flag: options are named for their field.
    flags: dict[str, str] = {"backend": "--backend"}
    if backend is not None:
        overrides["backend"] = backend
    for name, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            overrides[name] = given
            flags.update({f"{name}.{k}": f"--{k.replace('_', '-')} {v}" for k, v in given.items()})
    return load_config(config_path, overrides=overrides, override_names=flags)
