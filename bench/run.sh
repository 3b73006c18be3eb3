#!/usr/bin/env bash
# bench/run.sh -- `make bench`: starts a throwaway redis-server (through
# spec/run.sh --exec) and runs bench/bench.lua against it, then
# bench/openresty.lua (hicache in nginx, with wrk; HICACHE_LUAJIT_MODDIR is
# the LuaJIT build) against another; BENCH_ONLY=lua|openresty runs one.
# Through make, HICACHE_MODDIR/HICACHE_TEST_BUILD name the module and
# helpers just built and HICACHE_BENCH_BIN where bench/floor_get is
# (default build/bench). BENCH_ONLY=local runs only the local tier's
# benchmarks (bench/store_trace.lua, bench/l1.lua, bench/recovery.lua).
# BENCH_ONLY=cluster runs only bench/cluster.lua (a throwaway Redis Cluster
# against one node). BENCH_ONLY=encrypt runs only bench/encrypt.lua
# (encrypted vs plain values).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = lua ]; then
  spec/run.sh --exec "${LUA:-lua5.4}" bench/bench.lua "$@"
fi
# encrypted values (issue 14): get hit / set encrypted vs plain
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = encrypt ]; then
  spec/run.sh --exec lua5.4 bench/encrypt.lua
fi
# the local tier (issue 12): the store's eviction policy and RSS, the L1
# near cache, and recovery after Redis comes back
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = local ]; then
  spec/run.sh --exec lua5.4 bench/store_trace.lua
  spec/run.sh --exec lua5.4 bench/l1.lua
  [ -f bench/recovery.lua ] && spec/run.sh --exec lua5.4 bench/recovery.lua
fi
# Redis Cluster (issue 13): get hit and get_many(100) on 3 masters vs one node
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = cluster ]; then
  spec/run.sh --exec lua5.4 bench/cluster.lua
fi
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY:-}" = openresty ]; then
  spec/run.sh --exec lua5.4 bench/openresty.lua
fi
