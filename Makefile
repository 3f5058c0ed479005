# The two commands a fresh machine needs (see README):
#   make bench   installs everything, then runs `pollnet bench` on the best default here
#   make test    installs everything, then runs every test (C core sanitised and optimised,
#                lint, types, pytest)
PY ?= python3

.PHONY: install bench test lint native-test pytest
install:
	./scripts/install.sh

bench: install
	pollnet bench

lint:
	$(PY) -m ruff check pollnet cli tests
	$(PY) -m mypy pollnet cli

native-test:
	@if [ -f native/Makefile ]; then $(MAKE) -C native test; fi

pytest:
	$(PY) -m pytest -q

test: install lint native-test pytest
