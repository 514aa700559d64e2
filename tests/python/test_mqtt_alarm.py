"""Resource alarms as an MQTT publisher sees them: while the free-disk watermark is
above what the disk has, QoS 1 publishes get no PUBACK and reach nobody (the broker
stops reading the publisher's socket), while a subscriber on another connection keeps
working; after the limit is lowered (config file + SIGHUP) the held messages arrive
and are acknowledged. Nothing is dropped."""

from __future__ import annotations

import signal
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import start_switchboard, stop_switchboard
from mqttutil import PINGRESP, PUBACK, Raw, endpoint_from_ports, pingreq_packet, publish_packet
from support import is_external, uniq

pytestmark = pytest.mark.skipif(is_external(), reason="controls the broker's limits")


def _client(host, port, cid):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
    c.connect(host, port, keepalive=2)
    c.loop_start()
    return c


def test_disk_alarm_holds_mqtt_publishes_until_cleared(tmp_path):
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text("[limits]\ndisk_free_limit = 9000000000000000000\n")
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        host, port = b.ports["mqtt"]
        topic = uniq("alarm").replace(".", "/")
        got = []
        lock = threading.Condition()

        def on_message(_c, _u, m):
            with lock:
                got.append(m.payload)
                lock.notify_all()

        sub = _client(host, port, uniq("sub"))
        sub.on_message = on_message
        sub.subscribe(topic, qos=1)
        time.sleep(1.0)  # let SUBACK arrive; the alarm monitor has run by now

        # A hand-made publisher: paho itself drops a connection whose PINGREQ goes
        # unanswered for a keepalive and then resends its QoS 1 messages, which
        # would hide what the broker does.
        pub = Raw(endpoint_from_ports(b.ports))
        pub.connect(keepalive=2)
        for i in range(5):
            pub.send(publish_packet(topic, f"m{i}".encode(), qos=1, mid=i + 1))
        pub.send(pingreq_packet())
        # Longer than 1.5 x keepalive: the held publisher must not be dropped for
        # its unanswered ping, and nothing may be acknowledged or delivered.
        with pytest.raises(socket.timeout):
            pub.read(timeout=4.0)
        assert got == [], "a publish got through during the alarm"

        cfg.write_text("[limits]\ndisk_free_limit = 0\n")
        b.proc.send_signal(signal.SIGHUP)
        acked = sorted(pub.expect(PUBACK, timeout=10).mid for _ in range(5))
        assert acked == [1, 2, 3, 4, 5]
        pub.expect(PINGRESP)
        with lock:
            lock.wait_for(lambda: len(got) == 5, timeout=10)
        assert sorted(got) == [f"m{i}".encode() for i in range(5)]
        pub.close()
        sub.loop_stop()
    finally:
        stop_switchboard(b)
