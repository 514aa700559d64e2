"""TLS through an active/standby pair: the standby forwards TLS clients byte for
byte to the active's TLS ports (the handshake is with the active), and after a
failover serves them itself on the same addresses. (The replication link between
the nodes is plain TCP: docs/SECURITY.md.)

Switchboard only: starts a pair of its own."""

from __future__ import annotations

import shutil
import signal

import pika

import tlsutil
from conftest import parse_listening_line
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
