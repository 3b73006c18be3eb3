#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] -- build the decoder fuzz target with libFuzzer,
# ASan and UBSan, and fuzz it for SECONDS (default 60) from a copy of the
# committed seed corpus fuzz/corpus/ (which the run leaves untouched).
#
# First replays each input in fuzz/crashes/ (regressions). Exits 0 only
# when those all pass and the fuzzing ends cleanly: any crash, failed
# round-trip check, leak, sanitizer report, timeout (10 s per input) or
# excess memory (2 GiB) exits non-zero, and the offending input is left in
# build/fuzz/artifacts/. Replay one with:
#   build/fuzz/decode_fuzz build/fuzz/artifacts/crash-<sha1>
#
# Environment: CC (default clang), PKG_CONFIG (default pkg-config),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=4 -workers=4").
set -euo pipefail

secs=${1:-60}
case $secs in
'' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
CC=${CC:-clang}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
out=build/fuzz
bin=$out/decode_fuzz
mkdir -p "$out/artifacts"
rm -f "$out"/artifacts/*   # what is left there afterwards is from this run

# The decoder and what it links against (hc_reply.c for hc_pcall, hc_entry.c
# for envelopes and the files that one uses).
srcs="src/hc_codec.c src/hc_msgpack.c src/hc_json.c src/hc_reply.c src/hc_entry.c src/hc_names.c src/hc_cmd.c fuzz/decode_fuzz.c"
echo "fuzz: building $bin"
# shellcheck disable=SC2046,SC2086 # word splitting of the flags is intended
"$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -std=c99 -Wall -Wextra \
    -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
    $("$PKG_CONFIG" --cflags lua5.4 hiredis) -Isrc \
    $srcs -o "$bin" \
    $("$PKG_CONFIG" --libs lua5.4 libzstd jansson msgpack hiredis libsodium) -lm

work=$(mktemp -d "${TMPDIR:-/tmp}/hicache-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
mkdir "$work/corpus"
cp fuzz/corpus/* "$work/corpus/"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

# Regressions: every input in fuzz/crashes/ (a finding not yet fixed, or
# kept after its fix) must now run cleanly. Fuzzing goes on either way.
still_crash=""
for f in fuzz/crashes/*; do
    [ -f "$f" ] || continue
    if "$bin" -timeout=10 -rss_limit_mb=2048 "$f" >"$work/regress.log" 2>&1; then
        : # runs cleanly
    else
        echo "fuzz: regression input $f still fails:" >&2
        grep -E 'CHECK FAILED|ERROR:|runtime error:|SUMMARY' "$work/regress.log" >&2 || tail -n 20 "$work/regress.log" >&2
        still_crash="$still_crash $f"
    fi
done

echo "fuzz: $(find fuzz/crashes -type f | wc -l) regression inputs replayed; running for ${secs}s on $(find "$work/corpus" -type f | wc -l) seeds"
set +e
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
    "$work/corpus" >"$work/log" 2>&1
status=$?
set -e
# libFuzzer's ~3,000 progress lines go to a log file; the screen gets the
# summary line below (or, on a failure, the log's tail).
cp "$work/log" "$out/fuzz.log"

if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|CHECK FAILED' "$work/log"; then
    [ "$status" -ne 0 ] || status=1
fi
done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$work/log" | tail -n 1 || true)
if [ "$status" -ne 0 ] || [ -z "$done_line" ]; then
    tail -n 40 "$out/fuzz.log" >&2
    echo "fuzz: FAILED (exit status $status); inputs in $out/artifacts/, log in $out/fuzz.log" >&2
    ls -l "$out/artifacts/" >&2 || true
    [ "$status" -ne 0 ] || status=1
    exit "$status"
fi
runs=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/')
took=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/')
echo "fuzz: $runs runs in $took s, no crash (log: $out/fuzz.log)"
if [ -n "$still_crash" ]; then
    echo "fuzz: FAILED: these fuzz/crashes/ inputs still fail:$still_crash" >&2
    exit 1
fi
