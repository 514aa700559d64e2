"""Definitions (RabbitMQ's JSON) and users through the admin API: rabbitmqadmin
export/import, a RabbitMQ export loaded with ``--definitions`` (policies become queue
arguments), users with RabbitMQ's password hashes logging in over AMQP, durable
across kill -9, and a lossless round trip between two brokers (Switchboard only:
these start brokers of their own)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal

import pika
import pytest

from conftest import start_switchboard, stop_switchboard
from test_admin_api import RABBITMQADMIN, Api, needs_rabbitmqadmin, uname
import support

pytestmark = pytest.mark.skipif(support.is_external(),
                                reason="starts Switchboard instances of its own")


def rabbit_hash(password: str, salt: bytes = b"\x90\x8d\xc6\x0a") -> str:
    """RabbitMQ's rabbit_password_hashing_sha256, as rabbitmqctl hash_password."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


# What `rabbitmqctl export_definitions` writes (RabbitMQ 3.10), trimmed to a few objects.
RABBIT_EXPORT = {
    "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
    "product_name": "RabbitMQ", "product_version": "3.10.8",
    "users": [{"name": "app", "password_hash": rabbit_hash("app-secret"),
               "hashing_algorithm": "rabbit_password_hashing_sha256",
               "tags": ["management"], "limits": {}}],
    "vhosts": [{"name": "/"}, {"name": "billing"}],
    "permissions": [{"user": "app", "vhost": "billing", "configure": ".*", "write": ".*",
                     "read": ".*"}],
    "topic_permissions": [], "parameters": [], "global_parameters": [],
    "policies": [{"vhost": "billing", "name": "limits", "pattern": "^invoices",
                  "apply-to": "queues", "priority": 1,
                  "definition": {"max-length": 1000, "message-ttl": 86400000,
                                 "ha-mode": "all"}}],
    "queues": [{"name": "invoices", "vhost": "billing", "durable": True,
                "auto_delete": False, "arguments": {"x-queue-type": "classic"}},
               {"name": "audit", "vhost": "billing", "durable": True,
                "auto_delete": False, "arguments": {}}],
    "exchanges": [{"name": "billing.events", "vhost": "billing", "type": "topic",
                   "durable": True, "auto_delete": False, "internal": False,
                   "arguments": {}}],
    "bindings": [{"source": "billing.events", "vhost": "billing", "destination": "invoices",
                  "destination_type": "queue", "routing_key": "invoice.*", "arguments": {}},
                 {"source": "billing.events", "vhost": "billing", "destination": "audit",
                  "destination_type": "queue", "routing_key": "#", "arguments": {}}],
}


@pytest.fixture
def node(tmp_path):
    started = []

    def start(defs=None, data_dir=None):
        env = {}
        if defs is not None:
            path = tmp_path / f"defs{len(started)}.json"
            path.write_text(json.dumps(defs))
            cfg = tmp_path / f"cfg{len(started)}.toml"
            cfg.write_text(f'definitions = "{path}"\n')
            env["SWITCHBOARD_CONFIG"] = str(cfg)
        b = start_switchboard(env=env, data_dir=data_dir)
        started.append(b)
        return b

    yield start
    for b in started:
        stop_switchboard(b)


def api_of(b, user="guest", password="guest") -> Api:
    return Api(*b.ports["admin"], user=user, password=password)


def test_a_rabbitmq_export_loads_at_start(node):
    b = node(RABBIT_EXPORT)
    api = api_of(b)
    q = api.get("/api/queues/billing/invoices")
    # The policy's keys this broker has became arguments; the queue's own stay.
    assert q["arguments"] == {"x-max-length": 1000, "x-message-ttl": 86400000,
                              "x-queue-type": "classic"}
    assert api.get("/api/queues/billing/audit")["arguments"] == {}
    assert api.get("/api/exchanges/billing/billing.events")["type"] == "topic"
    keys = {(x["source"], x["destination"], x["routing_key"])
            for x in api.get("/api/bindings/billing")}
    assert ("billing.events", "invoices", "invoice.*") in keys
    # The imported user logs in over AMQP with the password behind the hash, and the
    # routing works as defined.
    conn = pika.BlockingConnection(pika.URLParameters(
        f"amqp://app:app-secret@127.0.0.1:{b.amqp_port}/billing"))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("billing.events", "invoice.paid", b"42")
        assert ch.basic_get("invoices", auto_ack=True)[2] == b"42"
        assert ch.basic_get("audit", auto_ack=True)[2] == b"42"
    finally:
        conn.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://app:wrong@127.0.0.1:{b.amqp_port}/billing"))
    # The warning names the policy key without an equivalent.
    assert "ha-mode" in b._stderr()


def test_users_through_the_api_log_in_and_survive_sigkill(node):
    b = node()
    api = api_of(b)
    status, _, _ = api.call("PUT", "/api/users/ops", {"password": "pw1", "tags": "monitoring"})
    assert status == 201
    status, _, _ = api.call("PUT", "/api/users/hashed",
                            {"password_hash": rabbit_hash("pw2"), "tags": ["administrator"],
                             "hashing_algorithm": "rabbit_password_hashing_sha256"})
    assert status == 201
    bad = api.call("PUT", "/api/users/x", {"password_hash": "bm90IGEgaGFzaA=="})
    assert bad[0] == 400
    assert api.call("PUT", "/api/users/y", {"password_hash": "x",
                                             "hashing_algorithm": "rabbit_password_hashing_md5"}
                    )[0] == 400
    assert api_of(b, "ops", "pw1").call("GET", "/api/overview")[0] == 200
    assert api_of(b, "hashed", "pw2").call("GET", "/api/users")[0] == 200
    listed = {u["name"]: u for u in api.get("/api/users")}
    assert listed["hashed"]["password_hash"] == rabbit_hash("pw2")
    assert listed["ops"]["tags"] == ["monitoring"]
    assert "pw1" not in json.dumps(listed)
    assert api.call("DELETE", "/api/users/ops")[0] == 204
    assert api.call("DELETE", "/api/users/ops")[0] == 404
    # A user made at run time has no permissions until given some (as RabbitMQ).
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(pika.URLParameters(
            f"amqp://hashed:pw2@127.0.0.1:{b.amqp_port}/%2F"))
    assert api.call("PUT", "/api/permissions/%2F/hashed",
                    {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
    data = b.data_dir
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    b2 = node(data_dir=data)
    assert api_of(b2, "hashed", "pw2").call("GET", "/api/whoami")[0] == 200
    assert api_of(b2, "ops", "pw1").call("GET", "/api/whoami")[0] == 401
    conn = pika.BlockingConnection(pika.URLParameters(
        f"amqp://hashed:pw2@127.0.0.1:{b2.amqp_port}/%2F"))
    conn.close()


def _topology(defs: dict) -> dict:
    """What a round trip must keep: everything but the product fields."""
    keep = {k: v for k, v in defs.items()
            if k not in ("product_name", "product_version", "rabbit_version",
                         "rabbitmq_version")}
    for k in ("queues", "exchanges", "bindings", "users", "vhosts"):
        keep[k] = sorted(keep.get(k, []), key=lambda o: json.dumps(o, sort_keys=True))
    return keep


@needs_rabbitmqadmin
def test_export_then_import_into_another_broker_is_lossless(node, tmp_path):
    import subprocess

    a = node(RABBIT_EXPORT)
    api_a = api_of(a)
    q = uname("rt")
    api_a.call("PUT", "/api/queues/%2F/" + q, {"durable": True,
                                                "arguments": {"x-dead-letter-exchange": "dlx"}})
    api_a.call("PUT", "/api/users/rt", {"password": "rt", "tags": "management"})
    out = tmp_path / "export.json"

    def admin(api, *args):
        r = subprocess.run([RABBITMQADMIN, "-H", api.host, "-P", str(api.port), "-u", "guest",
                            "-p", "guest", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    admin(api_a, "export", str(out))
    first = json.loads(out.read_text())
    assert q in {x["name"] for x in first["queues"]}
    b = node()
    api_b = api_of(b)
    admin(api_b, "import", str(out))
    again = api_b.get("/api/definitions")
    assert _topology(again) == _topology(first)
    # The user came over with its hash: it logs in on the second broker.
    assert api_of(b, "rt", "rt").call("GET", "/api/overview")[0] == 200


def test_a_real_rabbitmqctl_export_loads(node):
    """data/rabbitmq-3.10.8-definitions.json is what `rabbitmqctl export_definitions`
    wrote on Debian's RabbitMQ 3.10.8 after: vhost shop, exchange orders (topic),
    queue orders.eu (x-dead-letter-exchange), binding eu.#, policy cap
    (max-length 500, ha-mode all) and user shopper/sh0p (management)."""
    from pathlib import Path

    defs = json.loads((Path(__file__).parent / "data" /
                       "rabbitmq-3.10.8-definitions.json").read_text())
    b = node(defs)
    api = api_of(b, "shopper", "sh0p")
    q = api.get("/api/queues/shop/orders.eu")
    assert q["arguments"] == {"x-dead-letter-exchange": "dlx", "x-max-length": 500}
    assert api.get("/api/exchanges/shop/orders")["type"] == "topic"
    assert ("orders", "orders.eu", "eu.#") in {
        (x["source"], x["destination"], x["routing_key"]) for x in api.get("/api/bindings/shop")}
    # guest's exported hash is of "guest": it still logs in (and still signs SigV4).
    assert api_of(b).call("GET", "/api/whoami")[0] == 200
