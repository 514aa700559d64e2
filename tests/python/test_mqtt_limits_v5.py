"""MQTT server-side limits a broker owes its clients: a maximum keepalive (mosquitto's
max_keepalive), and Receive Maximum in the client-to-broker direction (MQTT 5
3.3.4: a client may leave at most that many QoS 2 flows unfinished)."""

from __future__ import annotations

import pytest

import mqttutil as mu
from conftest import start_switchboard, stop_switchboard
from mqttutil import CONNACK, DISCONNECT, PUBREC

MAX_KEEPALIVE = 30


@pytest.fixture(scope="module", params=["switchboard", "mosquitto"])
def limited(request):
    """A broker whose maximum keepalive is 30 s: ours, and mosquitto set alike."""
    if request.param == "mosquitto":
        m = mu.Mosquitto(ws=False, extra=f"max_keepalive {MAX_KEEPALIVE}\n")
        if not m.binary:
            pytest.skip("mosquitto is not installed")
        m.start()
        yield mu.Endpoint(host="127.0.0.1", port=m.port)
        m.stop()
        return
    b = start_switchboard(env={"SWITCHBOARD_MQTT__MAX_KEEPALIVE": str(MAX_KEEPALIVE)})
    host, port = b.ports["mqtt"]
    yield mu.Endpoint(host=host, port=port)
    stop_switchboard(b)


@pytest.mark.parametrize("asked", [0, 600])
def test_v5_keepalive_above_the_maximum_is_lowered_in_connack(limited, asked):
    r = mu.Raw(limited, version=5)
    r.send(mu.connect_packet(mu.client_id(), version=5, keepalive=asked))
    ack = r.expect(CONNACK)
    assert ack.rc == 0
    assert ack.props.get("ServerKeepAlive") == MAX_KEEPALIVE
    r.close()


def test_v5_keepalive_within_the_maximum_is_kept(limited):
    r = mu.Raw(limited, version=5)
    r.send(mu.connect_packet(mu.client_id(), version=5, keepalive=10))
    ack = r.expect(CONNACK)
    assert ack.rc == 0 and "ServerKeepAlive" not in ack.props
    r.close()


def test_v311_keepalive_above_the_maximum_is_refused(limited, request):
    """3.1.1 cannot be told another keepalive: CONNACK 0x02, as newer mosquitto
    releases answer (their mosquitto.conf documents it)."""
    if "mosquitto" in request.node.callspec.id:
        pytest.skip("Debian's mosquitto 2.0.11 applies max_keepalive to 5.0 clients only")
    r = mu.Raw(limited, version=4)
    r.send(mu.connect_packet(mu.client_id(), version=4, keepalive=600))
    assert r.expect(CONNACK).rc == 0x02
    r.close()


@mu.requires_switchboard("our Receive Maximum (mqtt.max_inflight, 128)")
def test_v5_more_open_qos2_flows_than_receive_maximum_disconnects(mqtt):
    r = mu.Raw(mqtt, version=5)
    ack = r.connect(mu.client_id())
    limit = ack.props.get("ReceiveMaximum", 65535)
    t = mu.topic_prefix()
    for mid in range(1, limit + 1):
        r.send(mu.publish_packet(t, b"x", qos=2, mid=mid, version=5))
        assert r.expect(PUBREC).mid == mid
    r.send(mu.publish_packet(t, b"one too many", qos=2, mid=limit + 1, version=5))
    packets = r.read_until_closed()
    assert [(p.type, p.rc) for p in packets if p.type == DISCONNECT] == [(DISCONNECT, 0x93)]
