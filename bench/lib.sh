# Shared by the compare-*.sh scripts (sourced, not run): stopping processes,
# probing ports, Debian installs, starting Switchboard on ephemeral ports, and
# warning when the machine is already busy.

# stop_pid PID NAME: SIGTERM, up to 15 s, then SIGKILL.
stop_pid() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$2 did not stop on SIGTERM within 15 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
    echo "installing $* (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "$@" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "$@" >/dev/null; }
}

# sb_start LISTENER [ARGS...]: starts $SB_BIN (extra ARGS first) with every port
# ephemeral and a fresh data dir under $TMP; sets SB_PID, and SB_PORT to the port
# of LISTENER (a key of its `listening` line: mqtt, stomp, http, ...) once it
# accepts connections, else empty (also when $SB_BIN is missing). Exits if the
# broker prints no `listening` line.
sb_start() {
    local key="$1"; shift
    SB_PORT=""
    [[ -x "$SB_BIN" ]] || return 0
    rm -rf "$TMP/sb-data"; mkdir -p "$TMP/sb-data"
    "$SB_BIN" "$@" --data-dir "$TMP/sb-data" --bind 127.0.0.1 --amqp-port 0 \
        --mqtt-port 0 --mqtt-ws-port 0 --stomp-port 0 --stomp-ws-port 0 --http-port 0 \
        --admin-port 0 >"$TMP/sb.out" 2>"$TMP/sb.err" &
    SB_PID=$!
    local listen=""
    for _ in $(seq 300); do
        listen="$(grep -m1 '^listening ' "$TMP/sb.out" || true)"
        [[ -n "$listen" ]] && break
        kill -0 "$SB_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$listen" ]]; then
        echo "switchboard did not print its 'listening' line; its stderr:" >&2
        tail -n 30 "$TMP/sb.err" >&2 || true
        exit 1
    fi
    local addr
    addr="$(sed -n "s/.*[[:space:]]${key}=\([^[:space:]]*:[0-9][0-9]*\).*/\1/p" <<<"$listen")"
    if [[ -n "$addr" ]] && port_open "${addr##*:}"; then
        SB_PORT="${addr##*:}"
    fi
    return 0
}

# CPU used by other processes spoils the figures on a 2-core machine: say so.
busy_pct() {
    local a b c d e f g t1 i1 t2 i2
    read -r _ a b c d e f g _ </proc/stat; t1=$((a+b+c+d+e+f+g)); i1=$((d+e))
    sleep 1
    read -r _ a b c d e f g _ </proc/stat; t2=$((a+b+c+d+e+f+g)); i2=$((d+e))
    echo $(( 100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1 > 0 ? t2 - t1 : 1) ))
}
warn_if_busy() {
    [[ -r /proc/stat ]] || return 0
    local busy
    busy="$(busy_pct)"
    (( busy < 20 )) || echo "warning: the machine is ${busy}% busy before the runs: figures will be noisy" >&2
}

# --- A private RabbitMQ node (Debian's rabbitmq-server), never the system service.
RABBITMQCTL=/usr/lib/rabbitmq/bin/rabbitmqctl
RB_NODE="" RB_PID="" RB_WRAPPER=""

# rabbit_node_start DIR PORT NAME PLUGINS [EXTRA_CONF]: a node named NAME@localhost
# with its files in DIR, AMQP on 127.0.0.1:PORT (PORT+1: distribution), PLUGINS an
# Erlang list (`[rabbitmq_stomp]`), EXTRA_CONF more rabbitmq.conf lines. Sets
# RB_NODE, RB_PID, RB_WRAPPER; returns 1, after printing the node's output, when
# it does not start.
rabbit_node_start() {
    local d="$1" p="$2" name="$3" plugins="$4" extra="${5:-}"
    rm -rf "$d"; mkdir -p "$d"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n%s\n' "$p" "$extra" >"$d/rabbitmq.conf"
    echo "$plugins." >"$d/enabled_plugins"
    RB_NODE="$name-$$@localhost"
    env RABBITMQ_NODENAME="$RB_NODE" RABBITMQ_NODE_PORT="$p" RABBITMQ_DIST_PORT=$((p + 1)) \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins" \
        RABBITMQ_PID_FILE="$d/pid" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1 &
    RB_WRAPPER=$!
    # await_startup fails at once while the node is not yet registered: retry.
    local up=0
    for _ in $(seq 90); do
        kill -0 "$RB_WRAPPER" 2>/dev/null || break
        if timeout 60 "$RABBITMQCTL" -n "$RB_NODE" -q await_startup >/dev/null 2>&1; then
            up=1; break
        fi
        sleep 1
    done
    if [[ "$up" == 0 ]]; then
        echo "RabbitMQ node $RB_NODE did not start; its output:" >&2
        tail -n 20 "$d/out.log" >&2 || true
        rabbit_node_stop
        return 1
    fi
    RB_PID="$(tr -dc '0-9' <"$d/pid" 2>/dev/null || true)"
}

rabbit_node_stop() {
    [[ -n "$RB_NODE" ]] || return 0
    timeout 30 "$RABBITMQCTL" -n "$RB_NODE" -q shutdown >/dev/null 2>&1 || true
    stop_pid "$RB_PID" rabbitmq
    [[ -n "$RB_WRAPPER" ]] && { kill -0 "$RB_WRAPPER" 2>/dev/null && kill -TERM "$RB_WRAPPER" 2>/dev/null; wait "$RB_WRAPPER" 2>/dev/null || true; }
    RB_NODE="" RB_PID="" RB_WRAPPER=""
}
