#!/usr/bin/env python3
"""What TLS costs: plain vs TLS through Switchboard, RabbitMQ and mosquitto, in one run.

    python3 bench/tls.py [-d SECS] [-s BYTES] [--bin PATH] [--brokers switchboard,rabbitmq,mosquitto]

One throw-away CA and server certificate (tests/python/tlsutil.py: ECDSA P-256,
for 127.0.0.1 and localhost) serve every broker's TLS listener. The brokers run
one after the other, each started privately on free ports in a temporary dir and
stopped before the next:

- Switchboard (target/release/switchboard if built, else target/debug; or --bin /
  SWITCHBOARD_BIN): AMQP, AMQPS, MQTT, MQTTS;
- RabbitMQ (Debian's rabbitmq-server): a node of its own (RABBITMQ_NODENAME
  sb-tls-bench-PID@localhost, own mnesia/log dirs, rabbitmq.conf with a TCP and an
  SSL listener, ssl_options with the same certificate, verify_none; enabled_plugins
  file `[rabbitmq_mqtt].`, what `rabbitmq-plugins enable` writes) for AMQP, AMQPS,
  MQTT and MQTTS; stopped with `rabbitmqctl -n NODE shutdown`;
- mosquitto (Debian's): a config file with a plain and a TLS listener: MQTT, MQTTS.

Per case one publisher and one consumer on one queue (AMQP: pika, prefetch 1000,
acks every 100; MQTT: paho, QoS 1 both ways, 1000 in flight), the same client
code and settings for every broker, publishing for SECS seconds, then draining
until everything published has arrived (or 3 s pass without a delivery).
The brokers get the same window towards the MQTT subscriber (128 unacked QoS 1
messages: Switchboard's default, mosquitto's max_inflight_messages, RabbitMQ's
mqtt.prefetch).

Printed per case: messages/s consumed (first publish to last delivery) and the
broker's CPU (user + system, /proc/PID/stat of the broker process: beam.smp for
RabbitMQ) per 10,000 messages; per broker the TLS/plain CPU ratio, which is the
figure to compare. The Python clients are the bottleneck of the rate, so the rate
ratio understates TLS's cost on the broker. The Rust bench tool (switchboard-bench)
has no TLS: lapin's and rumqttc's TLS features pull in aws-lc-rs or native-tls,
which this workspace keeps out.
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

import tlsutil  # noqa: E402
from procs import (RABBIT_BIN, cpu_seconds, free_port, port_open, start_rabbit_node,  # noqa: E402
                   stop_process)

# The subscriber's window of unacknowledged QoS 1 messages, the same for every
# broker (Switchboard's default; mosquitto's is 20, RabbitMQ's mqtt.prefetch 10).
MQTT_WINDOW = 128












def tls_probe(port: int, ca: Path) -> str:
    """The protocol and cipher a TLS listener negotiates with Python's client."""
    ctx = tlsutil.client_context(ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                return f"{s.version()} {s.cipher()[0]}"
    except OSError as e:
        return f"handshake failed: {e}"


class Broker:
    name = ""
    version = ""
    pid = 0
    # (label, protocol, port, tls)
    cases: list = []


class Switchboard(Broker):
    def __init__(self, binary: Path, pki, work: Path, stack: ExitStack):
        self.name = "switchboard"
        env = {**os.environ, **tlsutil.tls_env(pki.server_cert, pki.server_key),
               "SWITCHBOARD_FSYNC": "never"}
        cmd = [str(binary), "--data-dir", str(work / "sb-data"), "--bind", "127.0.0.1"]
        for p in ("amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin"):
            cmd += [f"--{p}-port", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        stack.callback(stop_process, proc, "switchboard")
        ports = {}
        for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith("listening"):
                for w in line.split()[1:]:
                    k, _, a = w.partition("=")
                    ports[k] = int(a.rpartition(":")[2])
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                break
        if not ports:
            raise SystemExit("switchboard did not start")
        self.pid = proc.pid
        try:
            self.version = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                          capture_output=True, text=True).stdout.strip()
        except OSError:
            self.version = "?"
        self.cases = [("AMQP", "amqp", ports["amqp"], False),
                      ("AMQPS", "amqp", ports["amqps"], True),
                      ("MQTT", "mqtt", ports["mqtt"], False),
                      ("MQTTS", "mqtt", ports["mqtts"], True)]


class RabbitMQ(Broker):
    def __init__(self, pki, work: Path, stack: ExitStack, mqtt: bool = True):
        self.name = "rabbitmq"
        self.version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
                                      capture_output=True, text=True).stdout.split("-")[0] or "?"
        erl = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "erlang-base"],
                             capture_output=True, text=True).stdout
        self.version += f" (Erlang {erl.split(':')[-1].split('+')[0] or '?'})"
        d = work / "rabbit"
        d.mkdir()
        amqp, amqps, dist, mq, mqs = (free_port() for _ in range(5))
        conf = [
            f"listeners.ssl.1 = 127.0.0.1:{amqps}",
            f"ssl_options.cacertfile = {pki.ca_file}",
            f"ssl_options.certfile = {pki.server_cert}",
            f"ssl_options.keyfile = {pki.server_key}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]
        if mqtt:
            conf += [f"mqtt.listeners.tcp.1 = 127.0.0.1:{mq}",
                     f"mqtt.listeners.ssl.1 = 127.0.0.1:{mqs}",
                     f"mqtt.prefetch = {MQTT_WINDOW}"]
        self.node = f"sb-tls-bench-{os.getpid()}@localhost"
        try:
            self.pid = start_rabbit_node(d, self.node, (amqp, dist), conf,
                                         "[rabbitmq_mqtt]" if mqtt else "[]", stack)
        except RuntimeError as e:
            raise SystemExit(str(e))
        for p in (amqp, amqps) + ((mq, mqs) if mqtt else ()):
            for _ in range(100):
                if port_open(p):
                    break
                time.sleep(0.2)
        self.cases = [("AMQP", "amqp", amqp, False), ("AMQPS", "amqp", amqps, True)]
        if mqtt:
            self.cases += [("MQTT", "mqtt", mq, False), ("MQTTS", "mqtt", mqs, True)]


class Mosquitto(Broker):
    def __init__(self, pki, work: Path, stack: ExitStack):
        self.name = "mosquitto"
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        out = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout
        m = re.search(r"mosquitto version (\S+)", out)
        self.version = m.group(1) if m else "?"
        ssl_ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libssl3"],
                                 capture_output=True, text=True).stdout.split("-")[0]
        if ssl_ver:
            self.version += f" (OpenSSL {ssl_ver})"
        plain, tls = free_port(), free_port()
        conf = work / "mosquitto.conf"
        # Run as root, mosquitto drops to user `mosquitto`, who cannot read the
        # certificate in our private temp dir: stay who we are.
        user = pwd.getpwuid(os.getuid()).pw_name
        conf.write_text(f"""\
user {user}
per_listener_settings false
allow_anonymous true
# The default (1000) drops messages queued for a subscriber that falls behind.
max_queued_messages 10000000
max_inflight_messages {MQTT_WINDOW}
persistence false
log_dest stderr
log_type error
log_type warning
listener {plain} 127.0.0.1
listener {tls} 127.0.0.1
cafile {pki.ca_file}
certfile {pki.server_cert}
keyfile {pki.server_key}
""")
        log = open(work / "mosquitto.log", "wb")
        stack.callback(log.close)
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        stack.callback(stop_process, proc, "mosquitto")
        for _ in range(50):
            if port_open(plain) and port_open(tls):
                # It opens its sockets before it loads the certificate.
                time.sleep(0.3)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is not None or not port_open(tls):
            print((work / "mosquitto.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            raise SystemExit("mosquitto did not start")
        self.pid = proc.pid
        self.cases = [("MQTT", "mqtt", plain, False), ("MQTTS", "mqtt", tls, True)]


class Counter:
    """Deliveries so far and when the last one came (for the drain and the rate)."""

    def __init__(self):
        self.n = 0
        self.last = time.monotonic()

    def hit(self):
        self.n += 1
        self.last = time.monotonic()

    def drain(self, published: int, quiet: float = 3.0):
        while self.n < published and time.monotonic() - self.last < quiet:
            time.sleep(0.05)


def amqp_run(port: int, ctx, secs: float, size: int):
    """(published, consumed, seconds from first publish to last delivery)."""
    import pika

    opts = pika.SSLOptions(ctx, "localhost") if ctx else None
    params = pika.ConnectionParameters(host="127.0.0.1", port=port, ssl_options=opts,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    q = f"bench-tls-{time.monotonic_ns()}"
    got = Counter()
    stop = threading.Event()
    ready = threading.Event()

    def consume():
        c = pika.BlockingConnection(params)
        ch = c.channel()
        ch.basic_qos(prefetch_count=1000)

        def on(ch_, method, _props, _body):
            got.hit()
            if got.n % 100 == 0:
                ch_.basic_ack(method.delivery_tag, multiple=True)

        ch.basic_consume(q, on)
        ready.set()
        while not stop.is_set():
            c.process_data_events(time_limit=0.1)
        c.close()

    pc = pika.BlockingConnection(params)
    pch = pc.channel()
    pch.queue_declare(q, auto_delete=True)
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    ready.wait(10)
    body = b"x" * size
    sent = 0
    t0 = time.monotonic()
    end = t0 + secs
    while time.monotonic() < end:
        for _ in range(100):
            pch.basic_publish("", q, body)
        sent += 100
        pc.process_data_events(0)
    got.drain(sent)
    stop.set()
    t.join(10)
    pc.close()
    return sent, got.n, got.last - t0


def mqtt_run(port: int, ca, secs: float, size: int):
    """(published, consumed, seconds from first publish to last delivery)."""
    import paho.mqtt.client as mqtt

    def client(name):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        c.username_pw_set("guest", "guest")
        if ca:
            c.tls_set(ca_certs=str(ca))
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port)
        return c

    topic = f"bench/tls/{time.monotonic_ns()}"
    got = Counter()
    subscribed = threading.Event()
    sub = client("bench-sub")
    sub.on_message = lambda *_: got.hit()
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.loop_start()
    sub.subscribe(topic, qos=1)
    pub = client("bench-pub")
    pub.loop_start()
    subscribed.wait(10)
    time.sleep(0.5)
    body = b"x" * size
    sent = 0
    t0 = time.monotonic()
    end = t0 + secs
    while time.monotonic() < end:
        # Waits for every 500th PUBACK: paho would otherwise queue without bound.
        for _ in range(499):
            pub.publish(topic, body, qos=1)
        pub.publish(topic, body, qos=1).wait_for_publish(10)
        sent += 500
    got.drain(sent)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return sent, got.n, got.last - t0


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-d", "--duration", type=float, default=10)
    ap.add_argument("-s", "--size", type=int, default=128)
    ap.add_argument("--bin", default=os.environ.get("SWITCHBOARD_BIN"))
    ap.add_argument("--brokers", default="switchboard,rabbitmq,mosquitto",
                    help="comma-separated subset, in this order")
    ap.add_argument("--no-rabbitmq-mqtt", action="store_true",
                    help="RabbitMQ over AMQP only (no rabbitmq_mqtt plugin)")
    a = ap.parse_args()
    wanted = [b.strip() for b in a.brokers.split(",") if b.strip()]
    for b in wanted:
        if b not in ("switchboard", "rabbitmq", "mosquitto"):
            raise SystemExit(f"unknown broker {b}")
    binary = Path(a.bin) if a.bin else next(
        (p for p in (ROOT / "target/release/switchboard", ROOT / "target/debug/switchboard")
         if p.exists()), None)
    if "switchboard" in wanted and binary is None:
        raise SystemExit("build switchboard first (cargo build --release)")
    if "rabbitmq" in wanted and not (RABBIT_BIN / "rabbitmq-server").exists():
        raise SystemExit("rabbitmq-server is not installed (apt-get install rabbitmq-server)"
                         " or leave it out with --brokers")
    if "mosquitto" in wanted and not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)"
                         " or leave it out with --brokers")
    # SIGTERM runs the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import paho.mqtt
    import pika

    print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"# clients: Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
          f"pika {pika.__version__}, paho-mqtt {paho.mqtt.__version__}")
    print(f"# {a.size} B messages, {a.duration:g} s of publishing per case")

    work = tlsutil.tmpdir("switchboard-bench-tls-")
    results = []  # (broker, label, published, consumed, secs, cpu)
    try:
        pki = tlsutil.Pki(work / "pki")
        pki.server_cert, pki.server_key, _ = pki.server()
        ctx = tlsutil.client_context(pki.ca_file)
        for name in wanted:
            with ExitStack() as stack:
                bwork = work / name
                bwork.mkdir()
                if name == "switchboard":
                    b = Switchboard(binary, pki, bwork, stack)
                elif name == "rabbitmq":
                    b = RabbitMQ(pki, bwork, stack, mqtt=not a.no_rabbitmq_mqtt)
                else:
                    b = Mosquitto(pki, bwork, stack)
                tls_ports = [c[2] for c in b.cases if c[3]]
                probe = tls_probe(tls_ports[0], pki.ca_file) if tls_ports else "-"
                print(f"# {b.name} {b.version}: pid {b.pid}, TLS {probe}", flush=True)
                for label, proto, port, tls in b.cases:
                    cpu0 = cpu_seconds(b.pid)
                    if proto == "amqp":
                        sent, n, secs = amqp_run(port, ctx if tls else None, a.duration, a.size)
                    else:
                        sent, n, secs = mqtt_run(port, pki.ca_file if tls else None,
                                                 a.duration, a.size)
                    cpu = cpu_seconds(b.pid) - cpu0
                    results.append((b.name, label, sent, n, secs, cpu))
                    per = cpu / n * 1e4 if n else float("nan")
                    print(f"{b.name:12} {label:6} {n / secs if secs > 0 else 0:8,.0f} msg/s consumed "
                          f"({n}/{sent})  broker CPU {cpu:6.2f} s = {per:5.2f} s per 10k", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")
    print("| broker | listener | consumed msg/s | broker CPU s per 10k msgs | TLS / plain CPU |")
    print("|---|---|---|---|---|")
    plain = {}
    for broker, label, sent, n, secs, cpu in results:
        per = cpu / n * 1e4 if n else float("nan")
        ratio = ""
        if label.endswith("S") and (broker, label[:-1]) in plain:
            base = plain[(broker, label[:-1])]
            ratio = f"{per / base:.2f}×" if base > 0 else "-"
        else:
            plain[(broker, label)] = per
        lost = "" if n >= sent else f" ({sent - n} not delivered)"
        rate = n / secs if secs > 0 else 0
        print(f"| {broker} | {label} | {rate:,.0f}{lost} | {per:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
