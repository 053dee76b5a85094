#!/usr/bin/env bash
# Seeds the cargo-fuzz corpora from the project's compiled BPF objects and
# from a few option dictionaries. Run from anywhere; writes fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."
objects=$(cargo build -p xdpd-bpf --message-format=json 2>/dev/null |
    sed -n 's/.*"XDPD_BPF_OBJECTS","\([^"]*\)".*/\1/p' | tail -n1)
test -d "$objects" || { echo "cannot find the compiled BPF objects (XDPD_BPF_OBJECTS of xdpd-bpf)" >&2; exit 1; }
mkdir -p fuzz/corpus/object_intake fuzz/corpus/options
n=0
for o in "$objects"/*.o; do
    name=$(basename "$o" .o)
    # The first byte picks the function name (see FUNCTIONS in fuzz/src/lib.rs).
    for choice in 0 1 2 3 4 5; do
        { printf "\\x0$choice"; cat "$o"; } > "fuzz/corpus/object_intake/$name-$choice"
        n=$((n + 1))
    done
done
# a{sv} seeds in D-Bus wire format (little endian), written by the smoke test's encoder.
XDPD_FUZZ_WRITE_SEEDS="$PWD/fuzz/corpus/options" cargo test -q -p xdpd-tests --test fuzz_smoke -- option_seeds_round_trip >/dev/null
echo "seeded $n object inputs and $(ls fuzz/corpus/options | wc -l) option inputs"
