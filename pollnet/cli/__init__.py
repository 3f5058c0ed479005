"""The `pollnet` command (installed as `pollnet.cli`)."""
