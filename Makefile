# xdpd: build, test, install.

CARGO ?= cargo

.PHONY: all build test clean

all: build

build:
	$(CARGO) build --workspace --release

# The whole suite, as root: real BPF programs, veth pairs in network namespaces.
# Tests share network namespaces and bpffs, but each creates its own; two
# threads keep the 2-CPU machines responsive while traffic tests run.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace -- --test-threads=2

clean:
	$(CARGO) clean
