#!/usr/bin/env python3
"""Does the broker give memory back after load? Starts a broker binary on free
ports, measures its RSS idle, fills queues with a backlog over AMQP, drains it,
and samples RSS while it sits idle again (issue: memory and cost at scale).

    python3 bench/memory_return.py target/release/switchboard [--messages 300000]

Prints one table row per sample: seconds since the drain ended and RSS in MiB."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import pika


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--queues", type=int, default=4)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="memory-return-")
    p = subprocess.Popen([a.binary, "--data-dir", data, "--bind", "127.0.0.1",
                          "--amqp-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0",
                          "--stomp-port", "0", "--stomp-ws-port", "0", "--http-port", "0",
                          "--admin-port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline().split()
        ports = dict(w.split("=", 1) for w in line[1:])
        host, port = ports["amqp"].rsplit(":", 1)
        time.sleep(1)
        idle = rss_mib(p.pid)
        conn = pika.BlockingConnection(pika.ConnectionParameters(host, int(port)))
        ch = conn.channel()
        body = b"x" * a.size
        names = [f"mem-{i}" for i in range(a.queues)]
        for n in names:
            ch.queue_declare(n)
        for i in range(a.messages):
            ch.basic_publish("", names[i % a.queues], body)
        ch.queue_declare(names[-1], passive=True)
        peak = rss_mib(p.pid)
        for n in names:
            while True:
                m = ch.queue_purge(n)
                if m.method.message_count == 0:
                    break
        conn.close()
        drained = time.monotonic()
        print(f"binary {a.binary}: {a.messages} messages of {a.size} B in {a.queues} queues")
        print(f"idle at start   {idle:8.1f} MiB")
        print(f"backlog (peak)  {peak:8.1f} MiB")
        for t in (0, 1, 5, 10, 30):
            time.sleep(max(0.0, drained + t - time.monotonic()))
            print(f"idle +{t:>3} s     {rss_mib(p.pid):8.1f} MiB")
        return 0
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    sys.exit(main())
