"""Test helpers for applications built on pollnet (the pytest plugin lives in `plugin`)."""
