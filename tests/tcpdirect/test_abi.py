"""The binding's cdef against C: struct layouts, constants and every function's type.

ABI mode trusts the cdef blindly, so these compile C next to it, twice: against
`native/tcpdirect_shim/include/zf/zf.h` (our look-alike's, typed from TCPDirect's public
headers: alone, a circular check), and against TCPDirect's real headers when there are
some: POLLNET_ZF_INCLUDE=/path/to/include (the folder holding zf/zf.h), or the source tree
a POLLNET_TCPDIRECT_LIBRARY was built in. Without them the "real" rows do not exist and
tests/tcpdirect/test_real_library.py skips once, saying so.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from pollnet.backends.tcpdirect import zf
from tcpdirect.shim import SHIM_DIR

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc)")
NO_REAL_HEADERS = (
    "no TCPDirect headers (set POLLNET_ZF_INCLUDE to the folder holding zf/zf.h, or "
    "POLLNET_TCPDIRECT_LIBRARY to a library built in a TCPDirect source tree)"
)


def real_headers() -> Path | None:
    named = os.environ.get("POLLNET_ZF_INCLUDE")
    if named:
        return Path(named)
    library = os.environ.get("POLLNET_TCPDIRECT_LIBRARY")
    # A tree's build: <tree>/build/<target>/lib/libonload_zf.so, headers in <tree>/src/include.
    for parent in Path(library).resolve().parents if library else ():
        if (parent / "src" / "include" / "zf" / "zf.h").is_file():
            return parent / "src" / "include"
    return None


@pytest.fixture(params=["look-alike", "real"] if real_headers() else ["look-alike"])
def headers(request: pytest.FixtureRequest) -> Path:
    """The folder holding zf/zf.h that the C side includes."""
    if request.param == "look-alike":
        return SHIM_DIR / "include"
    found = real_headers()
    assert found is not None
    if not (found / "zf" / "zf.h").is_file():
        pytest.fail(f"POLLNET_ZF_INCLUDE = {str(found)!r} holds no zf/zf.h")
    return found

PRELUDE = """
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <zf/zf.h>
"""

# (C type, cffi type, fields): the structs the binding lays out itself.
STRUCTS = [
    ("struct zft_msg", ["reserved", "pkts_left", "flags", "iovcnt", "iov"]),
    ("struct iovec", ["iov_base", "iov_len"]),
    ("struct sockaddr_in", ["sin_family", "sin_port", "sin_addr", "sin_zero"]),
    ("struct sockaddr", ["sa_family", "sa_data"]),
    ("struct in_addr", ["s_addr"]),
    ("struct epoll_event", ["events", "data"]),
    ("epoll_data_t", ["ptr", "fd", "u32", "u64"]),
]
SCALARS = ["socklen_t", "sa_family_t", "in_port_t"]
CONSTANTS = [
    "TCP_ESTABLISHED",
    "TCP_SYN_SENT",
    "TCP_SYN_RECV",
    "TCP_FIN_WAIT1",
    "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_CLOSING",
    "MSG_MORE",
]
EPOLL_CONSTANTS = ["EPOLLIN", "EPOLLOUT", "EPOLLHUP", "EPOLLERR"]  # fmt: skip


def compile_c(
    tmp_path: Path, headers: Path, source: str, run: bool = True
) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "check.c"
    exe = tmp_path / "check"
    src.write_text(PRELUDE + source)
    assert CC is not None
    # Without `run`, compile only: the functions need no definitions to be type-checked.
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{headers}"] + ([] if run else ["-c"])
    built = subprocess.run(
        [CC, *flags, "-o", str(exe), str(src)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0 or not run:
        return built
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True)


def c_values(tmp_path: Path, headers: Path, exprs: list[str]) -> dict[str, int]:
    """Evaluate integer C expressions in a compiled program."""
    lines = "".join(f'  printf("%s=%lld\\n", "{e}", (long long)({e}));\n' for e in exprs)
    done = compile_c(tmp_path, headers, f"int main(void) {{\n{lines}  return 0;\n}}\n")
    assert done.returncode == 0, done.stderr
    return {k: int(v) for k, _, v in (line.rpartition("=") for line in done.stdout.splitlines())}


def test_struct_layouts_match_c(tmp_path: Path, headers: Path) -> None:
    exprs: list[str] = []
    expected: dict[str, int] = {}
    for ctype, fields in STRUCTS:
        exprs.append(f"sizeof({ctype})")
        expected[exprs[-1]] = zf.ffi.sizeof(ctype)
        exprs.append(f"_Alignof({ctype})")
        expected[exprs[-1]] = zf.ffi.alignof(ctype)
        for field in fields:
            exprs.append(f"offsetof({ctype}, {field})")
            expected[exprs[-1]] = zf.ffi.offsetof(ctype, field)
    for name in SCALARS:
        exprs.append(f"sizeof({name})")
        expected[exprs[-1]] = zf.ffi.sizeof(name)
    assert c_values(tmp_path, headers, exprs) == expected


def test_zft_msg_is_followed_by_its_iovecs(tmp_path: Path) -> None:
    # The header's usage: a zft_msg immediately followed by the iovec array it fills.
    msg = zf.ffi.new("struct zft_msg *", {"iov": 3})
    assert zf.ffi.sizeof(msg[0]) == zf.ffi.sizeof("struct zft_msg") + 3 * zf.ffi.sizeof(
        "struct iovec"
    )
    assert zf.ffi.offsetof("struct zft_msg", "iov") == zf.ffi.sizeof("struct zft_msg")


def test_constants_match_c(tmp_path: Path, headers: Path) -> None:
    assert c_values(tmp_path, headers, CONSTANTS) == {name: getattr(zf, name) for name in CONSTANTS}
    # The epoll bits the server hands zf_muxer_add come from Python's select module.
    expected = {name: getattr(select, name) for name in EPOLL_CONSTANTS}
    assert c_values(tmp_path, headers, EPOLL_CONSTANTS) == expected


def _pointer_decls(names: tuple[str, ...]) -> str:
    """`ret (*p_f)(args) = &f;` for each function, `ret` and `args` as typed in zf.CDEF:
    gcc -Werror rejects any whose type differs from the header's. The cdef's own typedefs
    must name the same types as the system's, or the text would prove nothing."""
    lines = []
    for name in names:
        match = re.search(rf"^([^;/]*?)\b{name}\((.*?)\);", zf.CDEF, re.M | re.S)
        assert match, f"{name} is not declared in zf.CDEF"
        ret, args = match.group(1).strip(), " ".join(match.group(2).split())
        lines.append(f"{ret} (*p_{name})({args}) = &{name};")
    for target, alias in re.findall(r"^typedef ([\w ]+?) (\w+);", zf.CDEF, re.M):
        lines.append(f'_Static_assert(__builtin_types_compatible_p({alias}, {target}), "{alias}");')
    refs = " ".join(f"(void)p_{name};" for name in names)
    return "\n".join(lines) + f"\nint main(void) {{ {refs} return 0; }}\n"


def test_every_function_type_matches_the_header(tmp_path: Path, headers: Path) -> None:
    built = compile_c(tmp_path, headers, _pointer_decls(zf.FUNCTIONS), run=False)
    assert built.returncode == 0, built.stderr


def test_the_function_check_rejects_a_wrong_signature(tmp_path: Path, headers: Path) -> None:
    # The same check, with zft_zc_recv's flags argument dropped, must not compile.
    wrong = "void (*p_zft_zc_recv)(struct zft*, struct zft_msg*) = &zft_zc_recv;\n"
    built = compile_c(
        tmp_path, headers, wrong + "int main(void) { (void)p_zft_zc_recv; return 0; }\n", run=False
    )
    assert built.returncode != 0
    assert "incompatible" in built.stderr


def test_binding_and_shim_header_declare_the_same_functions() -> None:
    header = (SHIM_DIR / "include" / "zf" / "zf.h").read_text()
    declared = set(re.findall(r"^\w[\w\s\*]*?\b(zftl?_\w+|zf_\w+)\(", header, re.M))
    assert declared == set(zf.FUNCTIONS)


def test_the_shim_exports_every_bound_function(shim_library: Path) -> None:
    lib = zf.load(str(shim_library))  # load() itself insists on every name
    assert all(hasattr(lib, name) for name in zf.FUNCTIONS)
