"""Import a compiled module, or the file an environment variable names instead (a
sanitised build, for one): shared by the core's and the per-message path's loaders."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType


def load(name: str, env: str) -> ModuleType:
    """Module `name`, from the file `$env` names when set; ImportError if it cannot be."""
    path = os.environ.get(env, "")
    if not path:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{env}={path} is not a loadable module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
