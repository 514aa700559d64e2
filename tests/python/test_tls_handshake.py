"""The TLS handshake itself: protocol versions (``openssl s_client``), required
client certificates (``tls.fail_if_no_peer_cert``) and untrusted ones, garbage and
silence on TLS ports, bad certificate files at start, and SIGHUP reloading the
certificate without closing listeners or connections.

Switchboard only: these start brokers of their own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pika
import pytest

import tlsutil
from support import requires_switchboard, wait_until

pytestmark = requires_switchboard("starts brokers of its own with TLS settings")

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
needs_openssl = pytest.mark.skipif(not tlsutil.has_openssl(), reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def pki():
    p = tlsutil.Pki(tlsutil.tmpdir())
    p.server_cert, p.server_key, p.server_x509 = p.server()
    p.alice = p.client("alice")
    # The same name, from a CA the broker does not trust.
    p.rogue = tlsutil.Pki(p.root / "rogue", tag="rogue").client("alice")
    return p


def _start(pki, verify_peer: bool, extra=None, cert=None, key=None):
    from conftest import start_switchboard

    env = tlsutil.tls_env(cert or pki.server_cert, key or pki.server_key, ca=pki.ca_file,
                          verify_peer=verify_peer, config=tlsutil.users_config(pki.root))
    # A short handshake limit, so the silent-client test is quick.
    env["SWITCHBOARD_AMQP__HANDSHAKE_TIMEOUT_MS"] = "1500"
    env.update(extra or {})
    return start_switchboard(env=env)


@pytest.fixture(scope="module")
def strict(pki):
    from conftest import stop_switchboard

    b = _start(pki, verify_peer=True)
    yield b
    stop_switchboard(b)


def s_client(addr, *args: str, stdin: bytes = b"Q\n") -> subprocess.CompletedProcess:
    host, port = addr
    return subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", *args],
                          input=stdin, capture_output=True, timeout=20)


def amqp_answer(addr, ctx: ssl.SSLContext) -> bytes:
    """What a TLS connection gets after sending the AMQP header: connection.start
    when the broker took it, b"" or an alert when it did not."""
    raw = socket.create_connection(addr, timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(AMQP_HEADER)
        return s.recv(4096)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        raw.close()


def is_connection_start(frame: bytes) -> bool:
    # Method frame on channel 0, class 10 (connection) method 10 (start).
    return len(frame) > 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a"


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_tls_12_and_13_are_served(strict, pki, version):
    cert, key = pki.alice
    r = s_client(strict.ports["amqps"], version, "-CAfile", str(pki.ca_file),
                 "-cert", str(cert), "-key", str(key), "-servername", "localhost")
    out = r.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out
    assert f"Protocol  : TLSv1.{version[-1]}" in out or \
        f"TLSv1.{version[-1]}" in out


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_protocol_versions_are_refused(strict, pki, version):
    # SECLEVEL=0 lets the client offer them at all; the broker must still refuse.
    r = s_client(strict.ports["amqps"], version, "-cipher", "DEFAULT@SECLEVEL=0",
                 "-CAfile", str(pki.ca_file))
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, out
    assert "Cipher is (NONE)" in out or "no peer certificate available" in out, out


@needs_openssl
def test_an_untrusted_client_certificate_is_refused(strict, pki):
    cert, key = pki.rogue
    r = s_client(strict.ports["amqps"], "-tls1_2", "-CAfile", str(pki.ca_file),
                 "-cert", str(cert), "-key", str(key))
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, out
    assert "alert" in out.lower(), out


@needs_openssl
def test_a_missing_client_certificate_is_refused_when_required(strict, pki):
    r = s_client(strict.ports["mqtts"], "-tls1_2", "-CAfile", str(pki.ca_file))
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, out


def test_required_client_certificates_over_tls13(strict, pki):
    addr = strict.ports["amqps"]
    none = tlsutil.client_context(pki.ca_file)
    rogue = tlsutil.client_context(pki.ca_file, *pki.rogue)
    good = tlsutil.client_context(pki.ca_file, *pki.alice)
    for ctx in (none, rogue, good):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    assert not is_connection_start(amqp_answer(addr, none))
    assert not is_connection_start(amqp_answer(addr, rogue))
    assert is_connection_start(amqp_answer(addr, good))


def test_a_trusted_certificate_logs_in_with_external(strict, pki):
    host, port = strict.ports["amqps"]
    ctx = tlsutil.client_context(pki.ca_file, *pki.alice)
    params = pika.ConnectionParameters(host=host, port=port,
                                       ssl_options=pika.SSLOptions(ctx, "localhost"),
                                       credentials=pika.credentials.ExternalCredentials(),
                                       connection_attempts=1, socket_timeout=10)
    with pika.BlockingConnection(params) as c:
        assert c.channel().is_open


def _closed_soon(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    AMQP_HEADER,
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a ClientHello too short to be one
    bytes(range(256)) * 8,
])
def test_garbage_on_every_tls_port_closes_the_connection(strict, pki, garbage):
    for name in ("amqps", "mqtts", "mqtt-wss", "stomps", "stomp-wss", "https", "admin-tls"):
        s = socket.create_connection(strict.ports[name], timeout=5)
        try:
            try:
                s.sendall(garbage)
            except (ConnectionResetError, BrokenPipeError):
                continue
            assert _closed_soon(s, 15), name
        finally:
            s.close()
    # And the broker still serves.
    assert strict.proc.poll() is None
    good = tlsutil.client_context(pki.ca_file, *pki.alice)
    assert is_connection_start(amqp_answer(strict.ports["amqps"], good))


def test_a_silent_client_is_dropped_after_the_handshake_timeout(strict):
    s = socket.create_connection(strict.ports["amqps"], timeout=5)
    try:
        started = time.monotonic()
        assert _closed_soon(s, 10)
        assert time.monotonic() - started < 6
    finally:
        s.close()


def _run_binary(*args: str, env=None) -> subprocess.CompletedProcess:
    from conftest import _switchboard_bin

    d = tlsutil.tmpdir("switchboard-tls-bad-")
    try:
        return subprocess.run([str(_switchboard_bin()), "--data-dir", str(d / "data"),
                               "--bind", "127.0.0.1", "--amqp-port", "0", "--mqtt-port", "0",
                               "--mqtt-ws-port", "0", "--stomp-port", "0",
                               "--stomp-ws-port", "0", "--http-port", "0",
                               "--admin-port", "0", "--amqps-port", "0", "--mqtts-port", "0",
                               "--mqtt-wss-port", "0", "--stomps-port", "0",
                               "--stomp-wss-port", "0", "--https-port", "0",
                               "--admin-tls-port", "0", *args],
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})})
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bad_files_stop_the_start_with_the_file_named(pki):
    missing = pki.root / "no-such-cert.pem"
    r = _run_binary("--tls-cert", str(missing), "--tls-key", str(pki.server_key))
    assert r.returncode != 0
    assert str(missing) in r.stderr.decode(), r.stderr
    # The key where the certificate should be.
    r = _run_binary("--tls-cert", str(pki.server_key), "--tls-key", str(pki.server_key))
    assert r.returncode != 0 and "no CERTIFICATE block" in r.stderr.decode(), r.stderr
    r = _run_binary("--tls-cert", str(pki.server_cert))
    assert r.returncode != 0 and "--tls-key" in r.stderr.decode(), r.stderr


def test_sighup_reloads_the_certificate(pki):
    from conftest import stop_switchboard

    d = tlsutil.tmpdir("switchboard-tls-reload-")
    cert, key = d / "server.pem", d / "server.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    b = _start(pki, verify_peer=False, cert=cert, key=key)
    try:
        before = tlsutil.served_certificate(b.ports["amqps"], pki.ca_file)
        assert before.serial_number == pki.server_x509.serial_number
        host, port = b.ports["amqps"]
        params = pika.ConnectionParameters(
            host=host, port=port, credentials=pika.PlainCredentials("guest", "guest"),
            ssl_options=pika.SSLOptions(tlsutil.client_context(pki.ca_file), "localhost"),
            connection_attempts=1, socket_timeout=10)
        old = pika.BlockingConnection(params)

        new_cert, new_key, new_x509 = pki.server(name="renewed", cn="renewed.localhost")
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        b.proc.send_signal(signal.SIGHUP)
        for name in ("amqps", "https", "admin-tls"):
            wait_until(lambda: tlsutil.served_certificate(b.ports[name], pki.ca_file)
                       .serial_number == new_x509.serial_number,
                       timeout=10, what=f"the renewed certificate on {name}")
        # The connection made before the reload is still served.
        ch = old.channel()
        ch.queue_declare("", exclusive=True)
        old.close()

        # A broken file: the reload is refused and the certificate in use stays.
        cert.write_text("not a certificate\n")
        b.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS not reloaded" in b._stderr(), timeout=10,
                   what="the refused reload in the log")
        assert tlsutil.served_certificate(b.ports["amqps"], pki.ca_file) \
            .serial_number == new_x509.serial_number
    finally:
        stop_switchboard(b)
