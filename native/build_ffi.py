"""Builds `pollnet._pncore`, the cffi (out-of-line, API mode) binding of the C core.

The cdef is `native/include/pncore.h` at build time -- the headers are the one source of
truth -- run through the C preprocessor with PN_CDEF defined (the headers then leave out
the system includes cffi has no use for), plus the `extern "Python"` callbacks the efvi
backend needs. Every function the cdef declares must be defined by a compiled object
(pycparser reads the declarations, `nm` the definitions), or the build says which are not.

Our C (every `native/src/*.c` except the real-link files, plus what `native/build_links.py`
returns) is compiled here, file by file, with `-std=c11 -O2 -Wall -Wextra -Werror`, and
linked into the extension as objects; cffi's generated wrapper is compiled by setuptools
with Python's own flags, so a warning in cffi's output can never fail our build while
every warning in ours does.

Environment:
  POLLNET_SANITIZE=1   build with -fsanitize=address,undefined (see scripts/pytest-asan.sh)
  CC                   the C compiler (default: the one Python was built with, else cc)

Run as a script to build the module into a directory without installing it:
  python native/build_ffi.py [OUTDIR]      # -> OUTDIR/pollnet/_pncore.*.so
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import cffi

NATIVE = Path(__file__).resolve().parent
HEADER = NATIVE / "include" / "pncore.h"
SRC = NATIVE / "src"
MODULE = "pollnet._pncore"

STRICT = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-D_GNU_SOURCE"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

# Callbacks from C into Python (see pollnet/backends/efvi/core/binding.py).
PY_CALLBACKS = """
extern "Python" int _pn_py_accept(void *ctx, uint32_t remote_ip, uint16_t remote_port);
"""

def c_compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]


def header_cdef(cc: list[str]) -> str:
    """pncore.h as cffi reads it: preprocessed with PN_CDEF, no line markers."""
    cmd = [*cc, "-E", "-P", "-DPN_CDEF", "-x", "c", str(HEADER)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"build_ffi: preprocessing {HEADER} failed:\n{done.stderr}")
    return done.stdout


# The fixed-width and size types the headers use, for pycparser (cffi knows them itself).
_C_TYPES = "".join(f"typedef int {t};\n" for t in (
    "size_t", "ssize_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "int8_t", "int16_t",
    "int32_t", "int64_t", "uintptr_t"))


def declared_functions(cdef: str) -> set[str]:
    """The functions the cdef declares (parsed, not pattern-matched)."""
    from pycparser import c_ast, c_parser

    unit = c_parser.CParser().parse(_C_TYPES + cdef)
    return {d.name for d in unit.ext
            if isinstance(d, c_ast.Decl) and isinstance(d.type, c_ast.FuncDecl)}


def defined_functions(objects: list[str]) -> set[str]:
    """The global functions the compiled objects define."""
    done = subprocess.run(["nm", "-g", "--defined-only", *objects], capture_output=True,
                          text=True, check=True)
    return {f[2] for f in (ln.split() for ln in done.stdout.splitlines())
            if len(f) == 3 and f[1] == "T"}


def is_real_link(path: Path) -> bool:
    return path.name.startswith("link_") and "sim" not in path.name


def link_build() -> dict[str, list]:
    """What native/build_links.py says the real links need (empty when it is absent)."""
    empty: dict[str, list] = {
        "sources": [],
        "libraries": [],
        "include_dirs": [],
        "extra_compile_args": [],
        "define_macros": [],
    }
    script = NATIVE / "build_links.py"
    if not script.exists():
        return empty
    spec = importlib.util.spec_from_file_location("_pollnet_build_links", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.link_build()
    for key in empty:
        empty[key] = list(got.get(key) or [])
    return empty


def compile_objects(
    sources: list[Path], flags: list[str], outdir: Path, depends: list[Path]
) -> list[str]:
    """Compile each source to an object under outdir; skip those already up to date."""
    cc = c_compiler()
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256(" ".join(cc + flags).encode()).hexdigest()[:16]
    newest_dep = max((p.stat().st_mtime for p in depends), default=0.0)
    objects = []
    for src in sources:
        obj = outdir / f"{src.stem}-{hashlib.sha256(str(src).encode()).hexdigest()[:8]}.o"
        flag_file = obj.with_suffix(".flags")
        fresh = (
            obj.exists()
            and flag_file.exists()
            and flag_file.read_text() == stamp
            and obj.stat().st_mtime >= max(src.stat().st_mtime, newest_dep)
        )
        if not fresh:
            cmd = [*cc, *flags, "-c", str(src), "-o", str(obj)]
            print("build_ffi:", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
            result = subprocess.run(cmd, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"build_ffi: compiling {src} failed (see the errors above)")
            flag_file.write_text(stamp)
        objects.append(str(obj))
    return objects


def make_builder() -> cffi.FFI:
    sanitize = os.environ.get("POLLNET_SANITIZE", "") not in ("", "0")
    links = link_build()
    core_sources = sorted(p for p in SRC.glob("*.c") if not is_real_link(p))
    link_sources = [Path(s).resolve() for s in links["sources"]]
    sources = core_sources + [p for p in link_sources if p not in core_sources]
    if not core_sources:
        raise RuntimeError(
            f"build_ffi: no C sources in {SRC}: the core is not there yet, nothing to build"
        )

    include_dirs = list(dict.fromkeys([str(NATIVE / "include"), str(SRC), *links["include_dirs"]]))
    macros = [
        f"-D{name}" if value is None else f"-D{name}={value}"
        for name, value in links["define_macros"]
    ]
    flags = STRICT + (SANITIZE if sanitize else [])
    flags += [f"-I{d}" for d in include_dirs] + macros + links["extra_compile_args"]
    # Every header of ours (including what build_links generates) and this script.
    depends = [Path(__file__).resolve()]
    for d in include_dirs:
        if Path(d).resolve().is_relative_to(NATIVE):
            depends += Path(d).glob("*.h")
    variant = "asan" if sanitize else "release"
    objects = compile_objects(sources, flags, NATIVE / "build" / "ffi" / variant, depends)

    cdef = header_cdef(c_compiler())
    missing = declared_functions(cdef) - defined_functions(objects)
    if missing:
        raise RuntimeError("build_ffi: the headers declare functions no compiled source "
                           "defines: " + ", ".join(sorted(missing)))
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.cdef(PY_CALLBACKS)
    ffi.set_source(
        MODULE,
        '#include "pncore.h"\n',
        include_dirs=[str(NATIVE / "include")],
        extra_objects=objects,
        depends=objects,
        libraries=[*links["libraries"], "m"],
        extra_link_args=SANITIZE if sanitize else [],
    )
    return ffi


if __name__ == "__main__":  # setup.py calls make_builder itself (cffi_modules)
    out = sys.argv[1] if len(sys.argv) > 1 else str(NATIVE / "build" / "ffi" / "module")
    print(make_builder().compile(tmpdir=out, verbose=True))
