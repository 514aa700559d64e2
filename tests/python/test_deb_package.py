"""The Debian package (Cargo.toml's [package.metadata.deb], packaging/): `cargo deb`
builds it from the debug binary `cargo test` already built, `dpkg -i` installs it
on this machine, and the broker runs as the installed systemd unit says (its
ExecStart, User, WorkingDirectory and LimitNOFILE; no systemd runs here), with the
installed configuration and only its ports moved by SWITCHBOARD_* variables. Then
`dpkg -r` and `dpkg -P` take it away again.

Needs root, cargo-deb and dpkg; skips without them. Switchboard only."""

from __future__ import annotations

import grp
import os
import pwd
import re
import resource
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import pika
import pytest

from conftest import REPO_ROOT, parse_listening_line
from support import admin_call, requires_switchboard

PKG = "switchboard"
USER = "switchboard"
CONFIG = Path("/etc/switchboard/switchboard.toml")
BIN = REPO_ROOT / "target" / "debug" / "switchboard"


def _why_not() -> str:
    if os.geteuid() != 0:
        return "installing a package needs root"
    for tool in ("cargo", "cargo-deb", "dpkg", "dpkg-deb", "setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} not found (cargo install cargo-deb; Debian: dpkg, util-linux)"
    if not BIN.exists():
        return f"{BIN} not built (cargo build)"
    q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], capture_output=True, text=True)
    if "installed" in q.stdout.split():
        return f"a {PKG} package is already installed here; not replacing it"
    return ""


pytestmark = [
    requires_switchboard("builds and installs Switchboard's own package"),
    pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "-"),
]


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{shlex.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def unit_settings(path: Path) -> Dict[str, List[str]]:
    """The [Service] section's settings, each with all its values."""
    out: Dict[str, List[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def installed_files() -> List[str]:
    return run("dpkg", "-L", PKG).stdout.split()


def want_nofile(svc: Dict[str, List[str]]) -> int:
    """The unit's LimitNOFILE, as far as this machine lets root raise it (systemd
    sets it from PID 1; a container may cap root's hard limit lower)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = int(svc["LimitNOFILE"][0])
    return want if hard == resource.RLIM_INFINITY else min(want, hard)


def start_as_unit(svc: Dict[str, List[str]]) -> subprocess.Popen:
    """Starts the broker as systemd would start the unit (no PAM session): its
    ExecStart as its User and Group with no new privileges, in its
    WorkingDirectory with its LimitNOFILE and UMask; every port 0 (free ones) on
    loopback. prlimit and setpriv exec, so the process is the broker itself."""
    argv = shlex.split(svc["ExecStart"][0])
    nofile = want_nofile(svc)
    umask = int(svc["UMask"][0], 8)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "SWITCHBOARD_BIND": "127.0.0.1"}
    for port in ("AMQP", "MQTT", "MQTT_WS", "STOMP", "STOMP_WS", "HTTP", "ADMIN"):
        env[f"SWITCHBOARD_{port}_PORT"] = "0"
    cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "setpriv",
           f"--reuid={svc['User'][0]}", f"--regid={svc['Group'][0]}", "--init-groups",
           "--no-new-privs", "--", *argv]
    # A file, not a pipe: nobody reads the logs while the broker runs.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=svc["WorkingDirectory"][0], env=env,
                            stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(umask))
    proc.log = log  # type: ignore[attr-defined]
    return proc


def logs(proc: subprocess.Popen) -> str:
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read().decode(errors="replace")[-4000:]  # type: ignore[attr-defined]


def listening(proc: subprocess.Popen, timeout: float = 30.0) -> Dict[str, tuple]:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith("listening"):
                        return parse_listening_line(line)
            elif proc.poll() is not None:
                break
    finally:
        sel.close()
    proc.kill()
    raise AssertionError(f"no listening line (exit {proc.poll()}): stdout {buf!r}\n"
                         f"stderr: {logs(proc)}")


@pytest.fixture
def package():
    user_existed = True
    try:
        pwd.getpwnam(USER)
    except KeyError:
        user_existed = False
    out = Path(tempfile.mkdtemp(prefix="switchboard-deb-"))
    try:
        # The debug binary the suite already has: no release build in the tests
        # (about 10 min on 2 cores). Stripped, without the dbgsym package and
        # lightly compressed, it takes seconds.
        run("cargo", "deb", "--no-build", "--profile", "dev", "--fast", "--strip",
            "--no-dbgsym", "-o", str(out), cwd=REPO_ROOT)
        debs = list(out.glob("*.deb"))
        assert len(debs) == 1, debs
        yield debs[0]
    finally:
        subprocess.run(["dpkg", "-P", PKG], capture_output=True)
        if not user_existed:
            subprocess.run(["deluser", "--system", "--quiet", USER], capture_output=True)
            subprocess.run(["delgroup", "--system", "--quiet", USER], capture_output=True)
        shutil.rmtree(out, ignore_errors=True)


def test_the_package_installs_runs_as_its_unit_says_and_purges(package):
    info = run("dpkg-deb", "-f", str(package), "Package", "Depends").stdout
    assert f"Package: {PKG}" in info and "libc6" in info, info
    run("dpkg", "-i", str(package))

    files = installed_files()
    unit = next(Path(f) for f in files if f.endswith("/systemd/system/switchboard.service"))
    svc = unit_settings(unit)
    argv = shlex.split(svc["ExecStart"][0])
    assert Path(argv[0]).is_file() and os.access(argv[0], os.X_OK), argv
    assert argv[1:] == ["--config", str(CONFIG)]
    assert svc["User"] == [USER] and svc["Restart"] == ["on-failure"]
    assert svc["ProtectSystem"] == ["strict"] and svc["NoNewPrivileges"] == ["true"]
    assert int(svc["LimitNOFILE"][0]) >= 65536
    # The configured data directory is the one the unit lets the broker write.
    data_dir = re.search(r'^data_dir\s*=\s*"([^"]+)"', CONFIG.read_text(), re.M).group(1)
    assert svc["ReadWritePaths"] == [data_dir] == svc["WorkingDirectory"]
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PKG).stdout
    assert str(CONFIG) in conffiles

    # What the maintainer scripts made: a system user without a login, its data
    # directory, and a configuration only root and that user's group read.
    u = pwd.getpwnam(USER)
    assert u.pw_uid < 1000 and u.pw_shell.endswith("nologin") and u.pw_dir == data_dir
    st = os.stat(data_dir)
    assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid) and st.st_mode & 0o777 == 0o750
    st = os.stat(CONFIG)
    assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == USER
    assert st.st_mode & 0o777 == 0o640

    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True, timeout=60)
        # Without systemd as PID 1 verify still parses the unit, and checks its
        # settings and that its binaries exist; an unknown key is only a warning.
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if "switchboard.service" in line]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr

    proc = start_as_unit(svc)
    try:
        ports = listening(proc)
        assert os.readlink(f"/proc/{proc.pid}/exe") == argv[0]
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{u.pw_uid}\s", status, re.M), status
        assert re.search(r"^NoNewPrivs:\s+1", status, re.M), status
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        assert re.search(rf"^Max open files\s+{want_nofile(svc)}\s", limits, re.M), limits
        host, port = ports["amqp"]
        c = pika.BlockingConnection(pika.ConnectionParameters(host, port))
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare("deb-check", durable=True)
        ch.basic_publish("", "deb-check", b"installed", pika.BasicProperties(delivery_mode=2))
        _, _, body = ch.basic_get("deb-check", auto_ack=True)
        assert body == b"installed"
        c.close()
        q = admin_call(ports["admin"], "/api/queues/%2F/deb-check")
        assert q["name"] == "deb-check" and q["durable"] is True
        # Its state went where the unit lets it write, owned by the service user
        # and closed to others (UMask).
        journal = Path(data_dir) / "journal"
        assert journal.is_dir() and journal.stat().st_uid == u.pw_uid
        assert journal.stat().st_mode & 0o007 == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, logs(proc)

    # Remove keeps configuration and data; purge takes both.
    run("dpkg", "-r", PKG)
    assert not Path(argv[0]).exists() and not unit.exists()
    assert CONFIG.exists() and Path(data_dir, "journal").is_dir()
    run("dpkg", "-P", PKG)
    assert not CONFIG.exists() and not Path(data_dir).exists()
    q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], capture_output=True, text=True)
    assert "installed" not in q.stdout.split()
    assert not run("dpkg-statoverride", "--list").stdout.count(str(CONFIG))
