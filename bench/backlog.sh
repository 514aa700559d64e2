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
RABBITMQCTL=/usr/lib/rabbitmq/bin/rabbitmqctl
TMP="$(mktemp -d)"
SB_PID="" SB0_PID="" RB_NODE="" RB_PID="" RB_WRAPPER=""

stop_rabbit() {
    [[ -n "$RB_NODE" ]] || return 0
    timeout 30 "$RABBITMQCTL" -n "$RB_NODE" -q shutdown >/dev/null 2>&1 || true
    stop_pid "$RB_PID" rabbitmq
    [[ -n "$RB_WRAPPER" ]] && { kill -0 "$RB_WRAPPER" 2>/dev/null && kill -TERM "$RB_WRAPPER" 2>/dev/null; wait "$RB_WRAPPER" 2>/dev/null || true; }
    RB_NODE="" RB_PID="" RB_WRAPPER=""
}
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
    local p d="$TMP/rabbit"
    p="$(free_port)"
    mkdir -p "$d"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$p" >"$d/rabbitmq.conf"
    echo '[].' >"$d/enabled_plugins"
    RB_NODE="sb-backlog-bench-$$@localhost"
    env RABBITMQ_NODENAME="$RB_NODE" RABBITMQ_NODE_PORT="$p" RABBITMQ_DIST_PORT=$((p + 1)) \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins" \
        RABBITMQ_PID_FILE="$d/pid" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1 &
    RB_WRAPPER=$!
    local up=0
    for _ in $(seq 90); do
        kill -0 "$RB_WRAPPER" 2>/dev/null || break
        if timeout 60 "$RABBITMQCTL" -n "$RB_NODE" -q await_startup >/dev/null 2>&1; then
            up=1; break
        fi
        sleep 1
    done
    [[ "$up" == 1 ]] || { echo "RabbitMQ did not start:" >&2; tail -n 20 "$d/out.log" >&2; exit 1; }
    RB_PID="$(tr -dc '0-9' <"$d/pid" 2>/dev/null || true)"
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
