#!/usr/bin/env bash
# The admin API with many queues, Switchboard against RabbitMQ's management plugin
# (Debian's rabbitmq-server, a node of this script's own on free ports), in one run:
# N durable queues declared over AMQP, then GET /api/queues (all of them) and one
# page of 100, K times each: wall time and the broker's CPU per request.
#
#   bench/compare-admin.sh [-n QUEUES] [-k REPEATS] [--no-build]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

N=10000; K=5; BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        -k) K="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
TMP="$(mktemp -d)"
RB_PID=""; RB_NODE=""; RB_WRAPPER=""; SB_PID=""
RABBITMQCTL=/usr/lib/rabbitmq/bin/rabbitmqctl
stop_rabbit() {
    [[ -n "$RB_NODE" ]] || return 0
    timeout 30 "$RABBITMQCTL" -n "$RB_NODE" -q shutdown >/dev/null 2>&1 || true
    stop_pid "$RB_PID" rabbitmq
    if [[ -n "$RB_WRAPPER" ]]; then kill -TERM "$RB_WRAPPER" 2>/dev/null || true; wait "$RB_WRAPPER" 2>/dev/null || true; fi
    RB_NODE=""
}
cleanup() { local rc=$?; trap - EXIT; stop_rabbit; stop_pid "$SB_PID" switchboard; rm -rf "$TMP"; exit "$rc"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ "$BUILD" == 1 ]] && cargo build --release -p switchboard >&2
SB_BIN="${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}"
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || apt_install rabbitmq-server
python3 -c 'import pika' 2>/dev/null || python3 -m pip install -q pika
warn_if_busy

# --- Switchboard
sb_start admin
AMQP="$(sed -n 's/.*amqp=\([^[:space:]]*\).*/\1/p' "$TMP/sb.out")"
python3 bench/admin_queues.py --name switchboard --amqp "amqp://guest:guest@$AMQP/%2F" \
    --admin "http://127.0.0.1:$SB_PORT" --pid "$SB_PID" -n "$N" -k "$K" | tee "$TMP/sb.json"
stop_pid "$SB_PID" switchboard; SB_PID=""

# --- RabbitMQ
p=$(( 20000 + RANDOM % 20000 ))
d="$TMP/rabbit"; mkdir -p "$d"
cat >"$d/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$p
management.tcp.ip = 127.0.0.1
management.tcp.port = $((p + 2))
loopback_users = none
CONF
echo '[rabbitmq_management].' >"$d/enabled_plugins"
RB_NODE="sb-admin-bench-$$@localhost"
env RABBITMQ_NODENAME="$RB_NODE" RABBITMQ_NODE_PORT="$p" RABBITMQ_DIST_PORT=$((p + 1)) \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins" RABBITMQ_PID_FILE="$d/pid" \
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1 &
RB_WRAPPER=$!
for _ in $(seq 90); do
    timeout 60 "$RABBITMQCTL" -n "$RB_NODE" -q await_startup >/dev/null 2>&1 && break
    sleep 1
done
RB_PID="$(tr -dc '0-9' <"$d/pid")"
for _ in $(seq 100); do port_open $((p + 2)) && break; sleep 0.2; done
RB_VERSION="$(dpkg-query -W -f '${Version}' rabbitmq-server | sed 's/-.*//')"
python3 bench/admin_queues.py --name "rabbitmq $RB_VERSION" --amqp "amqp://guest:guest@127.0.0.1:$p/%2F" \
    --admin "http://127.0.0.1:$((p + 2))" --pid "$RB_PID" -n "$N" -k "$K" | tee "$TMP/rb.json"

python3 - "$TMP/sb.json" "$TMP/rb.json" <<'PY'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
print(f"\n{'broker':<18} {'queues':>7} {'declare s':>10} {'RSS MiB':>8} {'all: wall s':>12} {'cpu s':>7} {'MiB':>6} {'page: wall ms':>14} {'cpu ms':>7}")
for r in rows:
    a, p = r["all"], r["page"]
    print(f"{r['broker']:<18} {r['queues']:>7} {r['declare_s']:>10.2f} {r['rss_bytes']/2**20:>8.0f} "
          f"{a['wall_median_s']:>12.3f} {a['cpu_median_s']:>7.2f} {a['bytes']/2**20:>6.1f} "
          f"{p['wall_median_s']*1000:>14.1f} {p['cpu_median_s']*1000:>7.0f}")
PY
