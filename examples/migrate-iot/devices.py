#!/usr/bin/env python3
"""Sensors as they were written for mosquitto (paho-mqtt 2): each device connects
with a will (`devices/<id>/status` = "lost", retained, QoS 1), publishes a
retained "online" status, then telemetry on `devices/<id>/telemetry` at QoS 1, and
says "offline" itself when it shuts down cleanly. `--crash ID` makes that device
drop its connection without a DISCONNECT, as a device losing power does: the broker
then publishes its will. The broker's address comes from MQTT_HOST / MQTT_PORT."""

import argparse
import json
import os
import random
import socket
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

HOST = os.environ.get("MQTT_HOST", "localhost")
PORT = int(os.environ.get("MQTT_PORT", "1883"))

p = argparse.ArgumentParser()
p.add_argument("--devices", type=int, default=3)
p.add_argument("--readings", type=int, default=10)
p.add_argument("--interval", type=float, default=0.1)
p.add_argument("--crash", default=None, help="device id that loses power at the end")
args = p.parse_args()

devices = {}
for i in range(args.devices):
    dev = f"sensor-{i + 1}"
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev, clean_session=True)
    c.will_set(f"devices/{dev}/status", "lost", qos=1, retain=True)
    c.connect(HOST, PORT, keepalive=10)
    c.loop_start()
    c.publish(f"devices/{dev}/status", "online", qos=1, retain=True).wait_for_publish(5)
    devices[dev] = c

rnd = random.Random(1)
sent = 0
for n in range(args.readings):
    for dev, c in devices.items():
        reading = {"device": dev, "n": n, "temp": round(20 + rnd.uniform(-2, 2), 2),
                   "ts": time.time()}
        c.publish(f"devices/{dev}/telemetry", json.dumps(reading), qos=1).wait_for_publish(5)
        sent += 1
    time.sleep(args.interval)

for dev, c in devices.items():
    if dev == args.crash:
        # power loss: the TCP connection ends without an MQTT DISCONNECT
        c.loop_stop()
        c.socket().shutdown(socket.SHUT_RDWR)
        c.socket().close()
        print(f"{dev}: lost power", flush=True)
    else:
        c.publish(f"devices/{dev}/status", "offline", qos=1, retain=True).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
print(f"devices sent {sent} readings", flush=True)
