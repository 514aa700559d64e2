#!/usr/bin/env python3
"""What TLS costs: AMQP vs AMQPS and MQTT vs MQTTS through one Switchboard, in one run.

    python3 bench/tls.py [-d SECS] [-s BYTES] [--bin PATH]

Starts a Switchboard (target/release/switchboard if built, else target/debug; or
--bin / SWITCHBOARD_BIN) with a throw-away certificate (tests/python/tlsutil.py),
then per listener: one publisher and one consumer on one queue (AMQP: pika,
prefetch 1000, acks every 100; MQTT: paho, QoS 1 both ways) for SECS seconds.
It prints messages/s consumed and the broker's CPU per message (from
/proc/PID/stat), which is the figure to compare: the Python clients are the
bottleneck of the rate, so the rate ratio understates TLS's cost on the broker
and the CPU per message shows it. The Rust bench tool (switchboard-bench) has no
TLS: lapin's and rumqttc's TLS features pull in aws-lc-rs or native-tls, which
this workspace keeps out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

import tlsutil  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(binary: Path, pki, data: Path):
    env = {**os.environ, **tlsutil.tls_env(pki.server_cert, pki.server_key),
           "SWITCHBOARD_FSYNC": "never"}
    cmd = [str(binary), "--data-dir", str(data), "--bind", "127.0.0.1"]
    for p in ("amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin"):
        cmd += [f"--{p}-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    for raw in proc.stdout:
        line = raw.decode().strip()
        if line.startswith("listening"):
            ports = {}
            for w in line.split()[1:]:
                k, _, a = w.partition("=")
                h, _, port = a.rpartition(":")
                ports[k] = (h, int(port))
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, ports
    raise SystemExit("switchboard did not start")


def amqp_run(addr, ctx, secs: float, size: int) -> int:
    import pika

    ssl = pika.SSLOptions(ctx, "localhost") if ctx else None
    params = pika.ConnectionParameters(host=addr[0], port=addr[1], ssl_options=ssl,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    q = f"bench-tls-{time.monotonic_ns()}"
    consumed = [0]
    stop = threading.Event()

    def consume():
        c = pika.BlockingConnection(params)
        ch = c.channel()
        ch.basic_qos(prefetch_count=1000)

        def on(ch_, method, _props, _body):
            consumed[0] += 1
            if consumed[0] % 100 == 0:
                ch_.basic_ack(method.delivery_tag, multiple=True)

        ch.basic_consume(q, on)
        while not stop.is_set():
            c.process_data_events(time_limit=0.1)
        c.close()

    pc = pika.BlockingConnection(params)
    pch = pc.channel()
    pch.queue_declare(q, auto_delete=True)
    t = threading.Thread(target=consume)
    t.start()
    body = b"x" * size
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for _ in range(100):
            pch.basic_publish("", q, body)
        pc.process_data_events(0)
    stop.set()
    t.join()
    pc.close()
    return consumed[0]


def mqtt_run(addr, ca, secs: float, size: int) -> int:
    import paho.mqtt.client as mqtt

    def client(name):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        c.username_pw_set("guest", "guest")
        if ca:
            c.tls_set(ca_certs=str(ca))
        c.max_inflight_messages_set(1000)
        c.connect(addr[0], addr[1])
        return c

    topic = f"bench/tls/{time.monotonic_ns()}"
    got = [0]
    sub = client("bench-sub")
    sub.on_message = lambda *_: got.__setitem__(0, got[0] + 1)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    pub = client("bench-pub")
    pub.loop_start()
    time.sleep(0.5)
    body = b"x" * size
    end = time.monotonic() + secs
    while time.monotonic() < end:
        # Waits for every 500th PUBACK: paho would otherwise queue without bound.
        for _ in range(499):
            pub.publish(topic, body, qos=1)
        pub.publish(topic, body, qos=1).wait_for_publish(10)
    time.sleep(1)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return got[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-d", "--duration", type=float, default=10)
    ap.add_argument("-s", "--size", type=int, default=128)
    ap.add_argument("--bin", default=os.environ.get("SWITCHBOARD_BIN"))
    a = ap.parse_args()
    binary = Path(a.bin) if a.bin else next(
        (p for p in (ROOT / "target/release/switchboard", ROOT / "target/debug/switchboard")
         if p.exists()), None)
    if binary is None:
        raise SystemExit("build switchboard first (cargo build --release)")
    work = tlsutil.tmpdir("switchboard-bench-tls-")
    pki = tlsutil.Pki(work / "pki")
    pki.server_cert, pki.server_key, _ = pki.server()
    proc, ports = start(binary, pki, work / "data")
    ctx = tlsutil.client_context(pki.ca_file)
    cases = [("amqp", lambda: amqp_run(ports["amqp"], None, a.duration, a.size)),
             ("amqps", lambda: amqp_run(ports["amqps"], ctx, a.duration, a.size)),
             ("mqtt", lambda: mqtt_run(ports["mqtt"], None, a.duration, a.size)),
             ("mqtts", lambda: mqtt_run(ports["mqtts"], pki.ca_file, a.duration, a.size))]
    print(f"# {binary}  {a.size} B  {a.duration:g} s per case")
    try:
        for name, run in cases:
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            n = run()
            cpu, wall = cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
            per = cpu / n * 1e6 if n else float("nan")
            print(f"{name:6} {n / wall:10,.0f} msg/s consumed   broker CPU {per:6.1f} µs/msg "
                  f"({n} messages, {cpu:.2f} s CPU)", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
