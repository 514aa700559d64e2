"""Two real Switchboard processes on loopback forming an active/standby pair
(docs/REPLICATION.md), for the replication tests.

``Pair(lock="file")`` starts node ``a`` first (it takes the lock and becomes active)
and then node ``b`` (standby); ``lock="static"`` starts them as ``static:active`` and
``static:standby``. Each node gets free client ports, a free replication port and
its own data directory; ``kill(n)`` is SIGKILL, ``start(n)`` restarts a node on the
same ports and data directory. A thread per node reads its stdout, so the role a
node announced last (``listening … role=active``) is always known."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from conftest import _switchboard_bin
from support import admin_call, restartable_port as free_port

ETCD = os.environ.get("ETCD", "/usr/bin/etcd")
PORT_NAMES = ["amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin"]


class Node:
    def __init__(self, name: str, root: Path):
        self.name = name
        self.data_dir = root / name
        self.ports: Dict[str, int] = {n: free_port() for n in PORT_NAMES}
        self.repl_port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.role: Optional[str] = None
        self.lines: List[str] = []
        self.stderr_path = root / f"{name}.stderr"

    def addr(self, what: str) -> Tuple[str, int]:
        return ("127.0.0.1", self.ports[what])

    @property
    def repl(self) -> str:
        return f"127.0.0.1:{self.repl_port}"

    def stderr(self) -> str:
        return self.log()[-6000:]

    def log(self) -> str:
        """Everything the node logged, over all its runs."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Pair:
    def __init__(self, lock: str = "file", extra_env: Optional[Dict[str, str]] = None):
        self.kind = lock
        self.env = extra_env or {}
        for attempt in (1, 2):
            self.root = Path(tempfile.mkdtemp(prefix="switchboard-pair-"))
            self.lock_path = self.root / "active.lock"
            self.etcd: Optional[subprocess.Popen] = None
            self.nodes = {"a": Node("a", self.root), "b": Node("b", self.root)}
            try:
                if lock == "etcd":
                    self._start_etcd()
                self._start_both()
                return
            except BaseException as e:
                # No fixture will close a pair that never finished starting.
                self.close()
                # A port probed free was taken before the node bound it (a listener
                # on port 0, or a client's ephemeral port): as the drill does, once
                # more from scratch on fresh ports.
                if attempt == 2 or "Address already in use" not in str(e):
                    raise

    def _start_both(self) -> None:
        self.start("a", static_role="active")
        self.wait_role("a", "active")
        self.start("b", static_role="standby")
        self.wait_role("b", "standby")

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        log = open(self.root / "etcd.log", "ab")
        self.etcd = subprocess.Popen(
            [ETCD, "--data-dir", str(self.root / "etcd"), "--name", "default",
             "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            try:
                with socket.create_connection(("127.0.0.1", client), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("etcd did not start")

    def other(self, n: str) -> str:
        return "b" if n == "a" else "a"

    def lock_spec(self, static_role: str) -> str:
        if self.kind == "static":
            return f"static:{static_role}"
        if self.kind == "etcd":
            return f"etcd:{self.etcd_url}"
        return f"file:{self.lock_path}"

    def start(self, n: str, static_role: str = "standby") -> None:
        node, peer = self.nodes[n], self.nodes[self.other(n)]
        cmd = [str(_switchboard_bin()), "--data-dir", str(node.data_dir), "--bind", "127.0.0.1",
               "--amqp-port", str(node.ports["amqp"]), "--mqtt-port", str(node.ports["mqtt"]),
               "--mqtt-ws-port", str(node.ports["mqtt-ws"]),
               "--stomp-port", str(node.ports["stomp"]),
               "--stomp-ws-port", str(node.ports["stomp-ws"]),
               "--http-port", str(node.ports["http"]), "--admin-port", str(node.ports["admin"]),
               "--replication-port", str(node.repl_port), "--peer", peer.repl,
               "--lock", self.lock_spec(static_role)]
        node.role = None
        err = open(node.stderr_path, "ab")
        node.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, **self.env})
        err.close()
        threading.Thread(target=self._read, args=(node, node.proc), daemon=True).start()

    def _read(self, node: Node, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("listening"):
                if node.proc is proc:
                    node.lines.append(line)
                    node.role = line.rsplit("role=", 1)[-1]

    def wait_role(self, n: str, role: str, timeout: float = 20.0) -> float:
        """Waits until node ``n`` announced ``role``; returns the seconds it took."""
        node = self.nodes[n]
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if node.role == role:
                return time.monotonic() - t0
            if node.proc is not None and node.proc.poll() is not None:
                raise AssertionError(f"node {n} exited with {node.proc.returncode}:\n"
                                     f"{node.stderr()}")
            time.sleep(0.02)
        raise AssertionError(f"node {n} did not become {role} within {timeout}s "
                             f"(last role {node.role}):\n{node.stderr()}")

    def status(self, n: str) -> Dict[str, str]:
        out = self.ctl("status", self.nodes[n].repl)
        if out.returncode != 0:
            return {}
        return dict(w.split("=", 1) for w in out.stdout.split())

    def wait_in_sync(self, n: str, timeout: float = 20.0) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            s = self.status(n)
            if s.get("role") == "active" and s.get("in_sync") == "true":
                return
            time.sleep(0.05)
        raise AssertionError(f"node {n} never reported its standby in sync: {self.status(n)}")

    def admin(self, n: str, path: str, method: str = "GET", body=None):
        """The admin API of node ``n`` as guest (a standby forwards to the active)."""
        return admin_call(self.nodes[n].addr("admin"), path, method, body)

    def wait_caught_up(self, n: str, timeout: float = 20.0) -> Dict[str, object]:
        """Waits until active ``n``'s standby is in sync and has acknowledged all the
        active holds (so an async pair's failover loses nothing); returns the
        overview's replication fields."""
        t0 = time.monotonic()
        r: Dict[str, object] = {}
        while time.monotonic() - t0 < timeout:
            r = self.admin(n, "/api/overview")["replication"] or {}
            if r.get("standby_in_sync") and r.get("acked_lsn", -1) >= r.get("last_lsn", 0) \
                    and int(self.status(self.other(n)).get("last_lsn", -1)) >= r["last_lsn"]:
                return r
            time.sleep(0.1)
        raise AssertionError(f"node {n}'s standby never caught up: {r}")

    def promote(self, n: str) -> subprocess.CompletedProcess:
        return self.ctl("promote", self.nodes[n].repl)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        """``switchboard ctl ARGS`` with the nodes' settings (so with their
        replication TLS, when it is on)."""
        return subprocess.run([str(_switchboard_bin()), "ctl", *args],
                              capture_output=True, text=True, timeout=10,
                              env={**os.environ, **self.env})

    def kill(self, n: str) -> None:
        p = self.nodes[n].proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)

    def signal(self, n: str, sig: int) -> None:
        p = self.nodes[n].proc
        if p is not None and p.poll() is None:
            p.send_signal(sig)

    def close(self) -> None:
        for n in self.nodes:
            p = self.nodes[n].proc
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        if self.etcd is not None:
            self.etcd.kill()
            self.etcd.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
