"""Resource alarms as an MQTT publisher sees them: while the free-disk watermark is
above what the disk has, QoS 1 publishes get no PUBACK and reach nobody (the broker
stops reading the publisher's socket), while a subscriber on another connection keeps
working; after the limit is lowered (config file + SIGHUP) the held messages arrive
and are acknowledged. Nothing is dropped."""

from __future__ import annotations

import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import start_switchboard, stop_switchboard
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

        pub = _client(host, port, uniq("pub"))
        infos = [pub.publish(topic, f"m{i}".encode(), qos=1) for i in range(5)]
        # Longer than 1.5 x keepalive: the held publisher must not be dropped for
        # its unanswered pings.
        time.sleep(4.0)
        assert got == [], "a publish got through during the alarm"
        assert not any(i.is_published() for i in infos), "PUBACK during the alarm"

        cfg.write_text("[limits]\ndisk_free_limit = 0\n")
        b.proc.send_signal(signal.SIGHUP)
        for i in infos:
            i.wait_for_publish(timeout=10)
        with lock:
            lock.wait_for(lambda: len(got) == 5, timeout=10)
        assert sorted(got) == [f"m{i}".encode() for i in range(5)]
        pub.loop_stop()
        sub.loop_stop()
    finally:
        stop_switchboard(b)
