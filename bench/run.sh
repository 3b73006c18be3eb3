#!/usr/bin/env bash
# bench/run.sh -- `make bench`: starts a throwaway redis-server (through
# spec/run.sh --exec) and runs bench/bench.lua against it.
set -eu
cd "$(dirname "$0")/.."
exec spec/run.sh --exec "${LUA:-lua5.4}" bench/bench.lua "$@"
