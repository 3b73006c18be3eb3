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
# Output: one line on the screen ("fuzz: 60s on N seeds ... R runs in 60 s,
# no crash"); everything libFuzzer prints goes to build/fuzz/fuzz.log. On a
# failure the sanitizer's report (or the log's tail) is shown as well.
#
# Environment: CC (default clang), PKG_CONFIG (default pkg-config),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=4 -workers=4"), FUZZ_OUT
# (the build and output directory, default build/fuzz; make passes
# $(BUILD)/fuzz).
set -euo pipefail

secs=${1:-60}
case $secs in
'' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
CC=${CC:-clang}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
out=${FUZZ_OUT:-build/fuzz}
bin=$out/decode_fuzz
mkdir -p "$out/artifacts"
rm -f "$out"/artifacts/*   # what is left there afterwards is from this run

# The decoder and what it links against (hc_reply.c for hc_pcall, hc_entry.c
# for envelopes and the files that one uses).
srcs="src/core/hc_codec.c src/core/hc_seal.c src/core/hc_msgpack.c src/core/hc_json.c src/lua/hc_reply.c src/core/hc_entry.c src/core/hc_names.c src/base/hc_cmd.c fuzz/decode_fuzz.c"
log=$out/fuzz.log   # everything the fuzzer prints; the screen gets one line
: >"$log"
# shellcheck disable=SC2046,SC2086 # word splitting of the flags is intended
"$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -std=c99 -Wall -Wextra \
    -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
    $("$PKG_CONFIG" --cflags lua5.4 hiredis) -Isrc/base -Isrc/core -Isrc/lua \
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
    echo "== regression input $f" >>"$log"
    if "$bin" -timeout=10 -rss_limit_mb=2048 "$f" >"$work/regress.log" 2>&1; then
        cat "$work/regress.log" >>"$log"
    else
        cat "$work/regress.log" >>"$log"
        echo "fuzz: regression input $f still fails:" >&2
        grep -E 'CHECK FAILED|ERROR:|runtime error:|SUMMARY' "$work/regress.log" >&2 || tail -n 20 "$work/regress.log" >&2
        still_crash="$still_crash $f"
    fi
done

# One line on the screen: what runs now, completed by the result below.
# libFuzzer's progress lines (thousands) go to $log only.
nregress=$(find fuzz/crashes -type f | wc -l)
printf 'fuzz: %ss on %s seeds (+%s regression inputs) ... ' "$secs" \
    "$(find "$work/corpus" -type f | wc -l)" "$nregress"
echo "== fuzzing for ${secs}s" >>"$log"
set +e
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
    "$work/corpus" >"$work/log" 2>&1
status=$?
set -e
cat "$work/log" >>"$log"

pattern='ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|CHECK FAILED|==[0-9]+== ?ERROR'
if grep -qE "$pattern" "$work/log"; then
    [ "$status" -ne 0 ] || status=1
fi
done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$work/log" | tail -n 1 || true)
if [ "$status" -ne 0 ] || [ -z "$done_line" ]; then
    echo "FAILED" >&2
    # the report from its first line (the sanitizer's ERROR), else the tail
    first=$(grep -nE "$pattern" "$work/log" | head -n 1 | cut -d: -f1)
    if [ -n "$first" ]; then
        # up to its SUMMARY line (at most 40 lines), then where the input went
        last=$(awk -v f="$first" 'NR >= f && /^SUMMARY: /{ print NR; exit }' "$work/log")
        [ -n "$last" ] && [ "$last" -lt $((first + 40)) ] || last=$((first + 40))
        sed -n "${first},${last}p" "$work/log" >&2
        grep -E 'Test unit written' "$work/log" >&2 || true
    else
        tail -n 40 "$work/log" >&2
    fi
    echo "fuzz: FAILED (exit status $status); inputs in $out/artifacts/, whole log in $log" >&2
    ls -l "$out/artifacts/" >&2 || true
    [ "$status" -ne 0 ] || status=1
    exit "$status"
fi
runs=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/')
took=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/')
echo "$runs runs in $took s, no crash (log: $log)"
if [ -n "$still_crash" ]; then
    echo "fuzz: FAILED: these fuzz/crashes/ inputs still fail:$still_crash" >&2
    exit 1
fi
