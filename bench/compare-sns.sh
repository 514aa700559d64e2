#!/usr/bin/env bash
# Switchboard vs moto (moto_server, the Python AWS mock) over Amazon SNS (AWS Query,
# SigV4 scope sns) with SQS subscribers (AWS JSON 1.0), side by side in one run, on
# this machine (127.0.0.1 only).
#
#   bench/compare-sns.sh [-d SECS] [-s BYTES] [-o FILE] [--no-build] [--no-moto]
#                        [--no-warmup] [CASE...] [-- BENCH_ARGS...]
#
# A CASE is a scenario with its switchboard-bench flags, quoted as one word, e.g.
#   bench/compare-sns.sh -d 5 'sns-publish --workers 8' 'sns-latency --rate 500'
# BENCH_ARGS after `--` go to every run.
# Default cases (5 s each; about 5 minutes, most of it moto draining its queues):
#   sns-publish                       4 publishers, topic -> 2 SQS queues (`all`: signed
#                                     envelope; `match`: raw, FilterPolicy half match);
#                                     Publish rate, then both queues drained and checked
#   sns-latency                       Publish at 1,000 msg/s, 2 receivers per queue:
#                                     Publish -> ReceiveMessage latency
#   sns-latency --raw-delivery        the same with `all` raw too (no RSA signature per
#                                     message received)
#   sns-http                          an HTTP endpoint in the bench, subscribed and
#                                     confirmed via its SubscribeURL; 4 publishers:
#                                     deliveries/s of the signed Notification
#   sns-http --raw-delivery --workers 8   the same raw, 8 publishers
#
# What it does: as compare-sqs.sh (whose moto setup it shares: MOTO_SERVER, a
# moto_server on the PATH, or moto[server] pip-installed into MOTO_VENV): builds
# `switchboard` and `switchboard-bench` (release) unless --no-build; for every case
# and system (moto, then Switchboard) starts that server afresh (Switchboard on
# ephemeral ports, a temporary data dir, SigV4 against guest/guest), runs a 1 s
# unrecorded `sns-publish` warm-up (--no-warmup skips it), then the case with the
# server's RSS and CPU watched (--drain-timeout 300, so a slow drain is waited
# for), and prints one table with the ratio switchboard/moto and the issue's
# targets (Publish >= 50x moto's; Publish -> ReceiveMessage p99 < 10 ms at 1,000
# msg/s; >= 5,000 HTTP deliveries/s).
#
# moto confirms an http subscription at once (no SubscriptionConfirmation POST) and
# POSTs the Notification from inside Publish (python requests, a connection per
# POST), ignoring RawMessageDelivery for http; the table's notes say so.
#
# Environment: CARGO_TARGET_DIR, SWITCHBOARD_BIN, MOTO_SERVER, MOTO_VENV.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=5
SIZE=100
BUILD=1
MOTO=1
WARMUP=1
OUT=""
CASES=()
EXTRA=()
DEFAULT_CASES=(
    "sns-publish"
    "sns-latency"
    "sns-latency --raw-delivery"
    "sns-http"
    "sns-http --raw-delivery --workers 8"
)

usage() { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -d|--duration) DURATION="$2"; shift 2 ;;
        -s|--size) SIZE="$2"; shift 2 ;;
        -o|--out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-moto) MOTO=0; shift ;;
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
TMP="$(mktemp -d -t sb-sns-bench.XXXXXX)"
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
SB_URL=""
start_switchboard() {
    SB_URL=""
    sb_start http
    [[ -z "$SB_PORT" ]] || SB_URL="http://guest:guest@127.0.0.1:$SB_PORT"
}

warn_if_busy
echo "load before: $(uptime)" >&2

# --- runs
SYSTEMS=()
[[ "$MOTO" == 1 ]] && SYSTEMS+=(moto)
SYSTEMS+=(switchboard)
RESULTS="${OUT:-$(mktemp -t sb-sns-results.XXXXXX)}"
: >"$RESULTS"
echo "moto ${MOTO_VERSION:-?} ($MOTO_BIN) vs Switchboard ($SB_BIN, SigV4);" \
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
                "$BENCH" sns-publish --duration 1 --size "$SIZE" --url "$url" --json >/dev/null 2>&1 || true
            fi
            echo "[$sys] $c" >&2
            # A failed Switchboard run fails the script; moto's is reported only.
            "$BENCH" "${words[@]}" --duration "$DURATION" --size "$SIZE" --drain-timeout 300 "${EXTRA[@]}" \
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
