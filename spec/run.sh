#!/usr/bin/env bash
# spec/run.sh -- start a throwaway redis-server, run the specs, stop it.
#
# The server has no persistence, listens on a unix socket in a temp dir and
# on a free loopback TCP port, and is always stopped (also on failure or
# Ctrl-C). The specs get its addresses through these variables:
#   HICACHE_TEST_HOST / HICACHE_TEST_PORT   TCP address
#   HICACHE_TEST_SOCKET                     unix socket path
#   HICACHE_TEST_CONF                       config file (to restart the server)
#   HICACHE_TEST_DIR                        temp dir
#   HICACHE_TEST_BUILD                      where the spec helpers were built
#   HICACHE_TEST_TLS_PORT                   the same server's TLS port (tls-port,
#                                           no client certificate required)
#   HICACHE_TEST_TLS_DIR                    the test PKI (spec/helpers/mkcerts.sh):
#                                           ca.crt, server.*, client.*, other-ca.crt,
#                                           other-server.*, wrong-host.*
# Without openssl, or when the server does not answer redis-cli --tls, it
# stops with a message and runs nothing: the TLS specs are never skipped.
# HICACHE_RUNNER=asan|valgrind runs busted under ASan or valgrind memcheck.
# Arguments go to busted (e.g. spec/pool_spec.lua), except:
#   spec/run.sh --exec CMD [ARGS]   runs CMD with the server instead of busted
#                                   (make demo and make bench use this).
set -u
cd "$(dirname "$0")/.."
root=$PWD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hicache-test.XXXXXX")
conf=$tmp/redis.conf
sock=$tmp/redis.sock

stop_redis() {
  local pid
  pid=$(cat "$tmp/redis.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}
child=
# Every private nginx of the OpenResty specs (spec/nginx_harness.lua) keeps
# its pid file under the temp dir.
stop_nginx() {
  local f pid
  for f in "$tmp"/nginx-*/nginx.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    kill -QUIT "$pid" 2>/dev/null || continue
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
}
# Every extra redis-server of H.start_redis keeps its pid file under the
# temp dir too: a spec that died (or restarted one) never leaves it running.
stop_extra_redis() {
  local f pid pids=()
  for f in "$tmp"/extra*/redis.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    kill -CONT "$pid" 2>/dev/null
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  # (also the Cluster and Sentinel servers of spec/helpers/topology.lua:
  # extra*-c*, extra*-s*). Whatever has not exited after 3 s is killed.
  for pid in ${pids[@]+"${pids[@]}"}; do
    for _ in $(seq 30); do
      case $(ps -o stat= -p "$pid" 2>/dev/null) in ''|Z*) break ;; esac
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
  done
}
cleanup() {
  [ -n "$child" ] && kill "$child" 2>/dev/null
  stop_nginx
  stop_extra_redis
  stop_redis
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits for it, so a signal to this
# script stops the command and the server at once.
run() {
  "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=
  return $rc
}

# The test PKI for the TLS port and the TLS specs. No certificates, no run:
# the TLS specs are never skipped.
tls=$tmp/tls
if ! command -v openssl >/dev/null 2>&1; then
  echo "spec/run.sh: openssl is not installed (./setup.sh installs it); the TLS specs need it" >&2
  exit 1
fi
if ! spec/helpers/mkcerts.sh "$tls" >"$tmp/mkcerts.log" 2>&1; then
  echo "spec/run.sh: could not generate the test certificates (spec/helpers/mkcerts.sh, openssl):" >&2
  cat "$tmp/mkcerts.log" >&2
  # the commands up to the one that failed, whatever the tools printed
  echo "spec/run.sh: the last commands of mkcerts.sh:" >&2
  sh -x spec/helpers/mkcerts.sh "$tmp/tls-trace" 2>&1 | tail -n 4 >&2
  exit 1
fi
for f in ca.crt ca.key server.crt server.key client.crt client.key other-ca.crt \
         other-server.crt other-server.key wrong-host.crt wrong-host.key; do
  if [ ! -s "$tls/$f" ]; then
    echo "spec/run.sh: spec/helpers/mkcerts.sh did not make $tls/$f" >&2
    exit 1
  fi
done
if ! openssl verify -CAfile "$tls/ca.crt" "$tls/server.crt" "$tls/client.crt" "$tls/wrong-host.crt" \
       >"$tmp/mkcerts.log" 2>&1 ||
   ! openssl verify -CAfile "$tls/other-ca.crt" "$tls/other-server.crt" >>"$tmp/mkcerts.log" 2>&1; then
  echo "spec/run.sh: the test certificates do not verify against their CAs:" >&2
  cat "$tmp/mkcerts.log" >&2
  exit 1
fi

started=
for _ in $(seq 20); do
  port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  tlsport=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  [ "$tlsport" = "$port" ] && continue
  cat > "$conf" <<CONF
bind 127.0.0.1
port $port
unixsocket $sock
unixsocketperm 700
daemonize yes
pidfile $tmp/redis.pid
logfile $tmp/redis.log
dir $tmp
save ""
appendonly no
enable-debug-command yes
tls-port $tlsport
tls-cert-file $tls/server.crt
tls-key-file $tls/server.key
tls-ca-cert-file $tls/ca.crt
tls-auth-clients no
CONF
  rm -f "$tmp/redis.pid"
  # a redis-server built without TLS stops here ("Bad directive ... tls-port")
  redis-server "$conf" >"$tmp/redis-start.log" 2>&1 || continue
  plain=
  for _ in $(seq 50); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] &&
       [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; then
      plain=1
      if [ "$(redis-cli --tls --cacert "$tls/ca.crt" -h 127.0.0.1 -p "$tlsport" ping 2>/dev/null)" = PONG ]; then
        started=1; break
      fi
    fi
    sleep 0.1
  done
  [ -n "$started" ] && break
  if [ -n "$plain" ]; then
    # the server is up but its TLS port does not answer: not a busy port
    echo "spec/run.sh: redis-server does not answer on its TLS port $tlsport:" >&2
    redis-cli --tls --cacert "$tls/ca.crt" -h 127.0.0.1 -p "$tlsport" ping >&2 2>&1
    cat "$tmp/redis.log" >&2 2>/dev/null
    exit 1
  fi
  stop_redis
done
if [ -z "$started" ]; then
  echo "spec/run.sh: could not start redis-server (with a tls-port)" >&2
  cat "$tmp/redis-start.log" "$tmp/redis.log" >&2 2>/dev/null
  exit 1
fi

export HICACHE_TEST_HOST=127.0.0.1 HICACHE_TEST_PORT=$port HICACHE_TEST_SOCKET=$sock
export HICACHE_TEST_CONF=$conf HICACHE_TEST_DIR=$tmp
export HICACHE_TEST_TLS_PORT=$tlsport HICACHE_TEST_TLS_DIR=$tls
export HICACHE_TEST_BUILD=${HICACHE_TEST_BUILD:-$root/build/spec}
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/spec/?.lua;;"
export LUA_CPATH="${HICACHE_MODDIR:-$root}/?.so;$HICACHE_TEST_BUILD/?.so;;"

lua=${LUA:-lua5.4}
prefix=()
case "${HICACHE_RUNNER:-}" in
  asan)
    export LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=98"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    ;;
  valgrind)
    prefix=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite --error-exitcode=99 --trace-children=no)
    export HICACHE_UNDER_VALGRIND=1
    ;;
esac

if [ "${1:-}" = --exec ]; then
  shift
  run "${prefix[@]}" "$@"
  exit $?
fi
# With no arguments: every spec under Lua 5.4 (the OpenResty specs start a
# private nginx that loads the LuaJIT build, $HICACHE_LUAJIT_MODDIR), then
# the plain-Lua specs again under LuaJIT when that build is given
# ($HICACHE_LUAJIT_MODDIR and $HICACHE_LUAJIT_BUILD, spec helpers); the
# last line adds them up. Under ASan or valgrind: the plain-Lua specs of
# the build under test only.
export HICACHE_SUMMARY_FILE=$tmp/summary
all=
if [ $# -eq 0 ]; then set -- spec examples/dashboard/spec; all=1; fi
exclude=()
if [ -n "${HICACHE_RUNNER:-}" ] || [ "$lua" = luajit ]; then exclude=(--exclude-pattern=openresty); fi
run "${prefix[@]}" "$lua" /usr/bin/busted -o spec/summary.lua "${exclude[@]}" "$@"
rc=$?
if [ -n "$all" ] && [ -z "${HICACHE_RUNNER:-}" ] && [ "$lua" != luajit ] && [ -n "${HICACHE_LUAJIT_MODDIR:-}" ]; then
  echo "LuaJIT ($HICACHE_LUAJIT_MODDIR):"
  LUA=luajit HICACHE_MODDIR=$HICACHE_LUAJIT_MODDIR HICACHE_TEST_BUILD=$HICACHE_LUAJIT_BUILD \
    LUA_CPATH="$HICACHE_LUAJIT_MODDIR/?.so;$HICACHE_LUAJIT_BUILD/?.so;;" \
    run luajit /usr/bin/busted -o spec/summary.lua --exclude-pattern=openresty "$@"
  rc2=$?
  [ "$rc" -eq 0 ] && rc=$rc2
  awk '{ p += $1; f += $2; s += $3 } END {
         printf "all runs (Lua 5.4 + LuaJIT): %d pending\n%d passed, %d failed\n", s, p, f }' "$tmp/summary"
fi
exit $rc
