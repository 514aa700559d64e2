#!/usr/bin/env bash
# How long a fresh standby takes to catch up with an active holding a large
# backlog, and what it costs in memory, while the active keeps serving.
#
#   bench/replication-catchup.sh [-c COUNT] [-s BYTES] [--no-build]
#
# Starts node a alone (file lock), fills a durable queue with COUNT persistent
# messages of BYTES (default 1,000,000 × 1 KiB ≈ 1 GiB), then starts a fresh node b
# as its standby while a publisher keeps sending to a (switchboard-bench q1-1
# --confirm --persistent --rate 500). Prints the time until a reports its standby in
# sync (switchboard ctl status), b's peak RSS, and the publisher's result.
set -euo pipefail
COUNT=1000000
SIZE=1024
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -c) COUNT="$2"; shift 2 ;;
        -s) SIZE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}/release"
[[ $BUILD == 1 ]] && cargo build --release -q -p switchboard -p switchboard-bench
SB="$TARGET/switchboard"
DIR=$(mktemp -d /tmp/sb-catchup.XXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RA=$(free_port); RB=$(free_port)
common=(--bind 127.0.0.1 --mqtt-port 0 --mqtt-ws-port 0 --stomp-port 0 --stomp-ws-port 0 --http-port 0 --admin-port 0 --lock "file:$DIR/lock")
"$SB" --data-dir "$DIR/a" --amqp-port 0 --replication-port "$RA" --peer "127.0.0.1:$RB" "${common[@]}" >"$DIR/a.out" 2>"$DIR/a.err" &
until grep -q role=active "$DIR/a.out" 2>/dev/null; do sleep 0.1; done
AMQP=$(grep -o 'amqp=[0-9.:]*' "$DIR/a.out" | tail -1 | cut -d= -f2)
echo "filling $COUNT x $SIZE B into node a ($AMQP)"
t0=$(date +%s.%N)
"$TARGET/switchboard-fill" --url "amqp://guest:guest@$AMQP/%2f" --queue backlog --count "$COUNT" --size "$SIZE" >/dev/null
t1=$(date +%s.%N)
printf 'filled in %.1f s; journal %s\n' "$(echo "$t1 - $t0" | bc)" "$(du -sh "$DIR/a/journal" | cut -f1)"
"$TARGET/switchboard-bench" --url "amqp://guest:guest@$AMQP/%2f" -d 20 --confirm --persistent --rate 500 q1-1 >"$DIR/pub.out" 2>&1 &
PUB=$!
sleep 1
t2=$(date +%s.%N)
"$SB" --data-dir "$DIR/b" --amqp-port 0 --replication-port "$RB" --peer "127.0.0.1:$RA" "${common[@]}" >"$DIR/b.out" 2>"$DIR/b.err" &
B=$!
peak=0
while :; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$B/status" 2>/dev/null || echo 0)
    (( rss > peak )) && peak=$rss
    if "$SB" ctl status "127.0.0.1:$RA" 2>/dev/null | grep -q in_sync=true; then break; fi
    sleep 0.1
done
t3=$(date +%s.%N)
printf 'standby in sync after %.1f s; its peak RSS %d MiB; its journal %s\n' \
    "$(echo "$t3 - $t2" | bc)" $((peak / 1024)) "$(du -sh "$DIR/b/journal" | cut -f1)"
wait $PUB
echo "publisher on the active meanwhile:"; tail -1 "$DIR/pub.out"
