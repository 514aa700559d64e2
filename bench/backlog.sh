#!/usr/bin/env bash
# A growing backlog against one that consumers keep down (issue 16), Switchboard and
# RabbitMQ in one run: one AMQP publisher, persistent messages, durable queue,
# publisher confirms (window 1024); `fill` has no consumer (the backlog grows to
# COUNT), `consumed` has one consumer keeping up. Runs alternate between the two
# brokers and the two conditions, ROUNDS times, each on a fresh queue.
#
#   bench/backlog.sh [-n COUNT] [-s SIZE] [-r ROUNDS] [--no-build] [--no-rabbit]
#
# Switchboard: target/release/switchboard (or $SWITCHBOARD_BIN), fresh data dir,
# ephemeral ports, default queue_memory_bytes (32 MiB) so a 1 KiB backlog pages out
# past ~30k messages. RabbitMQ: Debian's rabbitmq-server as a node of this script's
# own on free ports (classic queue, defaults), stopped at the end.
# SWITCHBOARD_BEFORE=path/to/switchboard adds a second Switchboard build to the
# rotation (before/after a change, same conditions).
set -euo pipefail
COUNT=300000
SIZE=1024
ROUNDS=2
BUILD=1
RABBIT=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) COUNT="$2"; shift 2 ;;
        -s) SIZE="$2"; shift 2 ;;
        -r) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-rabbit) RABBIT=0; shift ;;
        *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
source bench/lib.sh
TARGET="${CARGO_TARGET_DIR:-target}/release"
[[ "$BUILD" == 1 ]] && cargo build --release -q -p switchboard -p switchboard-bench
SB_BIN="${SWITCHBOARD_BIN:-$TARGET/switchboard}"
TOOL="$TARGET/switchboard-backlog"
TMP="$(mktemp -d)"
SB_PID="" SB0_PID=""

stop_rabbit() { rabbit_node_stop; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_rabbit
    stop_pid "$SB_PID" switchboard
    stop_pid "$SB0_PID" switchboard-before
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # a port p with p and p+1 free
    local p
    for _ in $(seq 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 25000 ))
        port_open "$p" || port_open $((p + 1)) || { echo "$p"; return 0; }
    done
    echo "no free port found" >&2; return 1
}

start_rabbit() {
    local p
    p="$(free_port)"
    rabbit_node_start "$TMP/rabbit" "$p" sb-backlog-bench "[]" || exit 1
    RB_URL="amqp://guest:guest@127.0.0.1:$p/%2f"
}

warn_if_busy
SYSTEMS=() URLS=()
if [[ -n "${SWITCHBOARD_BEFORE:-}" ]]; then
    SB_BIN_AFTER="$SB_BIN" SB_BIN="$SWITCHBOARD_BEFORE"
    TMP0="$TMP" TMP="$TMP/before"; mkdir -p "$TMP"
    sb_start amqp
    SB0_PID="$SB_PID" SB_PID="" TMP="$TMP0" SB_BIN="$SB_BIN_AFTER"
    SYSTEMS+=(switchboard-before) URLS+=("amqp://guest:guest@127.0.0.1:$SB_PORT/%2f")
fi
sb_start amqp
SYSTEMS+=(switchboard) URLS+=("amqp://guest:guest@127.0.0.1:$SB_PORT/%2f")
if [[ "$RABBIT" == 1 ]]; then
    start_rabbit
    SYSTEMS+=(rabbitmq) URLS+=("$RB_URL")
    echo "RabbitMQ $(dpkg-query -W -f '${Version}' rabbitmq-server | sed 's/-.*//') pid $RB_PID; switchboard pid $SB_PID" >&2
fi
for r in $(seq "$ROUNDS"); do
    for mode in fill consumed; do
        flag=""; [[ "$mode" == consumed ]] && flag="--consume"
        for i in "${!SYSTEMS[@]}"; do
            echo "round $r ${SYSTEMS[$i]} $("$TOOL" --url "${URLS[$i]}" --count "$COUNT" --size "$SIZE" $flag)"
        done
    done
done
