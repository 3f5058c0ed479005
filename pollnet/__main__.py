"""`python -m pollnet` is the `pollnet` command."""

import importlib

if __name__ == "__main__":
    # By name: `pollnet.cli` is the cli/ folder mapped in at install time.
    importlib.import_module("pollnet.cli.main").main()
