#!/usr/bin/env python3
"""What one in-memory message costs the broker beyond its body.

    python3 bench/permsg.py [--bin target/release/switchboard] [-n 200000] [-s 128]

Starts the broker on free ports with a data directory of its own, publishes N
transient messages of S bytes over AMQP (pika) to one queue nobody consumes (well
under the default 32 MiB queue budget, so nothing pages out), and reads the
broker's RSS from /proc before and after. A first round of 2,000 messages, purged,
warms the allocator's arenas so they are not counted. Prints the RSS per message
and its overhead over the body.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time

import pika

from procs import free_port




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/switchboard")
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("-s", type=int, default=128)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="sb-permsg-")
    port = free_port()
    cmd = [a.bin, "--data-dir", data, "--bind", "127.0.0.1", "--amqp-port", str(port)]
    for p in ("mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin"):
        cmd += [f"--{p}-port", "0"]
    broker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert broker.stdout is not None
        while not broker.stdout.readline().startswith(b"listening"):
            if broker.poll() is not None:
                raise SystemExit("the broker did not start")

        def rss_kib() -> int:
            status = open(f"/proc/{broker.pid}/status").read()
            return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.queue_declare("permsg")
        body = b"x" * a.s
        for _ in range(2000):
            ch.basic_publish("", "permsg", body)
        ch.queue_purge("permsg")
        time.sleep(0.5)
        before = rss_kib()
        for _ in range(a.n):
            ch.basic_publish("", "permsg", body)
        n = ch.queue_declare("permsg", passive=True).method.message_count
        time.sleep(1)
        after = rss_kib()
        per = (after - before) * 1024 / max(n, 1)
        print(f"{n} messages of {a.s} B in memory: RSS {before / 1024:.1f} -> "
              f"{after / 1024:.1f} MiB, {per:.0f} B per message, {per - a.s:.0f} B over the body")
        conn.close()
    finally:
        broker.kill()
        broker.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
