"""The cffi cdef of the core (native/build_ffi.py): the headers preprocessed with PN_CDEF,
their functions found by parsing, their definitions by `nm` on the objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native"))
import build_ffi  # noqa: E402  (native/ is not a package; importing it builds nothing)


def test_the_cdef_is_the_preprocessed_headers_without_system_includes() -> None:
    cdef = build_ffi.header_cdef(build_ffi.c_compiler())
    assert "pn_poll" in cdef and "struct pn_link" in cdef and "pn_bench_pingpong" in cdef
    assert "#" not in cdef  # no directive and no line marker left for cffi
    assert "__attribute__" not in cdef and "__extension__" not in cdef  # no libc header


def test_declared_functions_are_parsed_not_matched() -> None:
    cdef = """
    typedef struct pn_x pn_x;
    typedef int (*pn_cb)(pn_x *x);
    struct ops { int (*pn_rx)(int n); };
    int pn_real(pn_x *x,
                uint32_t n);
    extern const char *const pn_names[];
    """  # a function-pointer type, a field, a prototype over two lines, a variable
    assert build_ffi.declared_functions(cdef) == {"pn_real"}
    every = build_ffi.declared_functions(build_ffi.header_cdef(build_ffi.c_compiler()))
    assert {"pn_poll", "pn_send", "pn_stack_create", "pn_sim_wire_create"} <= every
    assert "rx_burst" not in every and "pn_stats_names" not in every


def test_a_declared_function_no_object_defines_is_named(tmp_path: Path) -> None:
    src = tmp_path / "one.c"
    src.write_text("int pn_defined(void) { return 0; }\nstatic int pn_hidden(void) "
                   "{ return 1; }\nint use(void) { return pn_hidden(); }\n")
    obj = tmp_path / "one.o"
    subprocess.run([*build_ffi.c_compiler(), "-c", str(src), "-o", str(obj)], check=True)
    defined = build_ffi.defined_functions([str(obj)])
    assert "pn_defined" in defined and "pn_hidden" not in defined
    declared = build_ffi.declared_functions("int pn_defined(void);\nint pn_missing(int x);\n")
    assert declared - defined == {"pn_missing"}
