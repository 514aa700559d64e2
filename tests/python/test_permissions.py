"""Permissions, RabbitMQ's model, enforced the same on every protocol: a user
allowed and a user denied try each action, and the denied one gets the
protocol's own error (AMQP 403 / 530, MQTT CONNACK 0x87 / SUBACK 0x87 / PUBACK
0x87 / disconnect for 3.1.1, STOMP ERROR, SQS AccessDenied, SNS
AuthorizationError). Permissions set through the admin API apply to new
operations and survive a restart."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse

import boto3
import botocore.config
import botocore.exceptions
import pika
import pytest
import stomp

import mqttutil
import support
from conftest import start_switchboard, stop_switchboard
from test_admin_api import Api

pytestmark = support.requires_switchboard("starts brokers with their own users")

# `app` may touch resources named app.* / app-* (and its MQTT session queues and
# SNS topics); `nothing` may open the vhost and do nothing; `stranger` has no
# permissions in "/" at all.
APP = r"^(app[.-]|sns\.app-|mqtt-session-app)"
CONFIG = f"""
[[users]]
name = "guest"
password = "guest"
tags = ["administrator"]

[[users]]
name = "app"
password = "pw"
permissions = [{{ vhost = "/", configure = '{APP}', write = '{APP}|^amq\\.topic$', read = '{APP}|^amq\\.topic$' }}]

[[users]]
name = "nothing"
password = "pw"
permissions = [{{ vhost = "/", configure = "", write = "", read = "" }}]

[[users]]
name = "stranger"
password = "pw"
permissions = []
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    d = tmp_path_factory.mktemp("perm")
    cfg = d / "switchboard.toml"
    cfg.write_text(CONFIG)
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    b.config_path = str(cfg)
    # A queue and an exchange `app` may not touch.
    conn = amqp(b, "guest", "guest")
    ch = conn.channel()
    ch.queue_declare("other.q")
    ch.basic_publish("", "other.q", b"secret")
    conn.close()
    yield b
    stop_switchboard(b)


def amqp(b, user, password):
    host, port = b.ports["amqp"]
    return pika.BlockingConnection(pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials(user, password)))


def refused(fn) -> tuple:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        fn()
    return e.value.reply_code, e.value.reply_text


# --- AMQP ------------------------------------------------------------------------

def test_amqp_allowed_user_works_within_its_patterns(node):
    conn = amqp(node, "app", "pw")
    ch = conn.channel()
    ch.queue_declare("app.q")
    ch.basic_publish("", "app.q", b"mine")
    m, _, body = ch.basic_get("app.q", auto_ack=True)
    assert body == b"mine"
    ch.queue_delete("app.q")
    conn.close()


def test_amqp_denials_are_403_with_rabbitmq_words(node):
    conn = amqp(node, "app", "pw")
    code, text = refused(lambda: conn.channel().queue_declare("other.q2"))
    assert code == 403
    assert text == ("ACCESS_REFUSED - configure access to queue 'other.q2' in vhost '/' "
                    "refused for user 'app'")
    code, text = refused(lambda: conn.channel().basic_get("other.q"))
    assert (code, text) == (403, "ACCESS_REFUSED - read access to queue 'other.q' in "
                                 "vhost '/' refused for user 'app'")
    # Same words whether the queue exists or not: nothing leaks.
    code, text2 = refused(lambda: conn.channel().basic_get("other.none"))
    assert text2 == text.replace("other.q'", "other.none'")
    code, text = refused(lambda: conn.channel().queue_delete("other.q"))
    assert "configure access to queue 'other.q'" in text
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("amq.fanout", "", b"x")
    assert e.value.reply_code == 403
    assert "write access to exchange 'amq.fanout'" in e.value.reply_text
    # Binding needs write on the queue and read on the exchange.
    ch = conn.channel()
    ch.queue_declare("app.bind")
    code, text = refused(lambda: ch.queue_bind("app.bind", "amq.direct", "k"))
    assert "read access to exchange 'amq.direct'" in text
    conn.channel().queue_delete("app.bind")
    conn.close()
    # The secret is still there: nothing the denials did changed anything.
    g = amqp(node, "guest", "guest")
    assert g.channel().queue_declare("other.q", passive=True).method.message_count == 1
    g.close()


def test_amqp_empty_patterns_allow_nothing_and_no_entry_refuses_the_vhost(node):
    conn = amqp(node, "nothing", "pw")
    code, _ = refused(lambda: conn.channel().queue_declare("app.q"))
    assert code == 403
    conn.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        amqp(node, "stranger", "pw")
    assert "NOT_ALLOWED - access to vhost '/' refused for user 'stranger'" in str(e.value)


# --- MQTT ------------------------------------------------------------------------

def mqtt(node, user, version, cid=None):
    c = mqttutil.Client(mqttutil.endpoint_from_ports(node.ports), version=version,
                        cid=cid or f"app-{mqttutil.uid()}", username=user, password="pw")
    return c


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_connect_refused_without_vhost_access(node, version):
    c = mqtt(node, "stranger", version)
    ack = c.connect(expect_ok=False)
    # 0x87 in 5.0; paho reports 3.1.1's return code 5 as the same reason.
    assert ack.rc == 0x87
    c.close()


def test_mqtt_topic_permissions_v5_suback_and_puback_0x87(node):
    api = Api(*node.ports["admin"])
    assert api.call("PUT", "/api/topic-permissions/%2F/app",
                    {"exchange": "amq.topic", "write": "^app\\.", "read": "^app\\."})[0] == 201
    try:
        c = mqtt(node, "app", 5)
        c.connect()
        assert c.subscribe("app/in", qos=1) == [1]
        assert c.subscribe("other/in", qos=1) == [0x87]
        ok = c.publish("app/in", b"fine", qos=1)
        assert c.pubacks.get(ok.mid, 0) == 0
        c.wait_for(1, topic="app/in")
        denied = c.publish("other/out", b"no", qos=1, retain=True)
        assert c.pubacks[denied.mid] == 0x87
        c.close()
        # A refused retained publish is not retained.
        watcher = mqtt(node, "guest", 5)
        watcher.paho.username_pw_set("guest", "guest")
        watcher.connect()
        watcher.subscribe("other/out", qos=1)
        assert mqttutil.stays(lambda: not watcher.received("other/out"))
        watcher.close()
    finally:
        api.call("DELETE", "/api/topic-permissions/%2F/app")


def test_mqtt_311_refusals_suback_0x80_and_disconnect_on_publish(node):
    api = Api(*node.ports["admin"])
    assert api.call("PUT", "/api/topic-permissions/%2F/app",
                    {"exchange": "amq.topic", "write": "^app\\.", "read": "^app\\."})[0] == 201
    try:
        c = mqtt(node, "app", 4)
        c.connect()
        assert c.subscribe("other/in", qos=1) == [0x80]
        c.publish("other/out", b"no", qos=1, wait=False)
        c.wait_disconnected()
        c.close()
    finally:
        api.call("DELETE", "/api/topic-permissions/%2F/app")


# --- STOMP -----------------------------------------------------------------------

class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.errors = []
        self.messages = []

    def on_error(self, frame):
        self.errors.append(frame)

    def on_message(self, frame):
        self.messages.append(frame)


def stomp_conn(node, user):
    host, port = node.ports["stomp"]
    c = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    lis = Listener()
    c.set_listener("l", lis)
    return c, lis


def test_stomp_send_and_subscribe_checked(node):
    c, lis = stomp_conn(node, "app")
    c.connect("app", "pw", wait=True)
    c.subscribe("/queue/app.stomp", id="1", ack="auto")
    c.send("/queue/app.stomp", "fine")
    support.wait_until(lambda: lis.messages, timeout=5)
    assert lis.messages[0].body == "fine"
    c.send("/queue/other.q", "no")
    support.wait_until(lambda: lis.errors, timeout=5)
    err = lis.errors[0]
    assert err.headers["message"] == "access_refused"
    # A send to /queue/ is a publish through the default exchange: write on
    # amq.default or on the queue it names would allow it.
    assert err.body == ("ACCESS_REFUSED - write access to exchange 'amq.default' in vhost '/' "
                        "refused for user 'app'")


def test_stomp_connect_refused_without_vhost_access(node):
    c, lis = stomp_conn(node, "stranger")
    with pytest.raises(stomp.exception.ConnectFailedException):
        c.connect("stranger", "pw", wait=True)
    assert lis.errors and "access denied" in lis.errors[0].body.lower() + \
        lis.errors[0].headers.get("message", "").lower()


# --- SQS and SNS -----------------------------------------------------------------

def aws(node, service, user):
    host, port = node.ports["http"]
    return boto3.client(service, endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                        aws_access_key_id=user,
                        aws_secret_access_key="guest" if user == "guest" else "pw",
                        config=botocore.config.Config(retries={"max_attempts": 0}))


def aws_error(fn) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn()
    return e.value.response["Error"]["Code"]


def test_sqs_actions_map_to_configure_write_read(node):
    app, guest = aws(node, "sqs", "app"), aws(node, "sqs", "guest")
    url = app.create_queue(QueueName="app-jobs")["QueueUrl"]
    app.send_message(QueueUrl=url, MessageBody="job")
    assert app.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"][0]["Body"] == "job"
    other = guest.create_queue(QueueName="other-jobs")["QueueUrl"]
    assert aws_error(lambda: app.create_queue(QueueName="other-new")) == "AccessDenied"
    assert aws_error(lambda: app.send_message(QueueUrl=other, MessageBody="x")) == "AccessDenied"
    assert aws_error(lambda: app.receive_message(QueueUrl=other)) == "AccessDenied"
    assert aws_error(lambda: app.delete_queue(QueueUrl=other)) == "AccessDenied"
    # A queue that does not exist is refused the same way: nothing leaks.
    missing = other.replace("other-jobs", "other-missing")
    assert aws_error(lambda: app.send_message(QueueUrl=missing, MessageBody="x")) == \
        "AccessDenied"
    names = [u.rsplit("/", 1)[1] for u in app.list_queues().get("QueueUrls", [])]
    assert "app-jobs" in names and "other-jobs" not in names
    nothing = aws(node, "sqs", "nothing")
    assert aws_error(lambda: nothing.get_queue_url(QueueName="app-jobs")) == "AccessDenied"
    stranger = aws(node, "sqs", "stranger")
    assert aws_error(lambda: stranger.list_queues()) == "AccessDenied"


def test_sns_topics_checked_as_exchanges(node):
    app, guest = aws(node, "sns", "app"), aws(node, "sns", "guest")
    mine = app.create_topic(Name="app-events")["TopicArn"]
    app.publish(TopicArn=mine, Message="hello")
    theirs = guest.create_topic(Name="other-events")["TopicArn"]
    assert aws_error(lambda: app.create_topic(Name="other-new")) == "AuthorizationError"
    assert aws_error(lambda: app.publish(TopicArn=theirs, Message="x")) == "AuthorizationError"
    assert aws_error(lambda: app.delete_topic(TopicArn=theirs)) == "AuthorizationError"


# --- Admin API and persistence ---------------------------------------------------

def test_permissions_through_the_api_apply_and_survive_sigkill(tmp_path):
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text('[[users]]\nname = "guest"\npassword = "guest"\ntags = ["administrator"]\n')
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        api = Api(*b.ports["admin"])
        assert api.call("PUT", "/api/users/ops", {"password": "pw", "tags": ""})[0] == 201
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            amqp(b, "ops", "pw")
        bad = api.call("PUT", "/api/permissions/%2F/ops",
                       {"configure": "(", "write": ".*", "read": ".*"})
        assert bad[0] == 400
        assert api.call("PUT", "/api/permissions/%2F/ops",
                        {"configure": "^ops\\.", "write": ".*", "read": ".*"})[0] == 201
        assert api.get("/api/permissions/%2F/ops") == {
            "user": "ops", "vhost": "/", "configure": "^ops\\.", "write": ".*", "read": ".*"}
        assert {"user": "ops", "vhost": "/", "configure": "^ops\\.", "write": ".*",
                "read": ".*"} in api.get("/api/users/ops/permissions")
        conn = amqp(b, "ops", "pw")
        conn.channel().queue_declare("ops.q")
        code, _ = refused(lambda: conn.channel().queue_declare("x.q"))
        assert code == 403
        conn.close()
        defs = api.get("/api/definitions")
        assert {"user": "ops", "vhost": "/", "configure": "^ops\\.", "write": ".*",
                "read": ".*"} in defs["permissions"]
        data = b.data_dir
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)}, data_dir=data)
        api = Api(*b.ports["admin"])
        conn = amqp(b, "ops", "pw")
        code, _ = refused(lambda: conn.channel().queue_declare("x.q"))
        assert code == 403
        conn.close()
        assert api.call("DELETE", "/api/permissions/%2F/ops")[0] == 204
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            amqp(b, "ops", "pw")
    finally:
        stop_switchboard(b)


def test_the_admin_api_acts_with_the_users_permissions(tmp_path):
    """A management user changes through the API only what its permissions allow
    (RabbitMQ's management plugin checks them the same way)."""
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text(
        '[[users]]\nname = "guest"\npassword = "guest"\ntags = ["administrator"]\n'
        '[[users]]\nname = "mgr"\npassword = "pw"\ntags = ["management"]\n'
        "permissions = [{ vhost = \"/\", configure = '^mine\\.', write = '^mine\\.|^amq\\.default$', "
        "read = '^mine\\.' }]\n")
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        host, port = b.ports["admin"]
        mgr = Api(host, port, "mgr", "pw")
        assert mgr.call("PUT", "/api/queues/%2F/mine.q", {"durable": True})[0] == 201
        status, body, _ = mgr.call("PUT", "/api/queues/%2F/other.q", {"durable": True})
        assert status == 401
        assert body["reason"] == ("configure access to queue 'other.q' in vhost '/' "
                                  "refused for user 'mgr'")
        assert mgr.call("POST", "/api/exchanges/%2F/amq.default/publish",
                        {"routing_key": "mine.q", "payload": "hi", "payload_encoding": "string",
                         "properties": {}})[0] == 200
        got = mgr.call("POST", "/api/queues/%2F/mine.q/get",
                       {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        assert got[0] == 200 and got[1][0]["payload"] == "hi"
        assert mgr.call("DELETE", "/api/queues/%2F/other.q")[0] == 401
        admin = Api(host, port)
        assert admin.call("PUT", "/api/vhosts/elsewhere")[0] in (201, 204)
        status, body, _ = mgr.call("PUT", "/api/queues/elsewhere/mine.q", {})
        assert status == 401
        assert "access to vhost 'elsewhere' refused for user 'mgr'" in body["reason"]
    finally:
        stop_switchboard(b)
