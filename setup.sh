#!/bin/sh
# setup.sh -- first command on a fresh Debian 12 machine: installs the Debian
# packages hicache needs when they are missing, builds, and runs the demo
# against a throwaway redis-server. `./setup.sh --no-demo` skips the demo.
set -eu
cd "$(dirname "$0")"

packages="make gcc libc6-dev pkg-config lua5.4 liblua5.4-dev libhiredis-dev
  libmsgpack-dev libzstd-dev libjansson-dev libsodium-dev
  python3-django python3-django-redis python3-msgpack clang libclang-rt-14-dev
  luarocks lua-busted redis-server redis-tools valgrind lua-redis lua-socket
  lua-check lua-sql-sqlite3 python3-prometheus-client lua-cjson
  libssl-dev openssl strace util-linux
  nginx libnginx-mod-http-lua lua-resty-core luajit2 libluajit2-5.1-dev wrk curl"
# OpenResty's LuaJIT (luajit2, libluajit2-5.1-dev) is the one Debian's
# libnginx-mod-http-lua links; libluajit-5.1-dev would replace it and
# remove the nginx lua module, so it is not listed. nginx is only started
# privately by the specs (spec/nginx_harness.lua), never as a service.

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup.sh: installing:$missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

make -s all
[ "${1:-}" = "--no-demo" ] || make -s demo
