"""Active/standby replication with two real processes (docs/REPLICATION.md): what a
client was told is accepted survives a SIGKILL of the active on every protocol; the
standby's addresses serve throughout (forwarded to the active, then served by the
standby itself); a node that comes back catches up and can take over again; a
stale active cannot confirm anything once another node has a newer epoch.

Switchboard only: no peer broker runs this pair."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import boto3
import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest
import stomp
from botocore.config import Config

import os

from pairutil import ETCD, Pair
from support import admin_call, requires_switchboard

pytestmark = requires_switchboard("starts its own pair of Switchboard processes")

N = 200


@pytest.fixture
def pair():
    p = Pair("file")
    yield p
    p.close()


def retry(fn, timeout=20.0):
    """Calls ``fn`` until it stops raising (clients reconnecting after a failover)."""
    t0 = time.monotonic()
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.2)


# --- one helper pair per protocol: publish N with confirmation, then drain ------

def amqp_publish(addr, queue, n):
    c = pika.BlockingConnection(pika.ConnectionParameters(*addr, connection_attempts=5,
                                                          retry_delay=0.2))
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    for i in range(n):
        ch.basic_publish("", queue, f"amqp-{i}".encode(),
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
    c.close()


def amqp_drain(addr, queue):
    def go():
        c = pika.BlockingConnection(pika.ConnectionParameters(*addr))
        ch = c.channel()
        got = []
        while True:
            _, _, body = ch.basic_get(queue, auto_ack=True)
            if body is None:
                break
            got.append(body.decode())
        c.close()
        return got
    return retry(go)


def mqtt_client(addr, cid):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False,
                    protocol=mqtt.MQTTv311)
    c.connect(*addr)
    c.loop_start()
    return c


def mqtt_subscribe_session(addr, cid, topic):
    c = mqtt_client(addr, cid)
    r = c.subscribe(topic, qos=1)
    assert r[0] == mqtt.MQTT_ERR_SUCCESS
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def mqtt_publish(addr, topic, n):
    c = mqtt_client(addr, "pub-" + uuid.uuid4().hex[:8])
    infos = [c.publish(topic, f"mqtt-{i}", qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    c.disconnect()
    c.loop_stop()


def mqtt_drain(addr, cid, expect):
    got = []

    def go():
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.on_message = lambda _c, _u, m: got.append(m.payload.decode())
        c.connect(*addr)
        return c
    c = retry(go)
    c.loop_start()
    t0 = time.monotonic()
    while len(set(got)) < expect and time.monotonic() - t0 < 15:
        time.sleep(0.05)
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()
    return got


def stomp_publish(addr, dest, n):
    c = stomp.Connection12([addr])
    c.connect("guest", "guest", wait=True)
    receipts = []

    class L(stomp.ConnectionListener):
        def on_receipt(self, frame):
            receipts.append(frame.headers["receipt-id"])
    c.set_listener("r", L())
    for i in range(n):
        c.send(dest, f"stomp-{i}", headers={"persistent": "true", "receipt": f"r{i}"})
    t0 = time.monotonic()
    while len(receipts) < n and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    assert len(receipts) == n
    c.disconnect()


def stomp_drain(addr, dest, expect):
    got = []

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            got.append(frame.body)

    def go():
        c = stomp.Connection12([addr])
        c.set_listener("m", L())
        c.connect("guest", "guest", wait=True)
        return c
    c = retry(go)
    c.subscribe(dest, id="1", ack="auto")
    t0 = time.monotonic()
    while len(got) < expect and time.monotonic() - t0 < 15:
        time.sleep(0.05)
    time.sleep(0.3)
    c.disconnect()
    return got


def sqs(addr):
    return boto3.client("sqs", endpoint_url=f"http://{addr[0]}:{addr[1]}",
                        region_name="us-east-1", aws_access_key_id="guest",
                        aws_secret_access_key="guest",
                        config=Config(retries={"max_attempts": 10, "mode": "standard"}))


def sqs_publish(addr, name, n):
    c = sqs(addr)
    url = c.create_queue(QueueName=name)["QueueUrl"]
    for i in range(0, n, 10):
        r = c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": f"sqs-{i + j}"} for j in range(10)])
        assert not r.get("Failed")
    return url


def sqs_drain(addr, name, expect):
    def go():
        c = sqs(addr)
        url = c.get_queue_url(QueueName=name)["QueueUrl"]
        got = []
        empty = 0
        while len(got) < expect and empty < 3:
            ms = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=1).get("Messages", [])
            empty = 0 if ms else empty + 1
            for m in ms:
                got.append(m["Body"])
                c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return got
    return retry(go)


def publish_everywhere(addr_of, tag, n):
    amqp_publish(addr_of("amqp"), f"repl-amqp-{tag}", n)
    mqtt_publish(addr_of("mqtt"), f"repl/{tag}", n)
    stomp_publish(addr_of("stomp"), f"/queue/repl-stomp-{tag}", n)
    sqs_publish(addr_of("http"), f"repl-sqs-{tag}", n)


def check_everywhere(addr_of, tag, n, mqtt_cid):
    want = lambda p: {f"{p}-{i}" for i in range(n)}  # noqa: E731
    assert set(amqp_drain(addr_of("amqp"), f"repl-amqp-{tag}")) == want("amqp")
    assert set(mqtt_drain(addr_of("mqtt"), mqtt_cid, n)) == want("mqtt")
    assert set(stomp_drain(addr_of("stomp"), f"/queue/repl-stomp-{tag}", n)) == want("stomp")
    assert set(sqs_drain(addr_of("http"), f"repl-sqs-{tag}", n)) == want("sqs")


def test_sigkill_of_the_active_loses_nothing_confirmed_on_any_protocol(pair):
    a, b = pair.nodes["a"], pair.nodes["b"]
    pair.wait_in_sync("a")
    # Clients use the standby's addresses: forwarded to the active now, served by
    # the standby itself after the failover: one endpoint throughout.
    cid = "repl-sub-" + uuid.uuid4().hex[:8]
    mqtt_subscribe_session(b.addr("mqtt"), cid, "repl/one")
    publish_everywhere(b.addr, "one", N)
    pair.kill("a")
    took = pair.wait_role("b", "active")
    assert took < 10
    check_everywhere(b.addr, "one", N, cid)


def test_a_node_that_comes_back_catches_up_and_takes_over_again(pair):
    pair.wait_in_sync("a")
    pair.kill("b")
    # Alone, the active goes on (standby_down = continue) and marks b out of sync.
    b = pair.nodes["b"]
    a = pair.nodes["a"]
    cid = "repl-sub-" + uuid.uuid4().hex[:8]
    mqtt_subscribe_session(a.addr("mqtt"), cid, "repl/two")
    publish_everywhere(a.addr, "two", N)
    assert pair.status("a").get("in_sync") == "false"
    pair.start("b")
    pair.wait_role("b", "standby")
    pair.wait_in_sync("a")
    pair.kill("a")
    pair.wait_role("b", "active")
    check_everywhere(b.addr, "two", N, cid)


def test_a_standby_that_was_out_of_sync_does_not_take_over(pair):
    pair.wait_in_sync("a")
    pair.kill("b")
    amqp_publish(pair.nodes["a"].addr("amqp"), "repl-alone", 10)
    pair.kill("a")
    # b holds the lock but the record says a went on without it: it must wait for a.
    pair.start("b")
    time.sleep(2)
    assert pair.nodes["b"].role == "standby"
    pair.start("a")
    pair.wait_role("a", "active")
    assert set(amqp_drain(pair.nodes["b"].addr("amqp"), "repl-alone")) == \
        {f"amqp-{i}" for i in range(10)}


def test_a_stale_active_cannot_confirm_after_a_promotion():
    pair = Pair("static")
    try:
        a, b = pair.nodes["a"], pair.nodes["b"]
        pair.wait_in_sync("a")
        amqp_publish(a.addr("amqp"), "repl-fence", 5)
        # The active is cut off (stopped), the standby is promoted by the operator.
        pair.signal("a", signal.SIGSTOP)
        r = pair.promote("b")
        assert r.returncode == 0, r.stderr
        pair.wait_role("b", "active")
        c = pika.BlockingConnection(pika.ConnectionParameters(*b.addr("amqp")))
        c.channel().queue_declare("repl-fence", durable=True)
        c.close()
        pair.signal("a", signal.SIGCONT)
        # The old active wakes up still thinking it is active: a publish to it
        # directly must not be confirmed, and it stops serving.
        confirmed = False
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                *a.addr("amqp"), socket_timeout=5, blocked_connection_timeout=10))
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish("", "repl-fence", b"stale", pika.BasicProperties(delivery_mode=2))
            confirmed = True
        except Exception:
            pass
        assert not confirmed, "a fenced active confirmed a publish"
        a.proc.wait(timeout=15)
        assert a.proc.returncode != 0
        got = amqp_drain(b.addr("amqp"), "repl-fence")
        assert sorted(got) == sorted(f"amqp-{i}" for i in range(5))
    finally:
        pair.close()


@pytest.mark.skipif(not os.path.exists(ETCD), reason=f"{ETCD} not installed (Debian: etcd-server)")
def test_with_an_etcd_lock_the_standby_takes_over_after_the_lease_expires():
    pair = Pair("etcd")
    try:
        a, b = pair.nodes["a"], pair.nodes["b"]
        pair.wait_in_sync("a")
        amqp_publish(b.addr("amqp"), "repl-etcd", N)
        pair.kill("a")
        took = pair.wait_role("b", "active")
        assert took < 10
        assert set(amqp_drain(b.addr("amqp"), "repl-etcd")) == {f"amqp-{i}" for i in range(N)}
        # The old active comes back as the standby of the new one.
        pair.start("a")
        pair.wait_role("a", "standby")
        pair.wait_in_sync("b")
    finally:
        pair.close()


def test_the_standby_forwards_websocket_clients_too(pair):
    import websocket  # websocket-client

    b = pair.nodes["b"]
    pair.wait_in_sync("a")
    # STOMP over WebSocket through the standby's port: CONNECT, SEND with a receipt.
    ws = websocket.create_connection(f"ws://127.0.0.1:{b.ports['stomp-ws']}/ws",
                                     subprotocols=["v12.stomp"], timeout=5)
    ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
    assert ws.recv().startswith("CONNECTED")
    ws.send("SEND\ndestination:/queue/repl-ws\npersistent:true\nreceipt:1\n\nover-ws\x00")
    assert ws.recv().startswith("RECEIPT")
    ws.close()
    # MQTT over WebSocket through the standby's port.
    m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets",
                    client_id="repl-ws-" + uuid.uuid4().hex[:6])
    m.connect("127.0.0.1", b.ports["mqtt-ws"])
    m.loop_start()
    info = m.publish("repl/ws", "hello", qos=1)
    info.wait_for_publish(timeout=10)
    assert info.is_published()
    m.disconnect()
    m.loop_stop()
    pair.kill("a")
    pair.wait_role("b", "active")
    assert amqp_drain(b.addr("amqp"), "repl-ws") == ["over-ws"]


def test_with_standby_down_block_confirmations_wait_for_a_standby():
    pair = Pair("file", extra_env={"SWITCHBOARD_REPLICATION__STANDBY_DOWN": "block"})
    try:
        a = pair.nodes["a"]
        pair.wait_in_sync("a")
        amqp_publish(a.addr("amqp"), "repl-block", 1)
        pair.kill("b")
        c = pika.BlockingConnection(pika.ConnectionParameters(*a.addr("amqp")))
        ch = c.channel()
        ch.confirm_delivery()
        confirmed = []
        # basic_publish with confirms blocks until the ack: run it on a thread (the
        # only one using this connection until it is done).
        def publish():
            ch.basic_publish("", "repl-block", b"held", pika.BasicProperties(delivery_mode=2))
            confirmed.append(time.monotonic())
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        time.sleep(3)
        assert not confirmed, "confirmed while no standby holds the message"
        pair.start("b")
        pair.wait_role("b", "standby")
        t.join(timeout=20)
        assert confirmed, "not confirmed after the standby came back"
        c.close()
        pair.kill("a")
        pair.wait_role("b", "active")
        assert sorted(amqp_drain(pair.nodes["b"].addr("amqp"), "repl-block")) == ["amqp-0", "held"]
    finally:
        pair.close()


def test_the_admin_api_shows_role_epoch_and_a_standby_that_is_down(pair):
    def get(node, path):
        return admin_call(pair.nodes[node].addr("admin"), path)

    pair.wait_in_sync("a")
    r = get("a", "/api/overview")["replication"]
    assert r["role"] == "active" and r["epoch"] >= 1 and r["standby_in_sync"] is True
    assert r["peer"] == pair.nodes["b"].repl
    # The standby's admin port forwards to the active, as its other ports do.
    assert get("b", "/api/overview")["replication"]["role"] == "active"
    assert "switchboard_replication_standby_in_sync 1" in get("a", "/metrics")
    pair.kill("b")
    deadline = time.monotonic() + 15
    while "switchboard_replication_standby_in_sync 0" not in get("a", "/metrics"):
        assert time.monotonic() < deadline, "the standby's loss never showed"
        time.sleep(0.2)
    assert get("a", "/api/overview")["replication"]["standby_in_sync"] is False
