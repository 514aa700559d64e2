#!/usr/bin/env python3
"""The admin API with many queues: declares N queues over AMQP (pika), then times
GET /api/queues (the whole list) and one page of it, K times each, and the broker's
CPU for those requests (from /proc/PID/stat). Prints one JSON line.

    python3 bench/admin_queues.py --amqp amqp://guest:guest@127.0.0.1:5672/%2F \
        --admin http://127.0.0.1:15672 --pid PID -n 10000 -k 5
"""

import argparse
import base64
import json
import os
import statistics
import time
import urllib.request

import pika

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def get(url: str, auth: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def timed(url: str, auth: str, pid: int, k: int):
    walls, cpus, size = [], [], 0
    for _ in range(k):
        c0, t0 = cpu_secs(pid), time.monotonic()
        body = get(url, auth)
        walls.append(time.monotonic() - t0)
        cpus.append(cpu_secs(pid) - c0)
        size = len(body)
    return {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
            "cpu_median_s": statistics.median(cpus), "bytes": size}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amqp", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--name", default="broker")
    a = ap.parse_args()
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    conn = pika.BlockingConnection(pika.URLParameters(a.amqp))
    ch = conn.channel()
    t0 = time.monotonic()
    for i in range(a.n):
        ch.queue_declare(f"bench.admin.{i:06d}", durable=True)
    declare = time.monotonic() - t0
    # RabbitMQ's management stats reach the API a few seconds after the declares.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page = json.loads(get(f"{a.admin}/api/queues?page=1&page_size=1", auth))
        if page.get("total_count", 0) >= a.n:
            break
        time.sleep(1)
    rss = 0
    with open(f"/proc/{a.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    out = {
        "broker": a.name, "queues": a.n, "declare_s": declare, "rss_bytes": rss,
        "all": timed(f"{a.admin}/api/queues", auth, a.pid, a.k),
        "page": timed(f"{a.admin}/api/queues?page=1&page_size=100", auth, a.pid, a.k),
    }
    print(json.dumps(out))
    conn.close()


if __name__ == "__main__":
    main()
