#!/usr/bin/env python3
"""Summarises compare-sqs.sh result files (-o FILE, JSON lines) of two builds run
alternately: per case and build, each run's messages/s, broker CPU per message and
SendMessage(Batch) latency, and the median of the runs.

    python3 bench/sqs_before_after.py before=run1.jsonl,run3.jsonl after=run2.jsonl,run4.jsonl
"""
import json
import statistics
import sys


def rows(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                yield json.loads(line)


def figures(r):
    sqs = r.get("sqs", {})
    msgs = r.get("consumed") or r.get("published") or 0
    rate = r.get("consume_rate") or r.get("publish_rate") or 0
    ops = sqs.get("ops", {})
    send = ops.get("SendMessageBatch") or ops.get("SendMessage") or {}
    return {
        "msgs/s": rate,
        "req/s": sqs.get("requests", 0) / max(sqs.get("wall_secs", 1), 1e-9),
        "broker us/msg": 1e6 * r.get("broker_cpu_secs", 0) / max(msgs, 1),
        "send p50 ms": send.get("p50_us", 0) / 1000,
        "send p99 ms": send.get("p99_us", 0) / 1000,
        "other cpu s": r.get("other_cpu_secs", 0),
    }


def main():
    builds = {}
    for arg in sys.argv[1:]:
        name, files = arg.split("=", 1)
        for path in files.split(","):
            for r in rows(path):
                if r.get("label") != "switchboard" or "error" in r:
                    continue
                builds.setdefault(r["case"], {}).setdefault(name, []).append(figures(r))
    keys = ["msgs/s", "req/s", "broker us/msg", "send p50 ms", "send p99 ms", "other cpu s"]
    print("| case | build | runs | " + " | ".join(f"{k} (median)" for k in keys) + " |")
    print("|---" * (3 + len(keys)) + "|")
    for case, by_build in builds.items():
        for name, runs in by_build.items():
            cells = []
            for k in keys:
                vals = [x[k] for x in runs]
                each = "/".join(f"{v:.0f}" if v >= 100 else f"{v:.2f}" for v in vals)
                med = statistics.median(vals)
                cells.append(f"{med:.0f} ({each})" if med >= 100 else f"{med:.2f} ({each})")
            print(f"| {case} | {name} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
