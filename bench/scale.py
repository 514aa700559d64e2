#!/usr/bin/env python3
"""How cost grows as work grows: Switchboard beside RabbitMQ and mosquitto, in one run.

    python3 bench/scale.py [--cases idle-rss,connections,queues,sizes] [--quick]
                           [-o FILE.md] [--no-build] [--note TEXT]

Writes a markdown report (default bench/results/scale-<UTC date>.md) with one table
per case, the machine (cores, CPU model, RAM and kernel from /proc) and the versions
(Switchboard's git revision, the Debian packages' versions of RabbitMQ, Erlang and
mosquitto, the Python clients), and one SVG chart per case next to it
(<report>-<case>.svg, drawn by this script: no plotting library needed).

Every broker is a private instance started by this script on free ports on
127.0.0.1 with its own temporary data dir, never a system service, and stopped
at the end of its point (also on an error, Ctrl-C or SIGTERM):
- Switchboard: target/release/switchboard (or --bin / SWITCHBOARD_BIN), every
  listener on an ephemeral port, the ports read from its `listening` line, default
  settings otherwise;
- RabbitMQ (Debian's rabbitmq-server): a node of its own (RABBITMQ_NODENAME
  sb-scale-PID-N@localhost, own RABBITMQ_MNESIA_BASE / log dir / config, no
  plugins), stopped with `rabbitmqctl -n NODE shutdown`; its RSS is beam.smp's;
- mosquitto (Debian's): a config with one listener, persistence off, anonymous.

Cases (--cases, comma-separated; the default is all four):
  idle-rss     RSS of each broker 3 s (quick: 2 s) after it accepts connections, idle.
  connections  N idle MQTT connections, each subscribed to a topic of its own
               (`switchboard-bench idle-N`: raw sockets, CONNECT + SUBSCRIBE, held
               3 s), broker RSS before and while held; N = 1k, 2k, 5k, 10k (quick:
               1k, 5k); Switchboard and mosquitto, a fresh broker per point. 10k is
               the top because the hard open-file limit here is 20,000 (ulimit -Hn)
               and the client and the broker each need one descriptor per connection.
  queues       N durable queues, each declared and bound to amq.topic (routing key
               = its name) over AMQP with pika, one connection, one channel, one
               declare + one bind per queue, synchronously; time to declare all,
               broker CPU and RSS after; N = 1k, 10k, 30k (quick: 1k, 5k);
               Switchboard and RabbitMQ, a fresh broker per point. The Python client
               waits for every reply, so the rate is bounded by round trips and
               pika's CPU as much as by the broker: compare the broker CPU column.
  sizes        Throughput vs message size (16 B, 1 KiB, 64 KiB, 1 MiB), scenario
               q1-1 (1 publisher -> 1 queue -> 1 consumer) of switchboard-bench,
               3 s (quick: 2 s) per point: AMQP (Switchboard, RabbitMQ) and MQTT
               QoS 0 (Switchboard, mosquitto). One instance of each broker for the
               whole case, the brokers interleaved per size.

The machine has to be quiet for figures worth comparing across runs; the load
average at the start and end is in the report (and --note adds a sentence about
the conditions). Figures from one run compare the brokers under the same conditions.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import html
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (RABBIT_BIN, cpu_seconds, free_port, port_open, rss_kib, start_rabbit_node,  # noqa: E402
                   stop_process)

ROOT = Path(__file__).resolve().parent.parent
ALL_CASES = ["idle-rss", "connections", "queues", "sizes"]
COLORS = {"switchboard": "#1f77b4", "rabbitmq": "#ff7f0e", "mosquitto": "#2ca02c"}
DASH = {"AMQP": "", "MQTT": "6,4"}


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes













def dpkg_version(pkg: str) -> str:
    try:
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                           capture_output=True, text=True).stdout.strip()
    except OSError:
        v = ""
    return v or "?"


# ---------------------------------------------------------------- brokers

class Broker:
    name = ""
    pid = 0
    amqp = 0
    mqtt = 0


class Switchboard(Broker):
    def __init__(self, binary: Path, work: Path, stack: ExitStack):
        self.name = "switchboard"
        work.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary), "--data-dir", str(work / "sb-data"), "--bind", "127.0.0.1"]
        for p in ("amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin"):
            cmd += [f"--{p}-port", "0"]
        err = open(work / "sb.err", "wb")
        stack.callback(err.close)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        stack.callback(stop_process, proc, "switchboard")
        ports = {}
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("listening"):
                for w in line.split()[1:]:
                    k, _, a = w.partition("=")
                    if a.rpartition(":")[2].isdigit():
                        ports[k] = int(a.rpartition(":")[2])
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                break
        if not ports:
            print((work / "sb.err").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise RuntimeError("switchboard did not print its 'listening' line")
        self.pid = proc.pid
        self.amqp = ports.get("amqp", 0)
        self.mqtt = ports.get("mqtt", 0)
        for p in (self.amqp, self.mqtt):
            for _ in range(100):
                if not p or port_open(p):
                    break
                time.sleep(0.1)


class RabbitMQ(Broker):
    seq = 0

    def __init__(self, work: Path, stack: ExitStack):
        self.name = "rabbitmq"
        RabbitMQ.seq += 1
        d = work / "rabbit"
        d.mkdir(parents=True)
        amqp, dist = free_port(), free_port()
        self.node = f"sb-scale-{os.getpid()}-{RabbitMQ.seq}@localhost"
        self.pid = 0
        self.pid = start_rabbit_node(d, self.node, (amqp, dist), [], "[]", stack,
                                     timeout=180)
        for _ in range(100):
            if port_open(amqp):
                break
            time.sleep(0.2)
        self.amqp = amqp


class Mosquitto(Broker):
    def __init__(self, work: Path, stack: ExitStack):
        self.name = "mosquitto"
        work.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        port = free_port()
        conf = work / "mosquitto.conf"
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
        conf.write_text(f"""\
user {user}
listener {port} 127.0.0.1
allow_anonymous true
# The default (1000) drops messages queued for a subscriber that falls behind.
max_queued_messages 10000000
persistence false
log_dest stderr
log_type error
log_type warning
""")
        out = open(work / "mosquitto.log", "wb")
        stack.callback(out.close)
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        stack.callback(stop_process, proc, "mosquitto")
        for _ in range(100):
            if port_open(port) or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is not None or not port_open(port):
            print((work / "mosquitto.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            raise RuntimeError("mosquitto did not start")
        self.pid = proc.pid
        self.mqtt = port


class Env:
    """What every case needs: binaries, a work dir, a counter for fresh dirs."""

    def __init__(self, sb_bin: Path, bench: Path, work: Path):
        self.sb_bin, self.bench, self.work = sb_bin, bench, work
        self.n = 0
        self.queue_counts: list[int] = []

    def dir(self, tag: str) -> Path:
        self.n += 1
        return self.work / f"{self.n:03d}-{tag}"

    def start(self, name: str, stack: ExitStack) -> Broker:
        t0 = time.monotonic()
        if name == "switchboard":
            b = Switchboard(self.sb_bin, self.dir(name), stack)
        elif name == "rabbitmq":
            b = RabbitMQ(self.dir(name), stack)
        else:
            b = Mosquitto(self.dir(name), stack)
        log(f"{name} up (pid {b.pid}) in {time.monotonic() - t0:.1f} s")
        return b

    def run_bench(self, args: list[str], timeout: float = 300) -> dict:
        cmd = [str(self.bench)] + args + ["--json"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:g} s"}
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]}
        return json.loads(lines[-1])


# ---------------------------------------------------------------- cases

def mib(kib) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f}"


def case_idle_rss(env: Env, quick: bool) -> dict:
    settle = 2 if quick else 3
    rows, series = [], {}
    for name in ("switchboard", "mosquitto", "rabbitmq"):
        with ExitStack() as stack:
            b = env.start(name, stack)
            time.sleep(settle)
            kib = rss_kib(b.pid)
        rows.append([name, f"{kib / 1024:,.1f}"])
        series[name] = kib / 1024
        log(f"idle-rss {name}: {kib / 1024:.1f} MiB")
    table = md_table(["broker", "RSS idle (MiB)"], rows)
    note = (f"RSS (VmRSS of the broker process; beam.smp for RabbitMQ) {settle} s after "
            "the broker accepts connections, nothing connected.")
    svg = bar_chart("Idle RSS after start", "RSS (MiB)", series)
    return {"title": "Idle RSS", "note": note, "table": table, "svg": svg}


def case_connections(env: Env, quick: bool) -> dict:
    ns = [1000, 5000] if quick else [1000, 2000, 5000, 10000]
    hold = 3
    rows, pts = [], {"switchboard": [], "mosquitto": []}
    per = {"switchboard": [], "mosquitto": []}
    for n in ns:
        for name in ("mosquitto", "switchboard"):
            with ExitStack() as stack:
                b = env.start(name, stack)
                r = env.run_bench([f"idle-{n}", "--url", f"mqtt://127.0.0.1:{b.mqtt}",
                                   "--watch-pid", str(b.pid), "-d", str(hold)], timeout=600)
            if r.get("error"):
                log(f"connections {name} {n}: ERROR {r['error']}")
                rows.append([f"{n:,}", name, "ERROR", "", "", "", r["error"][:80]])
                continue
            before, held = r.get("broker_rss_before_kb"), r.get("broker_rss_held_kb")
            alive = r.get("connections_alive") or 0
            k = (held - before) / n if before is not None and held is not None else None
            rows.append([f"{n:,}", name, f"{alive:,}", mib(before), mib(held),
                         "-" if k is None else f"{k:.1f}",
                         f"{r['connect_secs']:.2f}" if r.get("connect_secs") else "-"])
            if held is not None:
                pts[name].append((n, held / 1024))
            if k is not None:
                per[name].append((n, k))
            log(f"connections {name} {n}: alive {alive}, rss {mib(before)} -> {mib(held)} MiB, "
                f"{k if k is not None else float('nan'):.1f} KiB/conn")
    table = md_table(["connections", "broker", "alive at end", "RSS before (MiB)",
                      "RSS held (MiB)", "KiB per connection", "connect s"], rows)
    note = ("`switchboard-bench idle-N`: N raw-socket MQTT 3.1.1 clients (clean session, "
            f"keepalive 60 s), each SUBSCRIBEd at QoS 0 to a topic of its own, held {hold} s, "
            "then a PINGREQ to each counts those alive. A fresh broker per point. "
            f"N stops at 10k: the hard open-file limit here is {resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,} "
            "(`ulimit -Hn`) and both the client and the broker hold one descriptor per "
            "connection. Kernel socket buffers are not in RSS.")
    svg = line_chart("Idle MQTT connections vs broker RSS", [
        {"title": "broker RSS while held", "xlabel": "idle subscribed connections",
         "ylabel": "RSS (MiB)", "logx": True, "logy": False,
         "series": {(k, "MQTT"): v for k, v in pts.items()}, "xfmt": fmt_count},
        {"title": "RSS added per connection", "xlabel": "idle subscribed connections",
         "ylabel": "KiB per connection", "logx": True, "logy": False,
         "series": {(k, "MQTT"): v for k, v in per.items()}, "xfmt": fmt_count},
    ])
    return {"title": "Idle MQTT connections", "note": note, "table": table, "svg": svg}


def declare_queues(port: int, n: int, tag: str) -> float:
    import pika
    params = pika.ConnectionParameters("127.0.0.1", port, "/",
                                       pika.PlainCredentials("guest", "guest"),
                                       heartbeat=0, blocked_connection_timeout=600)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        t0 = time.monotonic()
        for i in range(n):
            q = f"scale-{tag}-{i:06d}"
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, "amq.topic", routing_key=q)
        secs = time.monotonic() - t0
        conn.close()
        return secs
    finally:
        if conn.is_open:
            conn.close()


def case_queues(env: Env, quick: bool) -> dict:
    ns = env.queue_counts or ([1000, 5000] if quick else [1000, 10000, 30000])
    rows = []
    rss = {"switchboard": [], "rabbitmq": []}
    secs_pts = {"switchboard": [], "rabbitmq": []}
    for n in ns:
        for name in ("rabbitmq", "switchboard"):
            with ExitStack() as stack:
                b = env.start(name, stack)
                time.sleep(1)
                before = rss_kib(b.pid)
                cpu0 = cpu_seconds(b.pid)
                try:
                    secs = declare_queues(b.amqp, n, str(n))
                except Exception as e:  # noqa: BLE001 - report it in the table
                    log(f"queues {name} {n}: ERROR {e!r}")
                    rows.append([f"{n:,}", name, "ERROR", "", "", "", "", repr(e)[:80]])
                    continue
                time.sleep(1)
                cpu = cpu_seconds(b.pid) - cpu0
                after = rss_kib(b.pid)
            per = (after - before) / n
            rows.append([f"{n:,}", name, f"{secs:.2f}", f"{n / secs:,.0f}", f"{cpu:.2f}",
                         mib(before), mib(after), f"{per:.2f}"])
            rss[name].append((n, after / 1024))
            secs_pts[name].append((n, secs))
            log(f"queues {name} {n}: {secs:.2f} s, broker CPU {cpu:.2f} s, "
                f"rss {mib(before)} -> {mib(after)} MiB")
    table = md_table(["queues", "broker", "declare+bind s", "queues/s", "broker CPU s",
                      "RSS before (MiB)", "RSS after (MiB)", "KiB per queue"], rows)
    note = ("One pika 1.x BlockingConnection, one channel: for each queue a durable "
            "`queue.declare` and a `queue.bind` to `amq.topic` (routing key = queue "
            "name), each waiting for its reply. RSS 1 s after the last bind. A fresh "
            "broker per point. Broker CPU is user + system time of the broker process "
            "during the declarations (+1 s).")
    svg = line_chart("Durable queues bound to amq.topic", [
        {"title": "broker RSS after declaring", "xlabel": "queues", "ylabel": "RSS (MiB)",
         "logx": True, "logy": False, "xfmt": fmt_count,
         "series": {(k, "AMQP"): v for k, v in rss.items()}},
        {"title": "time to declare + bind all", "xlabel": "queues", "ylabel": "seconds",
         "logx": True, "logy": False, "xfmt": fmt_count,
         "series": {(k, "AMQP"): v for k, v in secs_pts.items()}},
    ])
    return {"title": "Queues", "note": note, "table": table, "svg": svg}


def case_sizes(env: Env, quick: bool) -> dict:
    sizes = [16, 1024, 65536, 1048576]
    secs = 2 if quick else 3
    rows = []
    rate = {}
    thr = {}
    with ExitStack() as stack:
        brokers = {n: env.start(n, stack) for n in ("rabbitmq", "mosquitto", "switchboard")}
        plan = [("AMQP", "rabbitmq"), ("AMQP", "switchboard"),
                ("MQTT", "mosquitto"), ("MQTT", "switchboard")]
        for size in sizes:
            for proto, name in plan:
                b = brokers[name]
                url = (f"amqp://guest:guest@127.0.0.1:{b.amqp}/%2f" if proto == "AMQP"
                       else f"mqtt://127.0.0.1:{b.mqtt}")
                args = ["q1-1", "--url", url, "-s", str(size), "-d", str(secs),
                        "--watch-pid", str(b.pid), "--drain-timeout", "10"]
                r = env.run_bench(args, timeout=120)
                if r.get("error"):
                    log(f"sizes {proto} {name} {size}: ERROR {r['error']}")
                    rows.append([proto, fmt_bytes(size), name, "ERROR", "", "", "", "",
                                 r["error"][:80]])
                    continue
                cons = r.get("consume_rate") or 0
                lost = r.get("missing", 0) or 0
                p50 = (r.get("latency") or {}).get("p50_us")
                rows.append([proto, fmt_bytes(size), name, f"{r.get('publish_rate', 0):,.0f}",
                             f"{cons:,.0f}", f"{cons * size / 2**20:,.1f}",
                             f"{r['broker_cpu_secs']:.2f}" if r.get("broker_cpu_secs") is not None else "-",
                             mib(r.get("broker_rss_max_kb")),
                             (f"{lost:,} lost" if lost else "")
                             + (f" {r['backlog']:,} queued" if r.get("backlog") else "")])
                rate.setdefault((name, proto), []).append((size, cons))
                thr.setdefault((name, proto), []).append((size, cons * size / 2**20))
                log(f"sizes {proto} {name} {size} B: {cons:,.0f} msg/s consumed"
                    + (f", p50 {p50 / 1000:.1f} ms" if p50 else ""))
    table = md_table(["protocol", "size", "broker", "pub msg/s", "cons msg/s", "cons MiB/s",
                      "broker CPU s", "broker peak RSS in the point (MiB)", "notes"], rows)
    note = (f"`switchboard-bench q1-1 -s SIZE -d {secs}` (1 publisher -> 1 queue -> 1 consumer, "
            "publishers unthrottled, AMQP prefetch 1000 without confirms, MQTT 3.1.1 QoS 0), "
            "consume rate = deliveries / time to the last delivery. One instance of each broker "
            "for the whole case; RabbitMQ and mosquitto first, then Switchboard, per size. "
            "A broker's peak RSS in a point includes what it kept from its earlier points "
            "(one process per broker for the case; Switchboard serves AMQP and MQTT). "
            "The client (Rust, lapin / rumqttc) shares the cores with the broker.")
    svg = line_chart("Throughput vs message size (q1-1)", [
        {"title": "messages/s consumed", "xlabel": "message size", "ylabel": "msg/s",
         "logx": True, "logy": True, "xfmt": fmt_bytes,
         "series": {k: v for k, v in rate.items()}},
        {"title": "payload MiB/s consumed", "xlabel": "message size", "ylabel": "MiB/s",
         "logx": True, "logy": True, "xfmt": fmt_bytes,
         "series": {k: v for k, v in thr.items()}},
    ])
    return {"title": "Throughput vs message size", "note": note, "table": table, "svg": svg}


CASES = {"idle-rss": case_idle_rss, "connections": case_connections,
         "queues": case_queues, "sizes": case_sizes}


# ---------------------------------------------------------------- formatting

def md_table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_count(v: float) -> str:
    if v >= 1e6 and v % 1e6 == 0:
        return f"{v / 1e6:g}M"
    if v >= 1000 and v % 1000 == 0:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def fmt_bytes(v: float) -> str:
    v = int(v)
    for unit, k in (("MiB", 2**20), ("KiB", 1024)):
        if v >= k and v % k == 0:
            return f"{v // k} {unit}"
    return f"{v} B"


def fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.2g}"


# ---------------------------------------------------------------- SVG

def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9:   # the last tick at or above hi
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if b - a > 3 else (1, 2, 5)
    return [m * 10 ** e for e in range(a, b + 1) for m in mults
            if lo / 1.0001 <= m * 10 ** e <= hi * 1.0001] or [lo, hi]


def esc(s) -> str:
    return html.escape(str(s))


def line_chart(title: str, panels: list[dict]) -> str:
    pw, ph = 460, 320          # one panel
    ml, mr, mt, mb = 70, 20, 50, 55
    W = pw * len(panels)
    H = ph + 60                 # legend below
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{esc(title)}</text>']
    legend = {}
    for i, p in enumerate(panels):
        x0 = i * pw + ml
        x1 = (i + 1) * pw - mr
        y0, y1 = ph - mb + 20, mt          # bottom, top (pixels)
        pts = [pt for s in p["series"].values() for pt in s if pt[1] is not None]
        out.append(f'<text x="{(x0 + x1) / 2}" y="{mt - 12}" text-anchor="middle" '
                   f'font-size="13">{esc(p["title"])}</text>')
        if not pts:
            out.append(f'<text x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" '
                       'text-anchor="middle">no data</text>')
            continue
        xs = sorted({x for x, _ in pts})
        ys = [y for _, y in pts]
        logx, logy = p.get("logx") and min(xs) > 0, p.get("logy") and min(ys) > 0
        if logx:
            xl, xh = math.log10(min(xs)), math.log10(max(xs))
            if xh - xl < 1e-9:
                xl, xh = xl - 0.5, xh + 0.5
            pad = (xh - xl) * 0.06
            xl, xh = xl - pad, xh + pad
            fx = lambda v, xl=xl, xh=xh: x0 + (math.log10(v) - xl) / (xh - xl) * (x1 - x0)  # noqa: E731
        else:
            xl, xh = min(xs), max(xs)
            if xh - xl < 1e-9:
                xl, xh = xl - 1, xh + 1
            pad = (xh - xl) * 0.06
            xl, xh = xl - pad, xh + pad
            fx = lambda v, xl=xl, xh=xh: x0 + (v - xl) / (xh - xl) * (x1 - x0)  # noqa: E731
        if logy:
            lo, hi = min(ys), max(ys)
            yt = log_ticks(10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi)))
            yl, yh = math.log10(min(yt + [lo])), math.log10(max(yt + [hi]))
            if yh - yl < 1e-9:
                yl, yh = yl - 0.5, yh + 0.5
            fy = lambda v, yl=yl, yh=yh: y0 - (math.log10(v) - yl) / (yh - yl) * (y0 - y1)  # noqa: E731
        else:
            yt = nice_ticks(0, max(ys) * 1.05)
            yl, yh = yt[0], yt[-1]
            fy = lambda v, yl=yl, yh=yh: y0 - (v - yl) / (yh - yl) * (y0 - y1)  # noqa: E731
        # frame, grid, ticks
        out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" '
                   'fill="none" stroke="#333"/>')
        for t in yt:
            y = fy(t)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt_num(t))}</text>')
        xfmt = p.get("xfmt", fmt_num)
        for t in xs:
            x = fx(t)
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#eee"/>')
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" stroke="#333"/>')
            out.append(f'<text x="{x:.1f}" y="{y0 + 18}" text-anchor="middle">{esc(xfmt(t))}</text>')
        scale = lambda log_: " (log scale)" if log_ else ""  # noqa: E731
        out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 38}" text-anchor="middle">'
                   f'{esc(p["xlabel"] + scale(logx))}</text>')
        cy = (y0 + y1) / 2
        out.append(f'<text x="{x0 - 52}" y="{cy}" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 - 52} {cy})">{esc(p["ylabel"] + scale(logy))}</text>')
        for (broker, proto), s in p["series"].items():
            s = sorted(pt for pt in s if pt[1] is not None and (not logy or pt[1] > 0))
            if not s:
                continue
            color, dash = COLORS.get(broker, "#000"), DASH.get(proto, "")
            legend[(broker, proto)] = (color, dash)
            d = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in s)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            for x, y in s:
                out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3.5" fill="{color}">'
                           f'<title>{esc(broker)} {esc(proto)} {esc(xfmt(x))}: {y:,.4g}</title></circle>')
    protos = {p for _, p in legend}
    lx, ly = 20, H - 18
    for (broker, proto), (color, dash) in legend.items():
        label = broker + (f" {proto}" if len(protos) > 1 else "")
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 28}" y2="{ly - 4}" stroke="{color}" '
                   'stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        out.append(f'<text x="{lx + 34}" y="{ly}">{esc(label)}</text>')
        lx += 60 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bar_chart(title: str, ylabel: str, values: dict[str, float]) -> str:
    W, H = 460, 340
    x0, x1, y0, y1 = 70, W - 20, H - 50, 50
    yt = nice_ticks(0, max(values.values() or [1]) * 1.1)
    fy = lambda v: y0 - v / yt[-1] * (y0 - y1)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{esc(title)}</text>',
           f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#333"/>']
    for t in yt:
        out.append(f'<line x1="{x0}" y1="{fy(t):.1f}" x2="{x1}" y2="{fy(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{fy(t) + 4:.1f}" text-anchor="end">{esc(fmt_num(t))}</text>')
    slot = (x1 - x0) / max(1, len(values))
    for i, (name, v) in enumerate(values.items()):
        bx = x0 + i * slot + slot * 0.2
        out.append(f'<rect x="{bx:.1f}" y="{fy(v):.1f}" width="{slot * 0.6:.1f}" '
                   f'height="{y0 - fy(v):.1f}" fill="{COLORS.get(name, "#777")}"/>')
        out.append(f'<text x="{bx + slot * 0.3:.1f}" y="{fy(v) - 5:.1f}" '
                   f'text-anchor="middle">{v:,.1f}</text>')
        out.append(f'<text x="{bx + slot * 0.3:.1f}" y="{y0 + 18}" '
                   f'text-anchor="middle">{esc(name)}</text>')
    cy = (y0 + y1) / 2
    out.append(f'<text x="{x0 - 52}" y="{cy}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 - 52} {cy})">{esc(ylabel)}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 38}" text-anchor="middle">broker</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- report

def machine() -> list[str]:
    model, mem = "?", "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
        kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
    except OSError:
        kernel = platform.release()
    return [f"- CPU: {os.cpu_count()} cores ({model})",
            f"- RAM: {mem}",
            f"- kernel: Linux {kernel}",
            f"- open-file limit: {resource.getrlimit(resource.RLIMIT_NOFILE)}"
            " (soft, hard) after raising soft to hard"]


def versions() -> list[str]:
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""
    rev = run(["git", "rev-parse", "--short=12", "HEAD"]) or "?"
    try:
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                                text=True, cwd=ROOT).stdout
    except OSError:
        status = ""
    dirty = [ln[3:] for ln in status.splitlines() if not ln[3:].startswith("bench/results")]
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"])
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mver = (run([mosq, "-h"]).splitlines() or ["?"])[0]
    mod = ""
    if dirty:
        mod = f" plus uncommitted changes to {', '.join(dirty[:6])}" + (" ..." if len(dirty) > 6 else "")
    out = [f"- Switchboard: git {rev}{mod} on {branch}, "
           "target/release/switchboard",
           f"- RabbitMQ: {dpkg_version('rabbitmq-server')} (Debian package rabbitmq-server), "
           f"Erlang/OTP {dpkg_version('erlang-base')} (erlang-base)",
           f"- mosquitto: {mver} (Debian package {dpkg_version('mosquitto')})"]
    try:
        import pika
        out.append(f"- clients: switchboard-bench (same revision; lapin, rumqttc, raw "
                   f"sockets for idle MQTT), Python {platform.python_version()} with "
                   f"pika {pika.__version__} (queues)")
    except ImportError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(ALL_CASES),
                    help=f"comma-separated subset of {','.join(ALL_CASES)}")
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points")
    ap.add_argument("-o", "--out", help="markdown report (default bench/results/scale-<date>.md)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run cargo build --release -p switchboard -p switchboard-bench")
    ap.add_argument("--bin", default=os.environ.get("SWITCHBOARD_BIN"),
                    help="switchboard binary (default target/release/switchboard)")
    ap.add_argument("--queues", default="",
                    help="queue counts for the queues case, e.g. 1000,5000 (default "
                         "1000,10000,30000; quick 1000,5000)")
    ap.add_argument("--note", default="", help="a sentence on the conditions, for the report")
    a = ap.parse_args()
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c} (known: {', '.join(ALL_CASES)})")

    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    if not a.no_build:
        log("cargo build --release -p switchboard -p switchboard-bench")
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard", "-p",
                        "switchboard-bench"], cwd=ROOT, check=True)
    sb_bin = Path(a.bin) if a.bin else target / "switchboard"
    bench = target / "switchboard-bench"
    for p in (sb_bin, bench):
        if not p.exists():
            raise SystemExit(f"missing {p}: build it (cargo build --release -p switchboard "
                             "-p switchboard-bench)")
    if not (RABBIT_BIN / "rabbitmq-server").exists() and {"idle-rss", "queues", "sizes"} & set(cases):
        raise SystemExit("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")

    # Descriptors for the idle connections: children inherit the raised soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    out = Path(a.out) if a.out else (
        ROOT / "bench" / "results" / f"scale-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.md")
    out.parent.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="switchboard-scale-"))
    atexit.register(shutil.rmtree, work, True)
    # SIGTERM runs the same clean-up as Ctrl-C (the ExitStacks unwind).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = Env(sb_bin, bench, work)
    env.queue_counts = [int(x) for x in a.queues.split(",") if x.strip()]

    started = dt.datetime.now(dt.timezone.utc)
    load0 = os.getloadavg()
    argv = shlex.join(["python3", "bench/scale.py"] + sys.argv[1:])
    head = [f"# Scale: cost as work grows ({started:%Y-%m-%d %H:%M} UTC)", "",
            f"Produced by `{argv}`{' (quick mode)' if a.quick else ''}. "
            "Re-run it to reproduce every table and chart below.", ""]
    if a.note:
        head += [f"**Conditions:** {a.note}", ""]
    info = ["## Machine", ""] + machine() + ["", "## Versions", ""] + versions() + [""]
    sections, failed = [], []

    def write(done: bool):
        # After every case, so an interrupted run keeps the cases it finished.
        load = (f"Load average (1 min) at the start {load0[0]:.2f}, at the end "
                f"{os.getloadavg()[0]:.2f}." if done else
                f"Load average (1 min) at the start {load0[0]:.2f}. **Incomplete:** "
                f"{len(sections) + len(failed)} of {len(cases)} cases done so far.")
        doc = head + [load, ""] + info + sections
        if failed:
            doc += ["## Failed", ""] + [f"- {f}" for f in failed] + [""]
        out.write_text("\n".join(doc))

    for c in cases:
        log(f"case {c}{' (quick)' if a.quick else ''}")
        t0 = time.monotonic()
        try:
            res = CASES[c](env, a.quick)
        except Exception as e:  # noqa: BLE001 - the other cases still run
            log(f"case {c} failed: {e!r}")
            failed.append(f"{c}: {e!r}")
            write(False)
            continue
        svg_path = out.with_name(f"{out.stem}-{c}.svg")
        svg_path.write_text(res["svg"])
        sections.append(f"## {res['title']} (`{c}`)\n\n{res['note']}\n\n{res['table']}\n\n"
                        f"![{c}]({svg_path.name})\n\n_{time.monotonic() - t0:.0f} s_\n")
        print(f"\n## {c}\n{res['table']}\n", flush=True)
        write(False)
    write(True)
    log(f"report: {out}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
