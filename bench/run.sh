#!/usr/bin/env bash
# bench/run.sh -- `make bench`: starts a throwaway redis-server (through
# spec/run.sh --exec) and runs bench/bench.lua against it, then
# bench/openresty.lua (hicache in nginx, with wrk; HICACHE_LUAJIT_MODDIR is
# the LuaJIT build) against another; BENCH_ONLY=lua|openresty runs one.
# Through make, HICACHE_MODDIR/HICACHE_TEST_BUILD name the module and
# helpers just built and HICACHE_BENCH_BIN where bench/floor_get is
# (default build/bench).
set -eu
cd "$(dirname "$0")/.."
if [ "${BENCH_ONLY:-}" != openresty ]; then
  spec/run.sh --exec "${LUA:-lua5.4}" bench/bench.lua "$@"
fi
if [ "${BENCH_ONLY:-}" != lua ]; then
  spec/run.sh --exec lua5.4 bench/openresty.lua
fi
