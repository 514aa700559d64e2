"""Shared helpers for the examples: start a Switchboard on free ports, read where it
listens, hand out clients, and stop it again.

An example's ``run`` does::

    import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "lib"))
    from switchboard import Broker, Checks, parse_args

    args = parse_args("what this example shows")
    with Broker() as b:                   # target/release/switchboard, brought up to date
        sqs = b.sqs()                     # boto3 clients, pika URLs, MQTT/STOMP (host, port)
        ...
        checks.expect(ok, "what must hold")
    checks.exit()                         # non-zero when an expectation failed

The broker gets a temporary data directory and port 0 for every listener; it prints
``listening amqp=127.0.0.1:40123 mqtt=… stomp=… http=… admin=…`` on stdout, which is
parsed into ``Broker.ports``. Nothing runs on the standard ports.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
PORT_FLAGS = ["--amqp-port", "--mqtt-port", "--mqtt-ws-port", "--stomp-port",
              "--stomp-ws-port", "--http-port", "--admin-port"]
REGION = "us-east-1"
ACCOUNT = "000000000000"


def say(*parts) -> None:
    print(*parts, flush=True)


_built = False


def binary() -> Path:
    """The release binary (``SWITCHBOARD_BIN`` overrides), brought up to date once per
    process: cargo is a no-op when it is, and a checkout must never run a binary
    older than its sources (a pulled change would seem not to work)."""
    global _built
    env = os.environ.get("SWITCHBOARD_BIN")
    if env:
        return Path(env)
    path = REPO / "target" / "release" / "switchboard"
    if not _built:
        if not path.exists():
            say(f"[examples] {path} missing: cargo build --release (a few minutes, once)")
        subprocess.run(["cargo", "build", "--release", "-q", "--bin", "switchboard"],
                       cwd=REPO, check=True)
        _built = True
    return path


def parse_listening_line(line: str) -> Dict[str, Tuple[str, int]]:
    """``listening amqp=127.0.0.1:40123 mqtt=… role=active`` → {"amqp": (host, port), …}
    (words without a port, such as ``role=active``, are left out)."""
    words = line.split()
    if not words or words[0] != "listening":
        raise ValueError(f"not a 'listening' line: {line!r}")
    out: Dict[str, Tuple[str, int]] = {}
    for w in words[1:]:
        key, _, addr = w.partition("=")
        host, _, port = addr.rpartition(":")
        if host and port.isdigit():
            out[key] = (host.strip("[]"), int(port))
    return out


def parse_args(description: str, argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--short", action="store_true",
                   help="a smaller run (under a minute), as examples/run-all --short does")
    return p.parse_args(argv)


class Broker:
    """One Switchboard process on free ports in a temporary data directory."""

    def __init__(self, extra_args: Optional[List[str]] = None,
                 env: Optional[Dict[str, str]] = None, quiet: bool = False):
        self.extra_args = extra_args or []
        self.env = env or {}
        self.quiet = quiet
        self.proc: Optional[subprocess.Popen] = None
        self.data_dir: Optional[str] = None
        self.ports: Dict[str, Tuple[str, int]] = {}
        self.listening = ""

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "Broker":
        self.data_dir = tempfile.mkdtemp(prefix="switchboard-example-")
        self.stderr_path = Path(self.data_dir + ".stderr")
        cmd = [str(binary()), "--data-dir", self.data_dir, "--bind", "127.0.0.1"]
        for flag in PORT_FLAGS:
            cmd += [flag, "0"]
        cmd += self.extra_args
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **self.env})
        err.close()
        self.listening = self._read_listening(timeout)
        self.ports = parse_listening_line(self.listening)
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.quiet:
            say(f"[broker] pid {self.proc.pid}: {self.listening}")
        return self

    def _read_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buf = b""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.5):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    text = raw.decode("utf-8", "replace").strip()
                    if text.startswith("listening"):
                        return text
        finally:
            sel.close()
        self.stop()
        raise RuntimeError(f"switchboard printed no 'listening' line (stdout {buf!r}, "
                           f"exit {self.proc.poll()}):\n{self.stderr()}")

    def _drain(self) -> None:
        try:
            while self.proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            try:
                self.stderr_path.unlink()
            except OSError:
                pass
            self.data_dir = None

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    def addr(self, what: str) -> Tuple[str, int]:
        return self.ports[what]

    @property
    def amqp_url(self) -> str:
        host, port = self.ports["amqp"]
        return f"amqp://guest:guest@{host}:{port}/%2F"

    @property
    def http_url(self) -> str:
        host, port = self.ports["http"]
        return f"http://{host}:{port}"

    @property
    def admin_url(self) -> str:
        host, port = self.ports["admin"]
        return f"http://{host}:{port}"

    # -- clients -------------------------------------------------------------------

    def aws(self, service: str, **config):
        """A boto3 client for ``sqs`` or ``sns`` on this broker (access key = a broker
        user, secret = its password)."""
        return aws_client(service, self.http_url, **config)

    def sqs(self, **config):
        return self.aws("sqs", **config)

    def sns(self, **config):
        return self.aws("sns", **config)

    def pika(self):
        import pika
        return pika.BlockingConnection(pika.URLParameters(self.amqp_url))


def aws_client(service: str, endpoint_url: str, retries: int = 1, **config):
    import boto3
    import botocore.config
    cfg = botocore.config.Config(retries={"total_max_attempts": retries, "mode": "standard"},
                                 connect_timeout=5, read_timeout=40, **config)
    return boto3.session.Session().client(
        service, endpoint_url=endpoint_url, region_name=REGION,
        aws_access_key_id="guest", aws_secret_access_key="guest", config=cfg)


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class Checks:
    """Expectations of an example: each is printed as it is checked; ``exit()`` ends
    the program with 1 when one failed."""

    def __init__(self, name: str):
        self.name = name
        self.failed: List[str] = []
        self.gaps: List[str] = []
        self.passed = 0
        self.t0 = time.monotonic()

    def expect(self, ok: bool, what: str, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        say(f"  [{mark}] {what}" + (f" ({detail})" if detail else ""))
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
        return ok

    def known_gap(self, ok: bool, what: str, gap: str, detail: str = "") -> bool:
        """An expectation the broker does not meet yet, documented in the example's
        README: printed as [GAP ] (or [ok  ] once it holds) without failing the run."""
        if ok:
            return self.expect(True, what, detail)
        say(f"  [GAP ] {what} ({detail}) -- known gap: {gap}")
        self.gaps.append(what)
        return False

    def exit(self) -> None:
        took = time.monotonic() - self.t0
        if self.gaps:
            say(f"{self.name}: {len(self.gaps)} known gap(s): " + "; ".join(self.gaps))
        if self.failed:
            say(f"{self.name}: FAILED {len(self.failed)} of {len(self.failed) + self.passed} "
                f"checks in {took:.1f}s: " + "; ".join(self.failed))
            sys.exit(1)
        say(f"{self.name}: all {self.passed} checks held in {took:.1f}s")
        sys.exit(0)


def wait_until(pred, timeout: float = 10.0, interval: float = 0.05):
    """Polls ``pred`` until it is truthy (returned) or ``timeout`` passes (returns the
    last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# -- an active/standby pair (docs/REPLICATION.md) ------------------------------------

def free_port() -> int:
    """A free port a node keeps over its restarts, from below the kernel's ephemeral
    range: a port-0 port could go to a client's connection while its node is down."""
    import random
    import socket
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(1000):
        port = random.randrange(10000, low) if low > 11000 else random.randrange(1024, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


class Node:
    """One node of a pair: client ports 0 (read from its `listening` lines), a
    replication port chosen up front (its peer must know it)."""

    def __init__(self, name: str, root: Path):
        self.name = name
        self.data_dir = root / name
        self.repl_port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.role: Optional[str] = None
        self.ports: Dict[str, Tuple[str, int]] = {}
        self.lines: List[str] = []
        self.stderr_path = root / f"{name}.stderr"

    @property
    def repl(self) -> str:
        return f"127.0.0.1:{self.repl_port}"

    def addr(self, what: str) -> Tuple[str, int]:
        return self.ports[what]


class Pair:
    """Two Switchboard processes on loopback with a file lock: ``a`` starts first and
    becomes active, ``b`` follows as standby. ``kill(n)`` is SIGKILL."""

    def __init__(self, lock_path: Optional[str] = None):
        self.root = Path(tempfile.mkdtemp(prefix="switchboard-pair-"))
        self.lock = lock_path or str(self.root / "active.lock")
        self.nodes = {"a": Node("a", self.root), "b": Node("b", self.root)}

    def start(self, n: str) -> None:
        node = self.nodes[n]
        peer = self.nodes["b" if n == "a" else "a"]
        cmd = [str(binary()), "--data-dir", str(node.data_dir), "--bind", "127.0.0.1"]
        for flag in PORT_FLAGS:
            cmd += [flag, "0"]
        cmd += ["--replication-port", str(node.repl_port), "--peer", peer.repl,
                "--lock", f"file:{self.lock}"]
        err = open(node.stderr_path, "ab")
        node.role = None
        node.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        threading.Thread(target=self._read, args=(node, node.proc), daemon=True).start()

    def _read(self, node: Node, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("listening") and node.proc is proc:
                node.lines.append(line)
                node.ports = parse_listening_line(line)
                node.role = line.rsplit("role=", 1)[-1]

    def wait_role(self, n: str, role: str, timeout: float = 30.0) -> float:
        node = self.nodes[n]
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if node.role == role:
                return time.monotonic() - t0
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node {n} exited with {node.proc.returncode}:\n"
                                   f"{node.stderr_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.01)
        raise RuntimeError(f"node {n} did not become {role} within {timeout}s")

    def ctl_status(self, n: str) -> Dict[str, str]:
        out = subprocess.run([str(binary()), "ctl", "status", self.nodes[n].repl],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return {}
        return dict(w.split("=", 1) for w in out.stdout.split() if "=" in w)

    def kill(self, n: str) -> None:
        p = self.nodes[n].proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes.values():
            p = node.proc
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
