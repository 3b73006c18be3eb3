#!/usr/bin/env bash
# examples/openresty/run.sh -- the dashboard service in a private nginx
# (OpenResty's lua module, Debian's packages), and a short scripted session
# against it with curl: cold view, warm view, revoke admin, view, rename,
# view, public stats, a few /metrics lines. Exits non-zero when a step does
# not answer as expected. nginx is always stopped and its temp dir removed.
#
#   make luajit && spec/run.sh --exec examples/openresty/run.sh   (make demo)
#   REDIS_URL=redis://127.0.0.1:6379/0 examples/openresty/run.sh
#
# Redis: $REDIS_URL, else $HICACHE_TEST_HOST:$HICACHE_TEST_PORT (spec/run.sh
# --exec sets them to its throwaway redis-server), else 127.0.0.1:6379.
# The cache uses the prefix "dashboard-openresty" there.
# hicache's LuaJIT build: $HICACHE_LUAJIT_MODDIR/hicache/core.so (default
# <repo>/build/luajit, made by `make luajit`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
moddir=${HICACHE_LUAJIT_MODDIR:-$root/build/luajit}
modules=/usr/lib/nginx/modules
if [ -n "${REDIS_URL:-}" ]; then
  redis_url=$REDIS_URL
else
  redis_url="redis://${HICACHE_TEST_HOST:-127.0.0.1}:${HICACHE_TEST_PORT:-6379}/0"
fi

die() { echo "run.sh: $*" >&2; exit 1; }

for tool in nginx curl luajit; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (Debian: nginx, curl, luajit2)"
done
[ -f "$modules/ngx_http_lua_module.so" ] || die "no $modules/ngx_http_lua_module.so (Debian: libnginx-mod-http-lua)"
[ -f "$moddir/hicache/core.so" ] || die "no LuaJIT build of hicache in $moddir (make luajit)"
case $redis_url in
  *'"'* | *\\* | *$'\n'*) die "REDIS_URL must not contain quotes, backslashes or newlines" ;;
esac

# The temp dir: under spec/run.sh's own (named nginx-*), its cleanup also
# stops this nginx should this script be killed outright.
prefix=$(mktemp -d "${HICACHE_TEST_DIR:-${TMPDIR:-/tmp}}/nginx-openresty-demo.XXXXXX")
started=

stop_nginx() {
  local pid workers
  [ -n "$started" ] || return 0
  for _ in $(seq 20); do [ -s "$prefix/nginx.pid" ] && break; sleep 0.1; done
  pid=$(cat "$prefix/nginx.pid" 2>/dev/null) || return 0
  workers=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -QUIT "$pid" 2>/dev/null || return 0      # graceful: ends open requests
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "run.sh: nginx ($pid) did not stop on QUIT; killing it" >&2
  # shellcheck disable=SC2086
  kill -9 "$pid" $workers 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop_nginx
  rm -rf "$prefix"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$prefix/logs" "$prefix/tmp"

# A free loopback port (nginx fails on a busy one: then another one).
free_port() {
  luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, port = s:getsockname(); s:close(); print(port)'
}
# sed replacement text: \, & and the delimiter | escaped
sed_text() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

for attempt in $(seq 10); do
  port=$(free_port)
  # the placeholders outside comments (the comments keep explaining them)
  sed -e "/^[[:space:]]*#/!{
            s|\$HICACHE_ROOT|$(sed_text "$root")|g
            s|\$HICACHE_MODDIR|$(sed_text "$moddir")|g
            s|\$PREFIX|$(sed_text "$prefix")|g
            s|\$PORT|$port|g
            s|\$REDIS_URL|$(sed_text "$redis_url")|g
            s|\$NGINX_USER|$(id -un) $(id -gn)|g
          }" "$here/nginx.conf" >"$prefix/nginx.conf"
  rm -f "$prefix/nginx.pid"
  # output to a file: the daemon keeps the descriptors it inherits open, so
  # a pipe (or $(...)) would never see EOF
  if nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" >"$prefix/logs/start.log" 2>&1; then
    started=1
    break
  fi
  if ! grep -q "Address already in use" "$prefix/logs/start.log" || [ "$attempt" -eq 10 ]; then
    cat "$prefix/logs/start.log" "$prefix/logs/error.log" >&2 2>/dev/null || true
    die "nginx did not start"
  fi
done
base=http://127.0.0.1:$port
body=$prefix/body

# req METHOD PATH EXPECTED_STATUS: the response body in $body, its
# headers in $prefix/headers
req() {
  local code
  code=$(curl -sS -o "$body" -D "$prefix/headers" -w '%{http_code}' -X "$1" --max-time 10 "$base$2") || code=000
  if [ "$code" != "$3" ]; then
    echo "run.sh: $1 $2 answered $code, expected $3:" >&2
    cat "$body" >&2 2>/dev/null || true
    echo "run.sh: the end of nginx's error log:" >&2
    tail -n 20 "$prefix/logs/error.log" >&2 || true
    exit 1
  fi
}

# json LUA_EXPR: evaluates LUA_EXPR with d = the decoded $body (lua-cjson)
cat >"$prefix/json.lua" <<'LUA'
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local d = cjson.decode(f:read("*a"))
f:close()
local function join(t) return table.concat(t or {}, ",") end
print(tostring(assert(loadstring("local d, join = ...; return " .. arg[2]))(d, join)))
LUA
json() { luajit "$prefix/json.lua" "$body" "$1"; }

# Until /health answers 200: nginx is up, Redis answers, user 42 is seeded.
ready=
for _ in $(seq 100); do
  if [ "$(curl -s -o "$body" -w '%{http_code}' --max-time 2 "$base/health" 2>/dev/null)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "run.sh: $base/health did not answer 200 (is Redis up at $redis_url?): $(cat "$body" 2>/dev/null)" >&2
  tail -n 20 "$prefix/logs/error.log" >&2 || true
  exit 1
fi

echo "nginx (2 workers) on $base, Redis at $redis_url, prefix dir $prefix"
printf '%-40s %s\n' "GET  /health" "$(cat "$body")"
echo

# view LABEL EXPECTED_STATUSES: GET /dashboard/42, one line; the cache
# statuses of the request (profile, dashboard) must be EXPECTED_STATUSES.
view() {
  req GET /dashboard/42 200
  local title panels cache queries
  title=$(json d.title)
  panels=$(json 'join(d.panels)')
  cache=$(json 'join(d.cache)')
  queries=$(json d.sql_queries)
  printf 'GET  /dashboard/42  %-21s %-15s panels=%-20s cache=%-10s sql queries=%s\n' \
    "$1" "$title" "$panels" "$cache" "$queries"
  [ "$cache" = "$2" ] || die "$1: the cache statuses are '$cache', expected '$2'"
}

view "first view (cold)" miss,miss
view "second view (warm)" hit,hit
[ "$(json 'join(d.panels)')" = "inbox,admin console" ] || die "Ada should have the admin console"

req POST "/users/42/revoke?permission=admin" 200
printf '%-40s %s\n' "POST /users/42/revoke?permission=admin" "$(json 'd.ok and "ok" or "failed"')"
view "after revoking admin" miss,miss
case ",$(json 'join(d.panels)')," in
  *",admin console,"*) die "the dashboard still shows the admin console after the revoke" ;;
esac

req POST "/users/42/rename?name=Ada%20King" 200
printf '%-40s %s\n' "POST /users/42/rename?name=Ada%20King" "$(json 'd.ok and "ok" or "failed"')"
view "after a rename" miss,miss
[ "$(json d.title)" = "Hello Ada King" ] || die "the title is not 'Hello Ada King' after the rename"
view "again (warm)" hit,hit

req GET /dashboard/7 404
printf '%-40s %s\n' "GET  /dashboard/7" "404 $(json d.error)"

req GET /public_stats 200
printf '%-40s %s\n' "GET  /public_stats" "users=$(json d.users)  (memoized; cache: $(json 'join(d.cache)'))"
[ "$(json d.users)" = 1 ] || die "public_stats should count 1 user"
req GET /public_stats 200
[ "$(json 'join(d.cache)')" = hit ] || die "the second public_stats should be a cache hit"

req GET /metrics 200
echo
echo "GET  /metrics  (the counters of worker $(tr -d '\r' <"$prefix/headers" | sed -n 's/^X-Worker: //p');" \
  "each worker counts its own operations)"
grep -E '^hicache_(hits_total|misses_total|hit_rate|operations_total\{[^}]*op="get_or_set")' "$body" |
  grep -v 'family=' | sed 's/^/  /' || true
grep -q '^# TYPE hicache_hits_total counter' "$body" || die "/metrics is not hicache's Prometheus text"

# nginx's error log: no [error], [crit], [alert] or [emerg] line
if grep -E '\[(error|crit|alert|emerg)\]' "$prefix/logs/error.log" >&2; then
  die "nginx logged errors (above)"
fi
echo
echo "ok: the session answered as expected; stopping nginx"
