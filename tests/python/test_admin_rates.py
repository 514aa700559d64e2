"""Message counts and rates: RabbitMQ's ``message_stats`` on queues and the
overview, the counters behind them on ``/metrics``, and ``/metrics/detailed``
filtered by vhost and family.

Rates are sampled every 5 s (RabbitMQ's collect_statistics_interval), so the rate
tests wait a little over one interval between two reads."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pika
import pytest

import support
from conftest import start_switchboard, stop_switchboard
from test_admin_api import Api, admin_addr, uname

INTERVAL = 5.2


@pytest.fixture
def api(broker) -> Api:
    return Api(*admin_addr(broker))


def queue_path(q: str) -> str:
    return "/api/queues/%2F/" + urllib.parse.quote(q, safe="")


def stats_when(api: Api, q: str, ok, timeout: float = 15.0) -> dict:
    """The queue's message_stats once `ok` holds for them (RabbitMQ publishes its
    figures every few seconds; Switchboard's counts are current)."""
    deadline = time.monotonic() + timeout
    while True:
        ms = api.get(queue_path(q)).get("message_stats") or {}
        if ok(ms) or time.monotonic() > deadline:
            return ms
        time.sleep(0.3)


def test_queue_message_stats_count_publish_deliver_get_ack_and_redeliver(api, ch):
    q = uname("rates")
    ch.queue_declare(q)
    try:
        for i in range(10):
            ch.basic_publish("", q, f"m{i}".encode())
        # Two basic.get: one acked, one rejected with requeue (so redelivered later).
        m1, _, _ = ch.basic_get(q)
        ch.basic_ack(m1.delivery_tag)
        m2, _, _ = ch.basic_get(q)
        ch.basic_nack(m2.delivery_tag, requeue=True)
        # A consumer takes the other 9 and acks them.
        got = []
        ch.basic_consume(q, lambda c, m, p, b: (got.append(b), c.basic_ack(m.delivery_tag)))
        deadline = time.monotonic() + 10
        while len(got) < 9 and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.1)
        assert len(got) == 9
        ms = stats_when(api, q, lambda s: s.get("ack") == 10)
        assert ms["publish"] == 10
        assert ms["ack"] == 10
        assert ms["get"] == 2
        assert ms["deliver"] == 9
        assert ms["deliver_get"] == 11
        assert ms["redeliver"] == 1
        for k in ("publish", "deliver_get", "ack", "redeliver"):
            assert "rate" in ms[k + "_details"], k
    finally:
        ch.queue_delete(q)


def test_rates_follow_the_traffic_and_fall_back_to_zero(api, broker, ch):
    if broker.external:
        pytest.skip("RabbitMQ's rates depend on its own collection timing")
    q = uname("rates")
    ch.queue_declare(q)
    try:
        api.get(queue_path(q))
        api.get("/api/overview")
        for i in range(200):
            ch.basic_publish("", q, b"x")
        # The publishes are in before the next sample is taken.
        stats_when(api, q, lambda s: s.get("publish") == 200)
        time.sleep(INTERVAL)
        ms = api.get(queue_path(q))["message_stats"]
        assert ms["publish_details"]["rate"] > 0
        assert ms["ack_details"]["rate"] == 0
        ov = api.get("/api/overview")["message_stats"]
        assert ov["publish"] >= 200 and ov["publish_details"]["rate"] > 0
        # Nothing happens for one more interval: the rate goes back to zero.
        time.sleep(INTERVAL)
        assert api.get(queue_path(q))["message_stats"]["publish_details"]["rate"] == 0
    finally:
        ch.queue_delete(q)


def test_a_fanout_publish_counts_once_in_the_overview_and_once_per_queue(api, broker, ch):
    if broker.external:
        pytest.skip("RabbitMQ's overview counts come from its periodic collection")
    x = uname("fan")
    qs = [uname("fanq") for _ in range(3)]
    ch.exchange_declare(x, "fanout")
    try:
        for q in qs:
            ch.queue_declare(q)
            ch.queue_bind(q, x)
        before = api.get("/api/overview")["message_stats"]["publish"]
        for _ in range(5):
            ch.basic_publish(x, "", b"f")
        for q in qs:
            assert stats_when(api, q, lambda s: s.get("publish") == 5)["publish"] == 5
        # Other tests may publish meanwhile; ours add exactly 5, not 15.
        after = api.get("/api/overview")["message_stats"]["publish"]
        assert 5 <= after - before < 15
    finally:
        for q in qs:
            ch.queue_delete(q)
        ch.exchange_delete(x)


def metrics(api: Api, path: str) -> dict:
    with urllib.request.urlopen(api.base + path, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def test_prometheus_counters_and_the_detailed_endpoint(api, broker, ch):
    if broker.external:
        pytest.skip("RabbitMQ serves /metrics on 15692")
    vhost = uname("vh")
    status, _, _ = api.call("PUT", "/api/vhosts/" + urllib.parse.quote(vhost, safe=""))
    assert status in (201, 204)
    q = uname("prom")
    ch.queue_declare(q)
    try:
        for _ in range(3):
            ch.basic_publish("", q, b"abcd")
        m, _, _ = ch.basic_get(q)
        ch.basic_ack(m.delivery_tag)
        lab = f'{{vhost="/",queue="{q}"}}'
        deadline = time.monotonic() + 10
        while metrics(api, "/metrics").get("rabbitmq_queue_messages_acked_total" + lab) != 1 \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        m = metrics(api, "/metrics")
        assert m["rabbitmq_queue_messages_published_total" + lab] == 3
        assert m["rabbitmq_queue_get_ack_total" + lab] == 1
        assert m["rabbitmq_queue_messages_acked_total" + lab] == 1
        assert m["rabbitmq_queue_messages_ready_bytes" + lab] == 8
        assert m["rabbitmq_queue_messages_paged_out_bytes" + lab] == 0
        assert m["rabbitmq_global_messages_received_total"] >= 3
        assert m["rabbitmq_global_messages_acknowledged_total"] >= 1
        # The same series per object under RabbitMQ's detailed names, only the
        # families asked for, only the vhost asked for.
        d = metrics(api, "/metrics/detailed?vhost=%2F&family=queue_coarse_metrics")
        assert d["rabbitmq_detailed_queue_messages_ready" + lab] == 2
        assert not any(k.startswith("rabbitmq_detailed_queue_consumers") for k in d)
        assert not any(k.startswith("sqs_") for k in d)
        d = metrics(api, "/metrics/detailed?vhost=%2F&family=queue_coarse_metrics"
                         "&family=queue_delivery_metrics")
        assert d["rabbitmq_detailed_queue_messages_published_total" + lab] == 3
        other = metrics(api, "/metrics/detailed?vhost="
                        + urllib.parse.quote(vhost, safe="") + "&family=queue_coarse_metrics")
        assert not any(q in k for k in other)
        assert metrics(api, "/metrics/detailed?vhost=no-such-vhost") == {}
        per_object = metrics(api, "/metrics/per-object")
        assert per_object["rabbitmq_queue_messages_ready" + lab] == 2
    finally:
        ch.queue_delete(q)
        api.call("DELETE", "/api/vhosts/" + urllib.parse.quote(vhost, safe=""))


@support.requires_switchboard("starts a broker with a small memory budget")
def test_paged_out_bytes_show_when_a_queue_exceeds_its_memory_budget():
    """A broker with a small per-queue memory budget pages a backlog out; the
    metrics say how much."""
    b = start_switchboard(env={"SWITCHBOARD_QUEUE_MEMORY_BYTES": "4096"})
    try:
        api = Api(*b.ports["admin"])
        conn = b.connect()
        ch = conn.channel()
        ch.queue_declare("backlog", durable=True)
        ch.confirm_delivery()
        for _ in range(64):
            ch.basic_publish("", "backlog", b"p" * 1024, pika.BasicProperties(delivery_mode=2))
        info = api.get("/api/queues/%2F/backlog")
        assert info["message_bytes_ready"] == 64 * 1024
        assert info["message_bytes_paged_out"] >= 64 * 1024 - 4096
        lab = '{vhost="/",queue="backlog"}'
        m = metrics(api, "/metrics")
        assert m["rabbitmq_queue_messages_paged_out_bytes" + lab] == info["message_bytes_paged_out"]
        conn.close()
    finally:
        stop_switchboard(b)
