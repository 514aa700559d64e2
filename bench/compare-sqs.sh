#!/usr/bin/env bash
# Switchboard vs moto (moto_server, the Python AWS mock) over Amazon SQS's AWS JSON
# 1.0 protocol, side by side in one run, on this machine (127.0.0.1 only).
#
#   bench/compare-sqs.sh [-d SECS] [-s BYTES] [-o FILE] [--no-build] [--no-moto]
#                        [--unsigned] [--no-warmup] [CASE...] [-- BENCH_ARGS...]
#
# A CASE is a scenario with its switchboard-bench flags, quoted as one word, e.g.
#   bench/compare-sqs.sh -d 5 'sqs-batch --workers 8' 'sqs-fifo --groups 10'
# BENCH_ARGS after `--` go to every run (e.g. -- --wait-secs 0).
# Default cases (5 s each; about 2 minutes plus the build and, the first time, moto):
#   sqs-batch --workers 4              4 senders SendMessageBatch (10 x 100 B), 4 receivers
#                                      ReceiveMessage (10) + DeleteMessageBatch
#   sqs-single --workers 4             the same one message at a time (SendMessage,
#                                      ReceiveMessage, DeleteMessage)
#   sqs-fifo --workers 4 --groups 100  sqs-batch on a FIFO queue, 100 MessageGroupIds
#   sqs-send-latency                   1 sender, SendMessage closed loop: request latency
#   sqs-send-latency --rate 100        the same at a fixed 100 SendMessage/s (moto cannot
#                                      keep that rate: for it this is the closed loop again)
#   sqs-single --workers 1 --rate 100  SendMessage at 100/s with a receiver deleting
#                                      what arrives: latency with the queue kept empty
#
# What it does:
#  - builds `switchboard` and `switchboard-bench` (release) unless --no-build;
#  - moto: uses `moto_server` from PATH, or MOTO_SERVER=/path/to/moto_server; if there
#    is none, installs moto[server] with pip into a venv (MOTO_VENV, default
#    ~/.cache/switchboard-bench/moto-venv; Debian's python3-venv is installed first if
#    missing). --no-moto runs Switchboard alone (its ratio rows are then empty);
#  - Switchboard on ephemeral ports with a temporary data dir (its HTTP address from
#    the `listening ... http=HOST:PORT` line). SQS requests are SigV4-verified
#    against the broker user guest/guest (the default); --unsigned gives it a config
#    file with `[sqs] auth = "none"` instead. The bench signs every request either
#    way, for moto too (which does not check), so the client's work is the same;
#  - for every case and each system (moto, then Switchboard) starts that server
#    afresh, runs a 1 s unrecorded `sqs-send-latency` warm-up (--no-warmup skips it),
#    then the case with the server's RSS and CPU watched, and stops it;
#  - prints one table: each system's figures, the ratio switchboard/moto, and the
#    issue's targets (>= 50x moto's messages/s; SendMessage p99 < 5 ms) met or not.
#
# moto's development server (werkzeug) answers every request with `Connection: close`,
# so against moto the bench opens a connection per request (the `connections` figure
# in the JSON lines); Switchboard keeps one per worker.
#
# Environment: CARGO_TARGET_DIR (where switchboard-bench and, unless SWITCHBOARD_BIN
# is set, switchboard are; falls back to target/release/switchboard), SWITCHBOARD_BIN,
# MOTO_SERVER, MOTO_VENV.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=5
SIZE=100
BUILD=1
MOTO=1
WARMUP=1
UNSIGNED=0
OUT=""
CASES=()
EXTRA=()
DEFAULT_CASES=(
    "sqs-batch --workers 4"
    "sqs-single --workers 4"
    "sqs-fifo --workers 4 --groups 100"
    "sqs-send-latency"
    "sqs-send-latency --rate 100"
    "sqs-single --workers 1 --rate 100"
)

usage() { sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -s|--size) SIZE="$2"; shift 2 ;;
        -o|--out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-moto) MOTO=0; shift ;;
        --no-warmup) WARMUP=0; shift ;;
        --unsigned) UNSIGNED=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) CASES+=("$1"); shift ;;
    esac
done
[[ ${#CASES[@]} -gt 0 ]] || CASES=("${DEFAULT_CASES[@]}")

cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}/release"
TMP="$(mktemp -d -t sb-sqs-bench.XXXXXX)"
RESULTS=""
MOTO_PID=""; SB_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$MOTO_PID" moto
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
[[ -x "$SB_BIN" ]] || echo "warning: no switchboard binary at $SB_BIN: its rows will be n/a" >&2

free_port() {
    local p
    for _ in $(seq 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 25000 ))
        port_open "$p" || { echo "$p"; return 0; }
    done
    echo "no free port found" >&2; return 1
}

# --- moto: moto_server from PATH or MOTO_SERVER, else our own venv.
MOTO_BIN=""
if [[ "$MOTO" == 1 ]]; then
    MOTO_VENV="${MOTO_VENV:-$HOME/.cache/switchboard-bench/moto-venv}"
    if [[ -n "${MOTO_SERVER:-}" ]]; then
        MOTO_BIN="$MOTO_SERVER"
    elif command -v moto_server >/dev/null 2>&1 && moto_server --help >/dev/null 2>&1; then
        MOTO_BIN="$(command -v moto_server)"
    elif [[ -x "$MOTO_VENV/bin/moto_server" ]]; then
        MOTO_BIN="$MOTO_VENV/bin/moto_server"
    else
        command -v python3 >/dev/null 2>&1 || apt_install python3
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
            apt_install python3-venv python3-pip
        fi
        echo "installing moto[server] into $MOTO_VENV" >&2
        python3 -m venv "$MOTO_VENV"
        "$MOTO_VENV/bin/pip" install --quiet 'moto[server]' >&2
        MOTO_BIN="$MOTO_VENV/bin/moto_server"
    fi
    [[ -x "$MOTO_BIN" ]] || { echo "no moto_server at $MOTO_BIN" >&2; exit 1; }
fi
MOTO_VERSION=""
if [[ -n "$MOTO_BIN" ]]; then
    # The python moto_server runs with (its shebang; else, e.g. behind a pyenv shim,
    # python3) knows moto's version.
    py="$(head -n1 "$MOTO_BIN" | sed -n 's/^#! *//p' | awk '{print $1}')"
    [[ "$py" == *python* && -x "$py" ]] || py=python3
    MOTO_VERSION="$("$py" -c 'import moto; print(moto.__version__)' 2>/dev/null || true)"
fi
MOTO_URL=""
start_moto() {
    MOTO_URL=""
    local p
    p="$(free_port)"
    "$MOTO_BIN" -H 127.0.0.1 -p "$p" >"$TMP/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 300); do
        port_open "$p" && { MOTO_URL="http://guest:guest@127.0.0.1:$p"; break; }
        kill -0 "$MOTO_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$MOTO_URL" ]]; then
        echo "moto_server did not listen within 30 s; its output:" >&2
        tail -n 20 "$TMP/moto.log" >&2 || true
        stop_pid "$MOTO_PID" moto; MOTO_PID=""
        return 0
    fi
    # A wrapper (e.g. a pyenv shim) may have started python as a child: watch that.
    local child
    child="$(pgrep -P "$MOTO_PID" 2>/dev/null | head -n1 || true)"
    [[ -n "$child" ]] && MOTO_WATCH="$child" || MOTO_WATCH="$MOTO_PID"
}

# --- Switchboard
SB_CONFIG=()
if [[ "$UNSIGNED" == 1 ]]; then
    printf '[sqs]\nauth = "none"\n' >"$TMP/switchboard.toml"
    SB_CONFIG=(--config "$TMP/switchboard.toml")
fi
SB_URL=""
start_switchboard() {
    SB_URL=""
    sb_start http "${SB_CONFIG[@]}"
    [[ -z "$SB_PORT" ]] || SB_URL="http://guest:guest@127.0.0.1:$SB_PORT"
}

warn_if_busy
echo "load before: $(uptime)" >&2

# --- runs
SYSTEMS=()
[[ "$MOTO" == 1 ]] && SYSTEMS+=(moto)
SYSTEMS+=(switchboard)
RESULTS="${OUT:-$(mktemp -t sb-sqs-results.XXXXXX)}"
: >"$RESULTS"
echo "moto ${MOTO_VERSION:-?} ($MOTO_BIN) vs Switchboard ($SB_BIN$([[ "$UNSIGNED" == 1 ]] && echo ', auth none' || echo ', SigV4'));" \
     "${#CASES[@]} cases, ${DURATION} s each, ${SIZE} B bodies; a fresh server for every run" >&2
FAILED=0
MOTO_WATCH=""
for c in "${CASES[@]}"; do
    read -r -a words <<<"$c"
    for sys in "${SYSTEMS[@]}"; do
        case "$sys" in
            moto) start_moto; url="$MOTO_URL"; pid="$MOTO_WATCH" ;;
            switchboard) start_switchboard; url="$SB_URL"; pid="$SB_PID" ;;
        esac
        if [[ -z "$url" ]]; then
            echo "[$sys] $c: n/a (did not start)" >&2
        else
            if [[ "$WARMUP" == 1 ]]; then
                "$BENCH" sqs-send-latency --duration 1 --size "$SIZE" --url "$url" --json >/dev/null 2>&1 || true
            fi
            echo "[$sys] $c" >&2
            # A failed Switchboard run fails the script; moto's (its server is not
            # thread-safe: concurrent receivers now and then get the same message) is
            # reported only.
            "$BENCH" "${words[@]}" --duration "$DURATION" --size "$SIZE" "${EXTRA[@]}" \
                --url "$url" --json --label "$sys" --case "$c" ${pid:+--watch-pid "$pid"} \
                >>"$RESULTS" \
                || if [[ "$sys" == switchboard ]]; then FAILED=1; else
                    echo "warning: the $sys run of '$c' failed or lost/duplicated messages (see the table)" >&2; fi
            tail -n 1 "$RESULTS" | grep -q '"error"' && tail -n 1 "$RESULTS" >&2
        fi
        case "$sys" in
            moto) stop_pid "$MOTO_PID" moto; MOTO_PID="" ;;
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
echo "load after: $(uptime)" >&2

echo
"$BENCH" --report "$RESULTS" --baseline moto --subject switchboard
[[ -n "$OUT" ]] && echo "raw results (JSON lines): $OUT" >&2
[[ "$FAILED" == 0 ]] || echo "some Switchboard runs failed or lost messages (see ERROR / lost above)" >&2
exit "$FAILED"
