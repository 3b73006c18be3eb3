#!/usr/bin/env bash
# bench/run.sh -- `make bench`: starts a throwaway redis-server (through
# spec/run.sh --exec) and runs bench/bench.lua against it. Through make,
# HICACHE_MODDIR/HICACHE_TEST_BUILD name the module and helpers just built
# and HICACHE_BENCH_BIN where bench/floor_get is (default build/bench).
set -eu
cd "$(dirname "$0")/.."
exec spec/run.sh --exec "${LUA:-lua5.4}" bench/bench.lua "$@"
