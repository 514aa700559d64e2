#!/usr/bin/env python3
"""The operators' dashboard (paho-mqtt 2): subscribes to every device's status and
prints what it sees for --seconds; retained statuses arrive at once on connect, so a
dashboard started late still knows every device. MQTT_HOST / MQTT_PORT as devices.py."""

import argparse
import json
import os
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

p = argparse.ArgumentParser()
p.add_argument("--seconds", type=float, default=2.0)
args = p.parse_args()
status = {}


def on_message(c, u, m):
    dev = m.topic.split("/")[1]
    status[dev] = m.payload.decode()
    print(json.dumps({"device": dev, "status": status[dev], "retained": bool(m.retain)}),
          flush=True)


c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dashboard-{os.getpid()}")
c.on_connect = lambda c, u, f, rc, p: c.subscribe("devices/+/status", qos=1)
c.on_message = on_message
c.connect(os.environ.get("MQTT_HOST", "localhost"), int(os.environ.get("MQTT_PORT", "1883")))
c.loop_start()
time.sleep(args.seconds)
c.disconnect()
c.loop_stop()
