#!/usr/bin/env bash
# Start-up recovery time and memory with a large journal (issue 3's figures):
# fill a durable queue with COUNT persistent messages of SIZE bytes, kill -9 the
# broker, start it again on the same data directory and report how long it took to
# print its `listening` line and how much memory it holds with that backlog, and
# check that every confirmed message is still there (the queue's count, admin API).
# FILL=old fills with switchboard-fill (one publish awaited at a time: about a
# third of the rate, issue 16) instead of switchboard-backlog (pipelined).
#
#   bench/recovery.sh [COUNT] [SIZE]        (default 1000000 1024; NO_BUILD=1: use the built binaries)
set -euo pipefail
COUNT="${1:-1000000}"
SIZE="${2:-1024}"
cd "$(dirname "$0")/.."
[[ -n "${NO_BUILD:-}" ]] || cargo build --release -q -p switchboard -p switchboard-bench
BIN=target/release/switchboard
DATA=$(mktemp -d)
trap 'kill -9 ${PID:-0} 2>/dev/null || true; rm -rf "$DATA"' EXIT

start() {
    local out; out=$(mktemp)
    local t0; t0=$(date +%s.%N)
    "$BIN" --data-dir "$DATA" --bind 127.0.0.1 --amqp-port 0 --mqtt-port 0 --mqtt-ws-port 0 --stomp-port 0 --stomp-ws-port 0 --http-port 0 --admin-port 0 >"$out" 2>/dev/null &
    PID=$!
    until grep -q '^listening ' "$out"; do sleep 0.05; done
    local t1; t1=$(date +%s.%N)
    URL="amqp://guest:guest@$(sed -n 's/^listening amqp=\([^ ]*\).*/\1/p' "$out")/%2f"
    ADMIN="$(sed -n 's/.* admin=\([^ ]*\).*/\1/p' "$out")"
    STARTUP=$(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")
}

rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$PID/status"; }
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$PID/status"; }

# Ready messages in the queue as the admin API counts them.
count() {
    curl -s -u guest:guest "http://$ADMIN/api/queues/%2f/backlog" \
        | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'
}

start
if [[ "${FILL:-}" == old ]]; then
    target/release/switchboard-fill --url "$URL" --queue backlog --count "$COUNT" --size "$SIZE"
else
    target/release/switchboard-backlog --url "$URL" --queue backlog --keep --count "$COUNT" --size "$SIZE"
fi
echo "after filling: RSS $(rss) MiB (peak $(hwm) MiB), journal $(du -sm "$DATA/journal" | cut -f1) MiB"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
start
echo "restart after kill -9 with $COUNT x $SIZE B: listening after ${STARTUP} s, RSS $(rss) MiB (peak $(hwm) MiB)"
N="$(count)"
if [[ "$N" != "$COUNT" ]]; then
    echo "LOST: the queue holds ${N:-?} messages after the restart, $COUNT were confirmed" >&2
    exit 1
fi
echo "all $COUNT confirmed messages are back"
