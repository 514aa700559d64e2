#!/usr/bin/env bash
# What a permission check costs: AMQP q1-1 through one Switchboard (release build),
# once as `guest` (full permissions: `.*`, no regex run) and once as `bencher`,
# whose configure/write/read are '^sb-bench-.*' (switchboard-bench names its queues
# sb-bench-…; a publish to the default exchange is checked against `amq.default`,
# which fails, then against the queue name: two regex runs per message). Each run
# is recorded with `perf record -g` on the broker, and the share of samples in the
# permission code (guard.rs, access.rs, regex) is printed.
#
#   bench/permissions.sh [-d SECS] [--no-build] [--no-perf] [-- BENCH_ARGS]
#
# perf is optional (--no-perf, or when missing: throughput only). The broker runs
# on ephemeral ports with a temporary data dir and config, and is stopped at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

DURATION=15; BUILD=1; PERF=1; EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d) DURATION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-perf) PERF=0; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || PERF=0
TMP="$(mktemp -d)"
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
BENCH="$T/switchboard-bench"
cat >"$TMP/switchboard.toml" <<'EOF'
[[users]]
name = "guest"
password = "guest"
tags = ["administrator"]
loopback_only = true

[[users]]
name = "bencher"
password = "bencher"
permissions = [{ vhost = "/", configure = '^sb-bench-.*', write = '^sb-bench-.*', read = '^sb-bench-.*' }]
EOF
echo "# $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), load $(cut -d' ' -f1 /proc/loadavg); q1-1 ${DURATION} s, $SB_BIN"
warn_if_busy
SWITCHBOARD_FSYNC=never sb_start amqp --config "$TMP/switchboard.toml"
[[ -n "$SB_PORT" ]] || { echo "switchboard has no AMQP listener" >&2; exit 1; }

for user in guest bencher bencher guest; do
    if [[ "$PERF" == 1 ]]; then
        # The middle of the run: publishers and consumers both going.
        ( sleep 2; exec perf record -q -g -o "$TMP/perf-$user.data" -p "$SB_PID" -- sleep $((DURATION - 4)) ) \
            >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    line="$("$BENCH" q1-1 --url "amqp://$user:$user@127.0.0.1:$SB_PORT/%2f" -d "$DURATION" \
        --watch-pid "$SB_PID" --label "$user" ${EXTRA[@]+"${EXTRA[@]}"} | tail -n1)"
    echo "$user: $line"
    if [[ "$PERF" == 1 ]]; then
        wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
        # Self time per symbol; the permission code is Guarded's methods, access.rs
        # (Permissions, Pattern, Grant) and the regex crates.
        perf report -q -i "$TMP/perf-$user.data" --stdio --no-children --sort sym -g none \
            --percent-limit 0 2>/dev/null >"$TMP/report-$user.txt" || true
        share="$(grep -E 'guard::|access::|Guarded|Permissions|Pattern|regex' "$TMP/report-$user.txt" \
            | awk '{gsub("%","",$1); s+=$1} END {printf "%.2f", s}')"
        echo "$user: permission code $share % of the broker's samples (self time):"
        grep -E 'guard::|access::|Guarded|Permissions|Pattern|regex' "$TMP/report-$user.txt" | head -n 8 | sed 's/^/    /'
    fi
done
