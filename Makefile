# The two commands a fresh machine needs (see README):
#   make bench   installs everything, then runs `pollnet bench` on the best default here
#   make test    installs everything, then runs every test (C core sanitised and optimised,
#                lint, types, pytest)
PY ?= python3

.PHONY: install bench test
install:
	./scripts/install.sh

bench: install
	pollnet bench

test: install
	./scripts/test.sh
