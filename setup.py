"""Packaging that pyproject.toml cannot express: the `cli/` folder installed as
`pollnet.cli`, and (once native/ has it) the cffi-compiled core."""

import os

from setuptools import find_packages, setup

packages = find_packages(include=["pollnet", "pollnet.*"])
packages += ["pollnet.cli"] + ["pollnet.cli." + p for p in find_packages("cli")]

cffi_modules = []
if os.path.exists(os.path.join(os.path.dirname(__file__) or ".", "native", "build_ffi.py")):
    cffi_modules.append("native/build_ffi.py:ffibuilder")

setup(
    packages=packages,
    package_dir={"pollnet.cli": "cli"},
    package_data={"pollnet": ["py.typed"]},
    cffi_modules=cffi_modules,
)
