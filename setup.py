"""Packaging that pyproject.toml cannot express: the cffi-compiled core, and the compiled
per-message path
(`pollnet._pnfast`, optional: where it cannot be built the install goes on and the efvi
backend runs its Python path)."""

import os
import sys

from setuptools import Extension, find_packages, setup

here = os.path.dirname(__file__) or "."
sys.path.insert(0, os.path.join(here, "native"))

packages = find_packages(include=["pollnet", "pollnet.*"])

cffi_modules = []
ext_modules = []
if os.path.exists(os.path.join(here, "native", "build_ffi.py")):
    import build_fast

    cffi_modules.append("native/build_ffi.py:make_builder")
    ext_modules.append(Extension(
        "pollnet._pnfast", [os.path.relpath(p, here) for p in build_fast.SOURCES],
        include_dirs=["native/include"], depends=["native/ext/pnfast.h"],
        extra_compile_args=build_fast.compile_args(), optional=True))

setup(
    packages=packages,
    package_data={"pollnet": ["py.typed", "_pnfast.pyi"]},
    cffi_modules=cffi_modules,
    ext_modules=ext_modules,
)
