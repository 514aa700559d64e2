"""Credentials: valid ones accepted, wrong ones refused with the CONNACK code of the
protocol version; anonymous clients from loopback accepted (Switchboard's default and
the reference mosquitto's allow_anonymous).

On an external broker the password tests use a private mosquitto with a password file
(user guest/guest), see the ``mqtt_auth`` fixture."""

from __future__ import annotations

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS

REFUSED = {3: (4, 5), 4: (4, 5), 5: (0x86, 0x87)}  # bad user name or password / not authorized


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_valid_credentials_accepted(mqtt_clients, mqtt_auth, version):
    topic = mu.topic_prefix() + "/auth"
    c = mqtt_clients(version, ep=mqtt_auth, username=mqtt_auth.username,
                     password=mqtt_auth.password)
    assert c.connect().rc == 0
    c.subscribe(topic, qos=1)
    c.publish(topic, "authenticated", qos=1)
    assert c.wait_for(1)[0].payload == b"authenticated"


@pytest.mark.parametrize("creds", ["wrong-password", "unknown-user", "no-password"])
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_bad_credentials_refused(mqtt_clients, mqtt_auth, version, creds):
    user, pw = {"wrong-password": (mqtt_auth.username, "not-the-password"),
                "unknown-user": ("no-such-user-" + mu.uid(), "guest"),
                "no-password": (mqtt_auth.username, None)}[creds]
    r = mqtt_clients.raw(version, ep=mqtt_auth)
    ack = r.connect(username=user, password=pw)
    assert ack.rc in REFUSED[version], f"expected CONNACK {REFUSED[version]}, got {ack}"
    assert ack.session_present is False
    assert r.read_until_closed() == []


def test_paho_sees_refusal_and_closed_connection(mqtt_clients, mqtt_auth):
    c = mqtt_clients(5, ep=mqtt_auth, username=mqtt_auth.username, password="nope")
    ack = c.connect(expect_ok=False)
    assert ack.rc in REFUSED[5]
    c.wait_disconnected()
    assert not c.connected


def test_refused_client_cannot_publish(mqtt_clients, mqtt_auth):
    """A client that ignores the refusal and publishes anyway reaches nobody."""
    topic = mu.topic_prefix() + "/sneak"
    watcher = mqtt_clients(4, ep=mqtt_auth, username=mqtt_auth.username,
                           password=mqtt_auth.password)
    watcher.connect()
    watcher.subscribe(topic, qos=0)
    r = mqtt_clients.raw(4, ep=mqtt_auth)
    r.send(mu.connect_packet(mu.client_id(), username="x", password="y")
           + mu.publish_packet(topic, b"sneaked"))
    r.read_until_closed()
    watcher.publish(topic, "fence", qos=1)
    assert [m.payload for m in watcher.wait_for(1)] == [b"fence"]
    assert mu.stays(lambda: len(watcher.received()) == 1, 0.3)


def test_anonymous_client_from_loopback_accepted(mqtt_clients):
    r = mqtt_clients.raw(4)
    assert r.connect().rc == 0
    c = mqtt_clients(5)
    assert c.connect().rc == 0
