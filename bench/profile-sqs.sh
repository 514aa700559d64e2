#!/usr/bin/env bash
# Profiles the broker under an SQS load: starts Switchboard (SigV4 on, user guest),
# runs one switchboard-bench SQS case against it with `perf record -g` attached to
# the broker, and prints the bench's figures and the share of the broker's samples
# (self time) spent in the allocator, in serde/serde_json and in SigV4 (with
# HMAC/SHA-256, which also hashes every body), then the top symbols.
#
#   bench/profile-sqs.sh [-d SECS] [--no-build] [CASE] [-- BENCH_ARGS...]
#
# CASE defaults to 'sqs-single --workers 4' (SendMessage, ReceiveMessage,
# DeleteMessage one at a time). The broker runs with `fsync = "never"` unless
# --fsync: waiting for the disk otherwise dominates the broker's samples and leaves
# its CPU mostly idle. SWITCHBOARD_BIN and BENCH_BIN pick the binaries
# (default: target/release's), so two builds can be profiled alternately:
#   SWITCHBOARD_BIN=/tmp/before/switchboard bench/profile-sqs.sh --no-build
# Only a symbol's own samples count: what the compiler inlined into a caller is
# counted in the caller.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

DURATION=15; BUILD=1; FSYNC=never; CASE="sqs-single --workers 4"; EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d) DURATION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --fsync) FSYNC=""; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) CASE="$1"; shift ;;
    esac
done
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
TMP="$(mktemp -d -t sb-sqs-profile.XXXXXX)"
SB_PID=""; PERF_PID=""
cleanup() {
    local rc=$?; trap - EXIT
    stop_pid "$PERF_PID" perf; stop_pid "$SB_PID" switchboard; rm -rf "$TMP"; exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ "$BUILD" == 1 ]] && cargo build --release -p switchboard -p switchboard-bench >&2
T="${CARGO_TARGET_DIR:-target}/release"
SB_BIN="${SWITCHBOARD_BIN:-$T/switchboard}"
BENCH="${BENCH_BIN:-$T/switchboard-bench}"
echo "# $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); '$CASE' ${DURATION} s; fsync ${FSYNC:-on}; $SB_BIN"
warn_if_busy
if [[ -n "$FSYNC" ]]; then
    printf 'fsync = "%s"\n' "$FSYNC" >"$TMP/switchboard.toml"
    sb_start http --config "$TMP/switchboard.toml"
else
    sb_start http
fi
[[ -n "$SB_PORT" ]] || { echo "switchboard has no HTTP listener" >&2; exit 1; }
URL="http://guest:guest@127.0.0.1:$SB_PORT"
"$BENCH" sqs-send-latency --duration 1 --url "$URL" --json >/dev/null 2>&1 || true

read -r -a words <<<"$CASE"
# Recorded after the first 2 s (queue creation, warm caches) and before the end.
( sleep 2; exec perf record -q -g -o "$TMP/perf.data" -p "$SB_PID" -- sleep $((DURATION - 4)) ) \
    >/dev/null 2>&1 &
PERF_PID=$!
"$BENCH" "${words[@]}" --duration "$DURATION" --url "$URL" --watch-pid "$SB_PID" \
    ${EXTRA[@]+"${EXTRA[@]}"} | tail -n 3
wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
perf report -q -i "$TMP/perf.data" --stdio --no-children --sort sym -g none \
    --percent-limit 0 2>/dev/null >"$TMP/report.txt" || true

# Percentages of all the broker's samples, and of its user-space ones ([.]).
share() {
    grep -E "$1" "$TMP/report.txt" | awk -v user="$USER_PCT" '{gsub("%","",$1); s+=$1}
        END {printf "%5.2f %% of all, %5.2f %% of user space", s, (user > 0 ? 100 * s / user : 0)}'
}
USER_PCT="$(grep -F '[.]' "$TMP/report.txt" | awk '{gsub("%","",$1); s+=$1} END {printf "%.2f", s}')"
ALLOC='\] (__libc_)?(malloc|free|realloc|calloc|cfree)([@ ]|$)|_int_malloc|_int_free|_int_realloc|malloc_consolidate|unlink_chunk|tcache|sysmalloc'
SERDE='serde_json::|serde::|serde_core::'
SIGV4='sigv4::|hmac::|sha2::|[Ss]ha256'
echo "user space:                     $USER_PCT % of the samples"
echo "allocator (malloc/free...):     $(share "$ALLOC")"
echo "serde / serde_json:             $(share "$SERDE")"
echo "SigV4 + HMAC + SHA-256:         $(share "$SIGV4")"
echo "  of which sigv4:: itself:      $(share 'sigv4::')"
echo "samples: $(perf report -i "$TMP/perf.data" --stdio 2>/dev/null | sed -n 's/^# Samples: \([^ ]*\).*/\1/p' | head -n1)"
echo "top symbols (self):"
head -n 15 "$TMP/report.txt" | sed 's/^/    /'
