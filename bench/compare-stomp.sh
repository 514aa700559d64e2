#!/usr/bin/env bash
# Switchboard vs RabbitMQ (and ActiveMQ Classic) over STOMP 1.2, side by side in
# one run, on this machine (127.0.0.1 only).
#
#   bench/compare-stomp.sh [-d SECS] [-s BYTES] [-o FILE] [--no-build] [--no-activemq]
#                          [--no-warmup] [CASE...] [-- BENCH_ARGS...]
#
# A CASE is a scenario with its switchboard-bench flags, quoted as one word, e.g.
#   bench/compare-stomp.sh -d 5 'q1-1' 'shared-4 --prefetch 100' 'fanout-8'
# BENCH_ARGS after `--` go to every run (e.g. -- --confirm-window 1000).
# Default cases (5 s each; about 3 minutes with ActiveMQ, 1.5 without, plus the build):
#   q1-1                        1 producer -> /queue -> 1 consumer (client-individual)
#   shared-4                    4 producers -> one /queue -> 4 competing consumers
#   fanout-4                    1 producer -> /topic -> 4 subscribers (ack:auto)
#   q1-1 --confirm --persistent persistent:true, a RECEIPT for every SEND
#   q1-1 --rate 2000            latency at a fixed load
#
# What it does:
#  - builds `switchboard` and `switchboard-bench` (release) unless --no-build;
#  - RabbitMQ (Debian's rabbitmq-server, installed if missing): never touches a
#    node already running; starts its own node (name sb-stomp-bench-PID@localhost)
#    on free ports with a temporary data dir, config (AMQP and STOMP listeners on
#    127.0.0.1, loopback_users none) and enabled_plugins file ([rabbitmq_stomp]:
#    what `rabbitmq-plugins enable rabbitmq_stomp` writes), and stops it again.
#    RABBITMQ_STOMP_URL=stomp://... (and RABBITMQ_PID for its memory/CPU) uses an
#    existing broker instead, e.g. the system node on 61613;
#  - ActiveMQ Classic (Debian's activemq, installed if missing) unless --no-activemq:
#    its own instance from a temporary activemq.xml (only a stomp:// connector on
#    127.0.0.1, KahaDB in a temporary dir, JMX off), JVM options as in Debian's
#    /etc/default/activemq (-Xms512M -Xmx512M; ACTIVEMQ_JAVA_OPTS overrides). If it
#    does not come up within 90 s its column is n/a;
#  - Switchboard on ephemeral ports with a temporary data dir (STOMP address from
#    its `listening ... stomp=HOST:PORT` line);
#  - for every case and each system (RabbitMQ, ActiveMQ, Switchboard) starts that
#    broker afresh, runs a 2 s unrecorded warm-up (`q1-1`: the JVM needs it; all
#    get it alike; --no-warmup skips it), then the case with the broker's RSS and
#    CPU watched, and stops it;
#  - prints one table: each system's figures and the ratios switchboard/rabbitmq
#    and switchboard/activemq.
#
# Environment: CARGO_TARGET_DIR (where switchboard-bench and, unless SWITCHBOARD_BIN
# is set, switchboard are; falls back to target/release/switchboard), SWITCHBOARD_BIN,
# RABBITMQ_STOMP_URL / RABBITMQ_PID, ACTIVEMQ_JAVA_OPTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=5
SIZE=128
BUILD=1
ACTIVEMQ=1
WARMUP=1
OUT=""
CASES=()
EXTRA=()
DEFAULT_CASES=(
    "q1-1"
    "shared-4"
    "fanout-4"
    "q1-1 --confirm --persistent"
    "q1-1 --rate 2000"
)

usage() { sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -s|--size) SIZE="$2"; shift 2 ;;
        -o|--out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-activemq) ACTIVEMQ=0; shift ;;
        --no-warmup) WARMUP=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) CASES+=("$1"); shift ;;
    esac
done
[[ ${#CASES[@]} -gt 0 ]] || CASES=("${DEFAULT_CASES[@]}")

cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}/release"
TMP="$(mktemp -d -t sb-stomp-bench.XXXXXX)"
RESULTS=""
AMQ_PID=""; SB_PID=""

stop_rabbit() { rabbit_node_stop; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_rabbit
    stop_pid "$AMQ_PID" activemq
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
    SB_BIN=target/release/switchboard
fi
[[ -x "$BENCH" ]] || { echo "missing $BENCH (build it, or set CARGO_TARGET_DIR)" >&2; exit 1; }
[[ -x "$SB_BIN" ]] || echo "warning: no switchboard binary at $SB_BIN: its column will be n/a" >&2

free_port() { # a port p with p..p+2 free
    local p
    for _ in $(seq 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 25000 ))
        port_open "$p" || port_open $((p + 1)) || port_open $((p + 2)) || { echo "$p"; return 0; }
    done
    echo "no free port found" >&2; return 1
}

# --- RabbitMQ: our own node, unless RABBITMQ_STOMP_URL names one.
if [[ -z "${RABBITMQ_STOMP_URL:-}" && ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    apt_install rabbitmq-server
fi
RB_VERSION="$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null | sed 's/-.*//' || true)"
RB_URL=""
start_rabbit() {
    RB_URL=""
    if [[ -n "${RABBITMQ_STOMP_URL:-}" ]]; then
        RB_URL="$RABBITMQ_STOMP_URL"; RB_PID="${RABBITMQ_PID:-}"; return 0
    fi
    local p
    p="$(free_port)"
    if ! rabbit_node_start "$TMP/rabbit" "$p" sb-stomp-bench "[rabbitmq_stomp]" \
            "stomp.listeners.tcp.1 = 127.0.0.1:$((p + 2))"; then
        echo "(set RABBITMQ_STOMP_URL=stomp://127.0.0.1:61613 to use a running broker instead)" >&2
        exit 1
    fi
    for _ in $(seq 50); do port_open $((p + 2)) && break; sleep 0.1; done
    RB_URL="stomp://guest:guest@127.0.0.1:$((p + 2))"
}

# --- ActiveMQ Classic
AMQ_JAR=/usr/share/activemq/bin/activemq.jar
if [[ "$ACTIVEMQ" == 1 && ! -f "$AMQ_JAR" ]]; then
    apt_install activemq || true
fi
if [[ "$ACTIVEMQ" == 1 && ( ! -f "$AMQ_JAR" || -z "$(command -v java)" ) ]]; then
    echo "warning: no ActiveMQ ($AMQ_JAR) or no java: ActiveMQ skipped" >&2
    ACTIVEMQ=0
fi
AMQ_VERSION="$(dpkg-query -W -f '${Version}' activemq 2>/dev/null | sed 's/+.*//' || true)"
AMQ_URL=""
start_activemq() {
    AMQ_URL=""
    local p d="$TMP/activemq"
    p="$(free_port)"
    rm -rf "$d"; mkdir -p "$d/conf" "$d/data" "$d/tmp"
    cat >"$d/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="sb-stomp-bench"
          dataDirectory="$d/data">
    <persistenceAdapter><kahaDB directory="$d/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$p"/>
    </transportConnectors>
  </broker>
</beans>
EOF
    # shellcheck disable=SC2086
    (cd "$d" && exec java ${ACTIVEMQ_JAVA_OPTS:--Xms512M -Xmx512M -Dorg.apache.activemq.UseDedicatedTaskRunner=true} \
        -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$d" -Dactivemq.conf="$d/conf" \
        -Dactivemq.data="$d/data" -Djava.io.tmpdir="$d/tmp" \
        -jar "$AMQ_JAR" start "xbean:file:$d/conf/activemq.xml") >"$d/out.log" 2>&1 &
    AMQ_PID=$!
    for _ in $(seq 900); do
        port_open "$p" && { AMQ_URL="stomp://guest:guest@127.0.0.1:$p"; return 0; }
        kill -0 "$AMQ_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "ActiveMQ did not listen within 90 s; its output:" >&2
    tail -n 20 "$d/out.log" >&2 || true
    stop_pid "$AMQ_PID" activemq; AMQ_PID=""
}

# --- Switchboard
SB_URL=""
start_switchboard() {
    SB_URL=""
    sb_start stomp
    [[ -z "$SB_PORT" ]] || SB_URL="stomp://guest:guest@127.0.0.1:$SB_PORT"
}

warn_if_busy

# --- runs
SYSTEMS=(rabbitmq)
[[ "$ACTIVEMQ" == 1 ]] && SYSTEMS+=(activemq)
SYSTEMS+=(switchboard)
RESULTS="${OUT:-$(mktemp -t sb-stomp-results.XXXXXX)}"
: >"$RESULTS"
echo "RabbitMQ ${RB_VERSION:-?}${RABBITMQ_STOMP_URL:+ (at $RABBITMQ_STOMP_URL)}$([[ "$ACTIVEMQ" == 1 ]] && echo ", ActiveMQ ${AMQ_VERSION:-?}")" \
     "vs Switchboard ($SB_BIN); ${#CASES[@]} cases, ${DURATION} s each, ${SIZE} B bodies;" \
     "a fresh broker for every run" >&2
FAILED=0
for c in "${CASES[@]}"; do
    read -r -a words <<<"$c"
    for sys in "${SYSTEMS[@]}"; do
        case "$sys" in
            rabbitmq) start_rabbit; url="$RB_URL"; pid="$RB_PID" ;;
            activemq) start_activemq; url="$AMQ_URL"; pid="$AMQ_PID" ;;
            switchboard) start_switchboard; url="$SB_URL"; pid="$SB_PID" ;;
        esac
        if [[ -z "$url" ]]; then
            # No result line: the table shows n/a.
            echo "[$sys] $c: n/a (did not start, or no STOMP listener)" >&2
        else
            if [[ "$WARMUP" == 1 ]]; then
                "$BENCH" q1-1 --duration 2 --size "$SIZE" --url "$url" --json >/dev/null 2>&1 || true
            fi
            "$BENCH" "${words[@]}" --duration "$DURATION" --size "$SIZE" "${EXTRA[@]}" \
                --url "$url" --json --label "$sys" --case "$c" ${pid:+--watch-pid "$pid"} \
                >>"$RESULTS" || FAILED=1
            tail -n 1 "$RESULTS" | grep -q '"error"' && tail -n 1 "$RESULTS" >&2
        fi
        case "$sys" in
            rabbitmq) [[ -n "${RABBITMQ_STOMP_URL:-}" ]] || stop_rabbit ;;
            activemq) stop_pid "$AMQ_PID" activemq; AMQ_PID="" ;;
            switchboard)
                if [[ -n "$SB_PID" ]] && ! kill -0 "$SB_PID" 2>/dev/null; then
                    echo "switchboard exited during '$c'; its stderr:" >&2
                    tail -n 30 "$TMP/sb.err" >&2 || true
                    FAILED=1
                fi
                stop_pid "$SB_PID" switchboard; SB_PID="" ;;
        esac
    done
done

echo
"$BENCH" --report "$RESULTS" --baseline rabbitmq --subject switchboard
[[ -n "$OUT" ]] && echo "raw results (JSON lines): $OUT" >&2
[[ "$FAILED" == 0 ]] || echo "some runs failed or lost messages (see ERROR / lost above)" >&2
exit "$FAILED"
