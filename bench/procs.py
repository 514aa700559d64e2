"""Process and port helpers shared by the Python benchmark scripts (`tls.py`,
`scale.py`, `permsg.py`): broker processes started by the script, read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen, name: str, timeout: float = 15):
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop on SIGTERM within {timeout:g} s: SIGKILL", file=sys.stderr)
        proc.kill()
        proc.wait()


def stop_pid(pid: int, name: str, timeout: float = 15):
    """SIGTERM, then SIGKILL, a process that is not our child (beam.smp)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    print(f"{name} did not stop on SIGTERM within {timeout:g} s: SIGKILL", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def stop_rabbit_node(node: str, pid_file: Path):
    """rabbitmqctl shutdown, then the beam.smp of the pid file if it is still there
    (also when the start failed half-way)."""
    try:
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node, "-q", "shutdown"],
                       capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        pass
    if pid_file.exists():
        pid = int("".join(c for c in pid_file.read_text() if c.isdigit()) or 0)
        if pid:
            stop_pid(pid, "beam.smp")


def start_rabbit_node(d: Path, node: str, ports: tuple, conf: list, plugins: str,
                      stack, timeout: float = 120) -> int:
    """A private RabbitMQ node (Debian's rabbitmq-server, never the system service)
    named `node`, its files in `d`, AMQP and distribution on `ports`, `conf` more
    rabbitmq.conf lines and `plugins` an Erlang list. Everything it starts is undone
    by `stack` (an ExitStack), the node's shutdown first. Returns the pid of
    beam.smp; raises RuntimeError, after printing the node's output, if it does not
    start within `timeout` seconds."""
    amqp, dist = ports
    (d / "rabbitmq.conf").write_text(
        "\n".join([f"listeners.tcp.1 = 127.0.0.1:{amqp}", "loopback_users = none"] + conf)
        + "\n")
    (d / "enabled_plugins").write_text(f"{plugins}.\n")
    env = {**os.environ,
           "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(amqp),
           "RABBITMQ_DIST_PORT": str(dist),
           "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
           "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
           "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
           "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins"),
           "RABBITMQ_PID_FILE": str(d / "pid")}
    # epmd: a node starts one if none runs and it outlives the node; stop it
    # afterwards only if it was not there before (`epmd -kill` refuses while any
    # node is registered, so another user's node keeps it).
    epmd_before = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True).returncode == 0
    if not epmd_before:
        stack.callback(lambda: subprocess.run(["epmd", "-kill"], capture_output=True))
    out = open(d / "out.log", "wb")
    stack.callback(out.close)
    wrapper = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=env,
                               stdout=out, stderr=subprocess.STDOUT)
    stack.callback(stop_process, wrapper, "rabbitmq-server wrapper")
    stack.callback(stop_rabbit_node, node, d / "pid")
    end = time.monotonic() + timeout
    while True:
        r = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node, "-q",
                            "await_startup", "--timeout", "30"], capture_output=True)
        if r.returncode == 0:
            break
        if wrapper.poll() is not None or time.monotonic() > end:
            print((d / "out.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise RuntimeError(f"RabbitMQ node {node} did not start")
        time.sleep(1)
    return int("".join(c for c in (d / "pid").read_text() if c.isdigit()))
