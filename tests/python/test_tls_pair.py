"""TLS through an active/standby pair: the standby forwards TLS clients byte for
byte to the active's TLS ports (the handshake is with the active), and after a
failover serves them itself on the same addresses. With ``replication.tls`` the
link between the nodes is mutual TLS too (each node presents its certificate and
verifies the other's against ``tls.ca``): journal shipping, the failover and
``switchboard ctl status`` go over it, and a plain-TCP client of the replication
port gets nothing (docs/SECURITY.md).

Switchboard only: starts pairs of its own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess

import pika

import tlsutil
from conftest import _switchboard_bin, parse_listening_line
from pairutil import Pair
from support import requires_switchboard, uniq, wait_until

pytestmark = requires_switchboard("starts a pair of its own with TLS settings")


def amqps(addr, pki):
    ctx = tlsutil.client_context(pki.ca_file)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=addr[0], port=addr[1], ssl_options=pika.SSLOptions(ctx, "localhost"),
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=3, retry_delay=0.5, socket_timeout=10))


def test_the_standby_forwards_tls_clients_and_serves_them_after_a_failover():
    pki = tlsutil.Pki(tlsutil.tmpdir())
    cert, key, x509 = pki.server()
    # Copies, so the reload below can write over them.
    cert, key = shutil.copy(cert, pki.root / "live.pem"), shutil.copy(key, pki.root / "live.key")
    pair = Pair(extra_env=tlsutil.tls_env(cert, key))
    try:
        b = pair.nodes["b"]
        pair.wait_in_sync("a")
        ports = parse_listening_line(b.lines[-1].rsplit(" replication=", 1)[0])
        assert {"amqps", "mqtts", "https", "admin-tls"} <= set(ports)
        # Through the standby's AMQPS port: forwarded to the active.
        q = uniq("pair-tls")
        with amqps(ports["amqps"], pki) as c:
            ch = c.channel()
            ch.queue_declare(q, durable=True)
            ch.confirm_delivery()
            ch.basic_publish("", q, b"over tls", pika.BasicProperties(delivery_mode=2))
        pair.kill("a")
        pair.wait_role("b", "active")
        # The same address, now served by b itself, with the same certificate.
        served = tlsutil.served_certificate(ports["amqps"], pki.ca_file)
        assert served.serial_number == x509.serial_number
        with amqps(ports["amqps"], pki) as c:
            method, _, body = c.channel().basic_get(q, auto_ack=True)
            assert body == b"over tls"
        # A pair's node reloads its certificate on SIGHUP too.
        renewed_cert, renewed_key, renewed = pki.server(name="renewed")
        shutil.copy(renewed_cert, cert)
        shutil.copy(renewed_key, key)
        pair.signal("b", signal.SIGHUP)
        wait_until(lambda: tlsutil.served_certificate(ports["amqps"], pki.ca_file)
                   .serial_number == renewed.serial_number,
                   timeout=10, what="the renewed certificate")
    finally:
        pair.close()


def test_replication_over_mutual_tls_loses_nothing_confirmed_across_a_sigkill():
    pki = tlsutil.Pki(tlsutil.tmpdir())
    # Both nodes are on 127.0.0.1, so one certificate names both; each node serves
    # it on its replication port and presents it to the other's (both usages).
    cert, key, _ = pki.server(name="node", client=True)
    env = {**tlsutil.tls_env(cert, key, ca=pki.ca_file), "SWITCHBOARD_REPLICATION__TLS": "true"}
    pair = Pair(extra_env=env)
    try:
        a, b = pair.nodes["a"], pair.nodes["b"]
        # `ctl status` over the TLS port, with the same settings as the node.
        pair.wait_in_sync("a")
        assert pair.status("b")["role"] == "standby"
        # The same key as a plain link: scripts and the drill find the port by it.
        assert f" replication={a.repl} role=active" in a.lines[-1]
        assert "replication: following the active" in b.log() and "tls=true" in b.log()

        # A plain-TCP client asking for the status: no answer, the node says why,
        # and the pair stays in sync.
        with socket.create_connection(("127.0.0.1", a.repl_port), timeout=10) as s:
            s.sendall(struct.pack("<IB", 1, 7))  # Status
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        # At most a TLS alert record: never a StatusReply.
        assert got[:1] in (b"", b"\x15"), got
        wait_until(lambda: "replication: refused: TLS handshake failed" in a.log(),
                   what="the refused handshake in the log")
        assert "panicked" not in a.log()
        # ctl without the node's TLS settings says what to check.
        plain_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        out = subprocess.run([str(_switchboard_bin()), "ctl", "status", a.repl],
                             capture_output=True, text=True, timeout=20, env=plain_env)
        assert out.returncode != 0
        assert "replication.tls" in out.stderr, out.stderr
        assert pair.status("a")["in_sync"] == "true"

        # Confirmed persistent messages through the active, then SIGKILL it.
        q = uniq("repl-tls")
        bodies = [f"m{i}".encode() for i in range(200)]
        with pika.BlockingConnection(pika.ConnectionParameters(
                *a.addr("amqp"), credentials=pika.PlainCredentials("guest", "guest"))) as c:
            ch = c.channel()
            ch.queue_declare(q, durable=True)
            ch.confirm_delivery()
            for body in bodies:
                ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=2),
                                 mandatory=True)
        pair.kill("a")
        pair.wait_role("b", "active")
        got = []
        with pika.BlockingConnection(pika.ConnectionParameters(
                *b.addr("amqp"), credentials=pika.PlainCredentials("guest", "guest"),
                connection_attempts=5, retry_delay=0.5)) as c:
            ch = c.channel()
            while True:
                method, _, body = ch.basic_get(q, auto_ack=True)
                if method is None:
                    break
                got.append(body)
        assert got == bodies
    finally:
        pair.close()
