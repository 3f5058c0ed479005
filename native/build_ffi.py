"""Builds `pollnet._pncore`, the cffi (out-of-line, API mode) binding of the C core.

The cdef is read from `native/include/pncore.h` at build time -- the header is the one
source of truth -- with its preprocessor lines and `extern "C"` wrapping removed, plus the
`extern "Python"` callbacks the efvi backend needs.

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
import re
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

# Functions of a real link (their names say which): each is kept in the cdef only when
# some compiled source defines it, so a build without that link still imports. Any other
# function the header declares and no source defines fails the build.
REAL_LINK_FUNCTION = re.compile(r"pn_(af_packet|af_xdp|efvi)_\w+$")


def header_cdef(text: str) -> str:
    """The header as cdef text: no preprocessor lines, no `extern "C" {` ... `}`."""
    text = re.sub(r"\\\n", " ", text)  # join continued preprocessor lines
    # Drop `#ifdef __cplusplus ... #endif` blocks whole (the extern "C" wrapping).
    text = re.sub(
        r"^[ \t]*#[ \t]*ifdef[ \t]+__cplusplus\b.*?^[ \t]*#[ \t]*endif[^\n]*\n",
        "",
        text,
        flags=re.M | re.S,
    )
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"


def declared_functions(cdef: str) -> list[str]:
    """Names of the functions the header declares (not function-pointer typedefs/fields)."""
    flat = re.sub(r"/\*.*?\*/", " ", cdef, flags=re.S)
    flat = re.sub(r"//[^\n]*", " ", flat)
    names = []
    for m in re.finditer(r"\b(pn_\w+)\s*\(", flat):
        before = flat[: m.start()].rstrip()
        if before.endswith("(*") or before.endswith("*)") or before.endswith("("):
            continue
        names.append(m.group(1))
    return sorted(set(names))


def defines(name: str, texts: list[str]) -> bool:
    pat = re.compile(r"\b" + re.escape(name) + r"\s*\([^;{]*\)\s*\{")
    return any(pat.search(t) for t in texts)


def remove_declaration(cdef: str, name: str) -> str:
    """Drop one function's prototype (it may span lines) from the cdef."""
    pat = re.compile(r"^[^;{}()]*\b" + re.escape(name) + r"\s*\([^;]*\)\s*;[^\n]*\n", re.M)
    out, n = pat.subn("", cdef)
    if n != 1:
        raise RuntimeError(f"build_ffi: could not remove the declaration of {name} from the cdef")
    return out


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
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
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

    cdef = header_cdef(HEADER.read_text())
    texts = [p.read_text() for p in sources]
    missing = []
    for name in declared_functions(cdef):
        if defines(name, texts):
            continue
        if REAL_LINK_FUNCTION.match(name):
            cdef = remove_declaration(cdef, name)
        else:
            missing.append(name)
    if missing:
        raise RuntimeError(
            "build_ffi: pncore.h declares functions no source defines: " + ", ".join(missing)
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


ffibuilder = make_builder()

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else str(NATIVE / "build" / "ffi" / "module")
    print(ffibuilder.compile(tmpdir=out, verbose=True))
