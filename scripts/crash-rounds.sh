#!/usr/bin/env bash
# The reliability figure for the durability contract: many rounds of "publish with
# confirms, SIGKILL at a random moment, restart, consume everything", printing
#   rounds N, confirmed X, lost 0, duplicated D
# (duplicated = delivered before the crash and delivered again after, flagged
# redelivered; a lost confirmed message fails the run).
#
#   scripts/crash-rounds.sh [ROUNDS]      (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_ROUNDS="${1:-50}" cargo test --release --test durability confirmed_messages_survive_kill_9 -- --nocapture 2>&1 \
    | grep -E '^rounds |test result|panicked|lost'
