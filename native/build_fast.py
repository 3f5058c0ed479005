"""Builds `pollnet._pnfast`, every backend's compiled per-message path (a CPython
extension, native/ext/*.c), warning-free under the same strict flags as the core.

setup.py builds it as an optional extension: where it cannot be compiled the install
goes on and the efvi backend uses its Python path (`pollnet info` says which one runs).

Environment:
  POLLNET_SANITIZE=1   build with -fsanitize=address,undefined (scripts/pytest-asan.sh)
  CC                   the C compiler (default: the one Python was built with, else cc)

Run as a script to build the module into a directory without installing it:
  python native/build_fast.py [OUTDIR]     # -> OUTDIR/pollnet/_pnfast.*.so
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

NATIVE = Path(__file__).resolve().parent
# pnfast.c (the module, shared helpers) and one fast_<backend>.c per backend.
SOURCES = sorted((NATIVE / "ext").glob("*.c"))
# -fvisibility=hidden: only PyInit__pnfast leaves the module (its files share the rest).
FLAGS = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC",
         "-fno-strict-aliasing", "-fvisibility=hidden"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


def compile_args() -> list[str]:
    """Flags for setuptools' Extension (on top of Python's own)."""
    flags = list(FLAGS)
    if os.environ.get("POLLNET_SANITIZE") == "1":
        flags += SANITIZE
    return flags


def build(outdir: Path) -> Path:
    """Compile the module straight to OUTDIR/pollnet/_pnfast<EXT_SUFFIX>."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = outdir / "pollnet" / f"_pnfast{suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    link = SANITIZE if os.environ.get("POLLNET_SANITIZE") == "1" else []
    cmd = [*cc, *compile_args(), "-shared", f"-I{sysconfig.get_paths()['include']}",
           f"-I{NATIVE / 'include'}", *map(str, SOURCES), *link, "-o", str(out)]
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "native/build/fast")))
