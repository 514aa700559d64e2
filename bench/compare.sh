#!/usr/bin/env bash
# Switchboard vs RabbitMQ, side by side in one run, on this machine (127.0.0.1 only).
#
#   bench/compare.sh [-d SECS] [-s BYTES] [-o FILE] [--no-build] [CASE...] [-- BENCH_ARGS...]
#
# A CASE is a scenario with its switchboard-bench flags, quoted as one word, e.g.
#   bench/compare.sh -d 5 'q1-1' 'q1-1 --confirm' 'fanout-8'
# BENCH_ARGS after `--` go to every run (e.g. -- --prefetch 100).
#
# What it does:
#  - builds `switchboard` and `switchboard-bench` (release);
#  - RabbitMQ: uses the running node if there is one; otherwise installs the
#    Debian package if missing, starts it (rabbitmq-server -detached) and stops
#    it again at the end (rabbitmqctl shutdown): it is left as it was found;
#  - starts target/release/switchboard on ephemeral ports with a temporary data
#    dir, reads its `listening amqp=127.0.0.1:PORT ...` line, and stops it at the end;
#  - runs every case against RabbitMQ then Switchboard (interleaved, so both
#    see the same machine conditions), watching each broker's RSS and CPU;
#  - prints a table with each system's figures and the ratio switchboard/rabbitmq.
#
# Environment: RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f),
# SB_USERINFO (credentials for Switchboard, default guest:guest), CARGO_TARGET_DIR,
# SWITCHBOARD_BIN (a switchboard binary to use instead of target/release/switchboard).
set -euo pipefail

DURATION=10
SIZE=128
BUILD=1
OUT=""
CASES=()
EXTRA=()
DEFAULT_CASES=(
    "q1-1"
    "q1-1 --confirm"
    "q1-1 --confirm --persistent"
    "qN-N"
    "qN-N --confirm"
    "fanout-4"
    "q1-1 --rate 2000"
    # How Celery/kombu/pika consumers work: prefetch 100, one basic.ack per delivery.
    "fanin-2 --prefetch 100 --ack-every 1 --max-lag 5000"
    "fanin-2 --prefetch 100 --ack-every 1 --max-lag 5000 --confirm --persistent"
    "fanout-3 --prefetch 100 --ack-every 1 --max-lag 5000"
)

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

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
RABBITMQ_URL="${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
SB_USERINFO="${SB_USERINFO:-guest:guest}"

case "$RABBITMQ_URL" in
    amqp://127.0.0.1[:/]*|amqp://*@127.0.0.1[:/]*|amqp://localhost[:/]*|amqp://*@localhost[:/]*) ;;
    *) echo "RABBITMQ_URL must point at 127.0.0.1: $RABBITMQ_URL" >&2; exit 2 ;;
esac

SB_PID=""
SB_DATA=""
SB_LOG=""
STARTED_RABBIT=0
RESULTS=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SB_PID" ]] && kill -0 "$SB_PID" 2>/dev/null; then
        kill -TERM "$SB_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SB_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SB_PID" 2>/dev/null; then
            echo "switchboard did not stop on SIGTERM within 10 s: SIGKILL" >&2
            kill -KILL "$SB_PID" 2>/dev/null || true
        fi
        wait "$SB_PID" 2>/dev/null || true
    fi
    [[ -n "$SB_DATA" ]] && rm -rf "$SB_DATA"
    [[ -n "$SB_LOG" ]] && rm -f "$SB_LOG" "$SB_LOG.err"
    if [[ "$STARTED_RABBIT" == 1 ]]; then
        echo "stopping the RabbitMQ node this script started" >&2
        rabbitmqctl -q shutdown >/dev/null 2>&1 || rabbitmqctl -q stop >/dev/null 2>&1 || true
    fi
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
[[ -x "$BENCH" && -x "$SB_BIN" ]] || { echo "missing $SB_BIN or $BENCH" >&2; exit 1; }

# --- RabbitMQ
rabbit_up() { rabbitmqctl -q status >/dev/null 2>&1; }
WAS_UP=0
if command -v rabbitmqctl >/dev/null 2>&1; then
    rabbit_up && WAS_UP=1
else
    echo "installing rabbitmq-server (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y rabbitmq-server >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y rabbitmq-server >/dev/null; }
fi
if [[ "$WAS_UP" == 0 ]]; then
    # Not running when we came: stop it at the end (also if the install started it).
    STARTED_RABBIT=1
    if ! rabbit_up; then
        echo "starting RabbitMQ (rabbitmq-server -detached)" >&2
        rabbitmq-server -detached >/dev/null 2>&1 || true
    fi
fi
timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1 || { echo "RabbitMQ did not start" >&2; exit 1; }
RABBIT_PID="$(rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9')"
RABBIT_VERSION="$(rabbitmqctl -q version 2>/dev/null || echo '?')"

# --- Switchboard
SB_DATA="$(mktemp -d -t sb-bench-data.XXXXXX)"
SB_LOG="$(mktemp -t sb-bench-log.XXXXXX)"
"$SB_BIN" --data-dir "$SB_DATA" --bind 127.0.0.1 \
    --amqp-port 0 --mqtt-port 0 --mqtt-ws-port 0 --stomp-port 0 --stomp-ws-port 0 --http-port 0 --admin-port 0 \
    >"$SB_LOG" 2>"$SB_LOG.err" &
SB_PID=$!
LISTEN=""
for _ in $(seq 300); do
    LISTEN="$(grep -m1 '^listening ' "$SB_LOG" || true)"
    [[ -n "$LISTEN" ]] && break
    kill -0 "$SB_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$LISTEN" ]]; then
    echo "switchboard did not print its 'listening' line; its stderr:" >&2
    tail -n 30 "$SB_LOG.err" >&2 || true
    exit 1
fi
SB_PORT="$(sed -n 's/.*[[:space:]]amqp=[^[:space:]]*:\([0-9][0-9]*\).*/\1/p' <<<"$LISTEN")"
[[ -n "$SB_PORT" ]] || { echo "no amqp=HOST:PORT in: $LISTEN" >&2; exit 1; }
SB_URL="amqp://$SB_USERINFO@127.0.0.1:$SB_PORT/%2f"

# --- runs
RESULTS="${OUT:-$(mktemp -t sb-bench-results.XXXXXX)}"
: >"$RESULTS"
echo "RabbitMQ $RABBIT_VERSION (pid $RABBIT_PID) vs Switchboard (pid $SB_PID, amqp port $SB_PORT);" \
     "${#CASES[@]} cases, ${DURATION} s each, ${SIZE} B bodies" >&2
FAILED=0
for c in "${CASES[@]}"; do
    read -r -a words <<<"$c"
    for sys in rabbitmq switchboard; do
        if [[ "$sys" == rabbitmq ]]; then url="$RABBITMQ_URL"; pid="$RABBIT_PID"; else url="$SB_URL"; pid="$SB_PID"; fi
        if [[ "$sys" == switchboard ]] && ! kill -0 "$SB_PID" 2>/dev/null; then
            echo "switchboard exited; its stderr:" >&2
            tail -n 30 "$SB_LOG.err" >&2 || true
            exit 1
        fi
        "$BENCH" "${words[@]}" --duration "$DURATION" --size "$SIZE" "${EXTRA[@]}" \
            --url "$url" --json --label "$sys" --case "$c" ${pid:+--watch-pid "$pid"} \
            >>"$RESULTS" || FAILED=1
    done
done

echo
"$BENCH" --report "$RESULTS" --baseline rabbitmq --subject switchboard
[[ -n "$OUT" ]] && echo "raw results (JSON lines): $OUT" >&2
[[ "$FAILED" == 0 ]] || echo "some runs failed or lost messages (see ERROR / missing above)" >&2
exit "$FAILED"
