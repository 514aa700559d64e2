#!/usr/bin/env bash
# Switchboard vs mosquitto over MQTT, side by side in one run, on this machine (127.0.0.1 only).
#
#   bench/compare-mqtt.sh [-d SECS] [-s BYTES] [-o FILE] [--no-build] [CASE...] [-- BENCH_ARGS...]
#
# A CASE is a scenario with its switchboard-bench flags, quoted as one word, e.g.
#   bench/compare-mqtt.sh -d 5 'fanin-4 --qos 1' 'fanout-8 --qos 0 --mqtt-version 5' 'idle-5000'
# BENCH_ARGS after `--` go to every run (e.g. -- --confirm-window 100).
# Default cases: fanin-4 and fanout-4 at QoS 0 and 1 over 3.1.1 and 5.0, fanin-4
# QoS 1 at a fixed 4 x 2,500 msg/s (latency), and idle (10,000 connections).
#
# What it does:
#  - builds `switchboard` and `switchboard-bench` (release) unless --no-build;
#  - installs Debian's `mosquitto` if missing; never touches a mosquitto already
#    running (e.g. the package's service on 1883): it starts its own on a free
#    port with a temporary config (listener on 127.0.0.1, allow_anonymous,
#    max_queued_messages 10000000, persistence off, the rest default);
#  - starts target/release/switchboard with a temporary data dir and ephemeral
#    ports, and reads the MQTT address from its `listening ... mqtt=HOST:PORT` line;
#    a Switchboard without an MQTT listener is reported as n/a;
#  - for every case and each system (mosquitto first), starts that broker afresh,
#    runs the case with its RSS and CPU watched, and stops it: so each case's
#    memory figures (and idle's RSS per connection) start from a new process;
#  - prints a table with both systems' figures and the ratio switchboard/mosquitto.
#
# Environment: CARGO_TARGET_DIR (where switchboard-bench and, unless
# SWITCHBOARD_BIN is set, switchboard are: $CARGO_TARGET_DIR/release, falling
# back to target/release/switchboard), SWITCHBOARD_BIN (a switchboard binary to
# use), MOSQUITTO_BIN (default: mosquitto on PATH), MOSQUITTO_CONF_EXTRA (lines
# appended to mosquitto's config, e.g. 'max_inflight_messages 100').
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=5
SIZE=128
BUILD=1
OUT=""
CASES=()
EXTRA=()
DEFAULT_CASES=(
    "fanin-4 --qos 0"
    "fanin-4 --qos 1"
    "fanin-4 --qos 0 --mqtt-version 5"
    "fanin-4 --qos 1 --mqtt-version 5"
    "fanout-4 --qos 0"
    "fanout-4 --qos 1"
    "fanout-4 --qos 0 --mqtt-version 5"
    "fanout-4 --qos 1 --mqtt-version 5"
    "fanin-4 --qos 1 --rate 2500"
    "idle"
)

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -s|--size) SIZE="$2"; shift 2 ;;
        -o|--out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) CASES+=("$1"); shift ;;
    esac
done
[[ ${#CASES[@]} -gt 0 ]] || CASES=("${DEFAULT_CASES[@]}")

cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}/release"

# --- file descriptors: idle-<n> needs n in this shell's children (the bench
# and each broker). Raise the soft limit to the hard one (and the hard one if
# we may).
NEED_FDS=1024
for c in "${CASES[@]}"; do
    read -r -a w <<<"$c"
    case "${w[0]}" in
        idle) n=10000 ;;
        idle-*) n="${w[0]#idle-}" ;;
        *) continue ;;
    esac
    [[ "$n" =~ ^[0-9]+$ ]] && (( n + 512 > NEED_FDS )) && NEED_FDS=$(( n + 512 ))
done
HARD="$(ulimit -Hn)"
if [[ "$HARD" != unlimited ]] && (( HARD < NEED_FDS )); then
    ulimit -Hn 65536 2>/dev/null || ulimit -Hn "$NEED_FDS" 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -Sn)" != unlimited ]] && (( $(ulimit -Sn) < NEED_FDS )); then
    echo "warning: open-file limit $(ulimit -n) < $NEED_FDS needed for the idle case (raise ulimit -Hn)" >&2
fi

TMP="$(mktemp -d -t sb-mqtt-bench.XXXXXX)"
MQ_PID=""
SB_PID=""
RESULTS=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$MQ_PID" mosquitto
    stop_pid "$SB_PID" switchboard
    rm -rf "$TMP"
    [[ -z "$OUT" && -n "$RESULTS" ]] && rm -f "$RESULTS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build
if [[ "$BUILD" == 1 ]]; then
    echo "building switchboard and switchboard-bench (release)" >&2
    cargo build --release -p switchboard -p switchboard-bench >&2
fi
BENCH="$TARGET/switchboard-bench"
SB_BIN="${SWITCHBOARD_BIN:-$TARGET/switchboard}"
if [[ -z "${SWITCHBOARD_BIN:-}" && ! -x "$SB_BIN" && -x target/release/switchboard ]]; then
    SB_BIN=target/release/switchboard # the bench built elsewhere, the broker in the default dir
fi
[[ -x "$BENCH" ]] || { echo "missing $BENCH (build it, or set CARGO_TARGET_DIR)" >&2; exit 1; }
[[ -x "$SB_BIN" ]] || echo "warning: no switchboard binary at $SB_BIN: its column will be n/a" >&2

# --- mosquitto
MOSQUITTO="${MOSQUITTO_BIN:-}"
if [[ -z "$MOSQUITTO" ]]; then
    MOSQUITTO="$(command -v mosquitto || true)"
    [[ -z "$MOSQUITTO" && -x /usr/sbin/mosquitto ]] && MOSQUITTO=/usr/sbin/mosquitto
fi
if [[ -z "$MOSQUITTO" ]]; then
    echo "installing mosquitto (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y mosquitto >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y mosquitto >/dev/null; }
    MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
fi
MQ_VERSION="$( { "$MOSQUITTO" -h 2>/dev/null || true; } | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1)"

MQ_PORT=""
start_mosquitto() {
    local try port
    for try in 1 2 3 4 5; do
        port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
        port_open "$port" && continue
        cat >"$TMP/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
# The default (1000) drops messages queued for a subscriber that falls behind.
max_queued_messages 10000000
persistence false
log_dest stderr
log_type error
log_type warning
${MOSQUITTO_CONF_EXTRA:-}
EOF
        "$MOSQUITTO" -c "$TMP/mosquitto.conf" >>"$TMP/mosquitto.log" 2>&1 &
        MQ_PID=$!
        for _ in $(seq 50); do
            port_open "$port" && { MQ_PORT=$port; return 0; }
            kill -0 "$MQ_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$MQ_PID" mosquitto
        MQ_PID=""
    done
    echo "mosquitto did not start; its log:" >&2
    tail -n 20 "$TMP/mosquitto.log" >&2 || true
    return 1
}

SB_MQTT=""
start_switchboard() {
    SB_MQTT=""
    sb_start mqtt
    [[ -z "$SB_PORT" ]] || SB_MQTT="mqtt://127.0.0.1:$SB_PORT"
}

warn_if_busy

# --- runs
RESULTS="${OUT:-$(mktemp -t sb-mqtt-results.XXXXXX)}"
: >"$RESULTS"
echo "mosquitto ${MQ_VERSION:-?} vs Switchboard ($SB_BIN); ${#CASES[@]} cases, ${DURATION} s each," \
     "${SIZE} B messages; a fresh broker for every run" >&2
FAILED=0
NA=0
for c in "${CASES[@]}"; do
    read -r -a words <<<"$c"
    for sys in mosquitto switchboard; do
        if [[ "$sys" == mosquitto ]]; then
            start_mosquitto
            url="mqtt://127.0.0.1:$MQ_PORT"; pid="$MQ_PID"
        else
            start_switchboard
            if [[ -z "$SB_MQTT" ]]; then
                echo "[$sys] $c: n/a (no MQTT listener)" >&2
                NA=1
                stop_pid "$SB_PID" switchboard; SB_PID=""
                continue
            fi
            url="$SB_MQTT"; pid="$SB_PID"
        fi
        "$BENCH" "${words[@]}" --duration "$DURATION" --size "$SIZE" "${EXTRA[@]}" \
            --url "$url" --json --label "$sys" --case "$c" --watch-pid "$pid" \
            >>"$RESULTS" || FAILED=1
        tail -n 1 "$RESULTS" | grep -q '"error"' && tail -n 1 "$RESULTS" >&2
        if [[ "$sys" == mosquitto ]]; then
            stop_pid "$MQ_PID" mosquitto; MQ_PID=""
        else
            if ! kill -0 "$SB_PID" 2>/dev/null; then
                echo "switchboard exited during '$c'; its stderr:" >&2
                tail -n 30 "$TMP/sb.err" >&2 || true
                FAILED=1
            fi
            stop_pid "$SB_PID" switchboard; SB_PID=""
        fi
    done
done

echo
"$BENCH" --report "$RESULTS" --baseline mosquitto --subject switchboard
[[ -n "$OUT" ]] && echo "raw results (JSON lines): $OUT" >&2
[[ "$NA" == 0 ]] || echo "switchboard: no MQTT listener in its 'listening' line: n/a" >&2
[[ "$FAILED" == 0 ]] || echo "some runs failed or lost messages (see ERROR / lost above)" >&2
exit "$FAILED"
