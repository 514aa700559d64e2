"""`switchboard ctl` against the session broker's admin API: tables and --json,
users, purge, closing a connection, definitions export and import."""

from __future__ import annotations

import json
import subprocess
import time

import pika
import pytest

import support
from conftest import _switchboard_bin
from test_admin_api import uname

pytestmark = pytest.mark.skipif(support.is_external(), reason="switchboard ctl is ours")


def ctl(broker, *args, check=True):
    host, port = broker.ports["admin"]
    r = subprocess.run([str(_switchboard_bin()), "ctl", "--admin", f"http://{host}:{port}",
                        *args], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_list_purge_and_json(broker, ch):
    q = uname("ctl")
    ch.queue_declare(q)
    try:
        ch.basic_publish("", q, b"1")
        ch.basic_publish("", q, b"2")
        time.sleep(0.2)
        lines = ctl(broker, "list-queues").stdout.splitlines()
        assert lines[0].split() == ["name", "messages_ready", "messages_unacknowledged",
                                    "consumers", "durable"]
        row = next(line.split() for line in lines if line.startswith(q + " "))
        assert row[1:3] == ["2", "0"]
        ctl(broker, "purge", q)
        rows = json.loads(ctl(broker, "--json", "list-queues").stdout)
        assert next(r for r in rows if r["name"] == q)["messages_ready"] == 0
    finally:
        ch.queue_delete(q)


def test_users_and_a_refused_login(broker):
    name = uname("user")
    ctl(broker, "add-user", name, "pw", "--tags", "monitoring")
    try:
        out = ctl(broker, "-u", name, "-p", "pw", "list-queues").stdout
        assert out.startswith("name")
        assert name in ctl(broker, "list-users").stdout
        r = ctl(broker, "-u", name, "-p", "pw", "purge", "nothing", check=False)
        assert r.returncode != 0 and "401" in r.stderr
        r = ctl(broker, "-u", name, "-p", "wrong", "list-queues", check=False)
        assert r.returncode != 0 and "401" in r.stderr
    finally:
        ctl(broker, "delete-user", name)
    assert name not in ctl(broker, "list-users").stdout


def test_close_connection(broker):
    conn = broker.connect()
    port = conn._impl._transport._sock.getsockname()[1]
    name = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 5
    while name not in ctl(broker, "list-connections").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "AMQP 0-9-1" in ctl(broker, "list-connections").stdout
    ctl(broker, "close-connection", name)
    with pytest.raises(pika.exceptions.ConnectionClosed):
        for _ in range(50):
            conn.process_data_events(time_limit=0.1)


def test_export_and_import(broker, tmp_path, ch):
    q = uname("defs")
    ch.queue_declare(q, durable=True)
    try:
        path = tmp_path / "defs.json"
        ctl(broker, "export", str(path))
        defs = json.loads(path.read_text())
        assert q in {x["name"] for x in defs["queues"]}
    finally:
        ch.queue_delete(q)
    # Importing the file declares the queue again.
    r = ctl(broker, "import", str(path))
    assert "imported" in r.stdout
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.queue_delete(q)


def test_set_list_and_clear_permissions(broker):
    name = uname("perm")
    ctl(broker, "add-user", name, "pw")
    try:
        host, port = broker.ports["amqp"]
        creds = pika.PlainCredentials(name, "pw")
        params = pika.ConnectionParameters(host, port, credentials=creds)
        # A user made at run time may not use the vhost until given permissions.
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(params)
        out = ctl(broker, "set-permissions", name, "^perm\\.", ".*", ".*").stdout
        assert "set" in out
        rows = json.loads(ctl(broker, "--json", "list-permissions").stdout)
        assert {"user": name, "vhost": "/", "configure": "^perm\\.", "write": ".*",
                "read": ".*"} in rows
        table = ctl(broker, "list-permissions").stdout
        assert any(line.split()[:2] == [name, "/"] for line in table.splitlines())
        conn = pika.BlockingConnection(params)
        conn.channel().queue_declare("perm.ctl", auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare("other.ctl")
        assert e.value.reply_code == 403
        conn.close()
        ctl(broker, "clear-permissions", name)
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(params)
        r = ctl(broker, "set-permissions", name, "(", ".*", ".*", check=False)
        assert r.returncode != 0 and "400" in r.stderr
    finally:
        ctl(broker, "delete-user", name)
