#!/usr/bin/env bash
# Replicated persistent publishing with confirms, side by side in one run:
# RabbitMQ's quorum queue, a Switchboard active/standby pair (sync replication),
# and a single Switchboard node, on this machine (127.0.0.1 only).
#
#   bench/compare-replication.sh [-d SECS] [--no-build] [CASE...]
#
# A CASE is a switchboard-bench scenario with its flags, quoted as one word
# (default: 'q1-1' and 'qN-N', each with --confirm --persistent). RabbitMQ gets
# --queue-type quorum (a one-node quorum queue: Raft with a single member, the
# same fsync-before-confirm contract). Each case runs against RabbitMQ, the pair
# and the single node in turn, watching each broker's CPU and RSS (for the pair:
# the active's). RabbitMQ is started if needed and left as it was found.
set -euo pipefail
DURATION=10
BUILD=1
CASES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d) DURATION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) CASES+=("$1"); shift ;;
    esac
done
[[ ${#CASES[@]} -gt 0 ]] || CASES=("q1-1" "qN-N")
cd "$(dirname "$0")/.."
source bench/lib.sh
TARGET="${CARGO_TARGET_DIR:-target}/release"
[[ $BUILD == 1 ]] && cargo build --release -q -p switchboard -p switchboard-bench
SB_BIN="${SWITCHBOARD_BIN:-$TARGET/switchboard}"
BENCH="$TARGET/switchboard-bench"
TMP=$(mktemp -d /tmp/sb-repl-bench.XXXX)
PIDS=()
STARTED_RABBIT=0
cleanup() {
    for p in "${PIDS[@]}"; do stop_pid "$p" switchboard; done
    [[ $STARTED_RABBIT == 1 ]] && { rabbitmqctl -q shutdown >/dev/null 2>&1 || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT

command -v rabbitmqctl >/dev/null 2>&1 || apt_install rabbitmq-server
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "starting RabbitMQ (rabbitmq-server -detached)" >&2
    rabbitmq-server -detached >/dev/null 2>&1 || true
    STARTED_RABBIT=1
fi
# await_startup fails at once while the node is not registered yet: poll.
for _ in $(seq 120); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
rabbitmqctl -q status >/dev/null 2>&1 || { echo "RabbitMQ did not start" >&2; exit 1; }
RABBIT_PID="$(rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RA=$(free_port); RB=$(free_port)
node() {  # node NAME REPL PEER
    "$SB_BIN" --data-dir "$TMP/$1" --bind 127.0.0.1 --amqp-port 0 --mqtt-port 0 --mqtt-ws-port 0 \
        --stomp-port 0 --stomp-ws-port 0 --http-port 0 --admin-port 0 \
        --replication-port "$2" --peer "127.0.0.1:$3" --lock "file:$TMP/lock" >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PIDS+=($!)
}
node a "$RA" "$RB"
until grep -q role=active "$TMP/a.out" 2>/dev/null; do sleep 0.1; done
PAIR_PID=${PIDS[0]}
node b "$RB" "$RA"
until "$SB_BIN" ctl status "127.0.0.1:$RA" 2>/dev/null | grep -q in_sync=true; do sleep 0.2; done
PAIR_PORT=$(grep -o 'amqp=[0-9.:]*' "$TMP/a.out" | tail -1 | sed 's/.*://')
sb_start amqp
PIDS+=("$SB_PID")
SINGLE_PORT=$SB_PORT
warn_if_busy

run() {  # run LABEL URL PID CASE EXTRA...
    local label="$1" url="$2" pid="$3" case="$4"; shift 4
    # shellcheck disable=SC2086
    "$BENCH" --url "$url" -d "$DURATION" --confirm --persistent --json --label "$label" \
        --case "$case" --watch-pid "$pid" "$@" $case >>"$TMP/results.jsonl"
}
for c in "${CASES[@]}"; do
    echo "== $c" >&2
    run rabbitmq-quorum "amqp://guest:guest@127.0.0.1:5672/%2f" "$RABBIT_PID" "$c" --queue-type quorum
    run switchboard-pair "amqp://guest:guest@127.0.0.1:$PAIR_PORT/%2f" "$PAIR_PID" "$c"
    run switchboard "amqp://guest:guest@127.0.0.1:$SINGLE_PORT/%2f" "$SB_PID" "$c"
done
"$SB_BIN" ctl status "127.0.0.1:$RA"
echo "-- the pair against RabbitMQ's quorum queue"
"$BENCH" --report "$TMP/results.jsonl" --baseline rabbitmq-quorum --subject switchboard-pair
echo "-- the pair against a single Switchboard node"
"$BENCH" --report "$TMP/results.jsonl" --baseline switchboard --subject switchboard-pair
