#!/usr/bin/env python3
"""A shop's messaging written for ActiveMQ's STOMP connector with stomp.py:

    app.py send-orders N        N orders to /queue/orders, persistent:true, JMSXGroupID =
                                the customer (ActiveMQ message groups: one customer's
                                orders go to one consumer, in order)
    app.py orders-consumer NAME client-individual acks, activemq.prefetchSize 1, until idle
    app.py send-prices N        N price updates to /topic/prices
    app.py price-watcher NAME S a plain topic subscriber for S seconds
    app.py audit S              a durable topic subscriber (client-id + activemq.subscriptionName)
                                for S seconds: what is published while it is away waits for it

The broker's address comes from STOMP_HOST / STOMP_PORT (on ActiveMQ: the host of the
broker and 61613). Prints one JSON line per result."""

import json
import os
import random
import sys
import threading
import time

import stomp

HOST = os.environ.get("STOMP_HOST", "localhost")
PORT = int(os.environ.get("STOMP_PORT", "61613"))
USER, PASSCODE = os.environ.get("STOMP_USER", "guest"), os.environ.get("STOMP_PASSCODE", "guest")


def connect(listener=None, **headers):
    c = stomp.Connection12([(HOST, PORT)], heartbeats=(10000, 10000))
    if listener:
        c.set_listener("app", listener)
    c.connect(USER, PASSCODE, wait=True, headers=headers)
    return c


def emit(**kw):
    print(json.dumps(kw), flush=True)


def send_orders(n):
    c = connect()
    customers = [f"cust-{i}" for i in range(1, 5)]
    seq = {cu: 0 for cu in customers}
    rnd = random.Random(3)
    for i in range(n):
        cu = rnd.choice(customers)
        seq[cu] += 1
        c.send("/queue/orders", json.dumps({"order": i, "customer": cu, "seq": seq[cu]}),
               headers={"persistent": "true", "JMSXGroupID": cu}, receipt=f"o{i}")
    c.disconnect(receipt="done")
    emit(sent_orders=n, per_customer=seq)


def orders_consumer(name, idle=3.0):
    seen, last = [], [time.monotonic()]
    rnd = random.Random(name)

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            o = json.loads(frame.body)
            t0 = time.time()
            time.sleep(rnd.uniform(0.001, 0.01))          # the work
            seen.append((o["customer"], o["seq"], frame.headers.get("JMSXGroupID"),
                         t0, time.time()))
            c.ack(frame.headers["ack"])     # STOMP 1.2: ACK id = the ack header
            last[0] = time.monotonic()

    c = connect(L())
    c.subscribe("/queue/orders", id="orders", ack="client-individual",
                headers={"activemq.prefetchSize": "1"})
    while time.monotonic() - last[0] < idle:
        time.sleep(0.1)
    c.disconnect()
    per = {}
    for cu, s, _, _, _ in seen:
        per.setdefault(cu, []).append(s)
    emit(consumer=name, orders=len(seen), customers=sorted(per),
         in_order={cu: v == sorted(v) for cu, v in per.items()},
         group_header=all(g == cu for cu, _, g, _, _ in seen),
         processed=[(cu, s, round(a, 4), round(b, 4)) for cu, s, _, a, b in seen])


def send_prices(n, start=0):
    c = connect()
    for i in range(start, start + n):
        c.send("/topic/prices", json.dumps({"sku": "widget", "price": 100 + i, "n": i}),
               headers={"persistent": "true"}, receipt=f"p{i}")
    c.disconnect(receipt="done")
    emit(sent_prices=list(range(start, start + n)))


def watch(name, seconds, durable=False):
    got = []

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            got.append(json.loads(frame.body)["n"])
            if durable:
                c.ack(frame.headers["ack"])     # STOMP 1.2: ACK id = the ack header

    if durable:
        c = connect(L(), **{"client-id": "audit-service"})
        c.subscribe("/topic/prices", id="audit", ack="client-individual",
                    headers={"activemq.subscriptionName": "audit"})
    else:
        c = connect(L())
        c.subscribe("/topic/prices", id="prices", ack="auto")
    emit(subscribed=name)
    time.sleep(seconds)
    c.disconnect()
    emit(watcher=name, prices=got)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "send-orders":
        send_orders(int(rest[0]))
    elif cmd == "orders-consumer":
        orders_consumer(rest[0])
    elif cmd == "send-prices":
        send_prices(int(rest[0]), int(rest[1]) if len(rest) > 1 else 0)
    elif cmd == "price-watcher":
        watch(rest[0], float(rest[1]))
    elif cmd == "audit":
        watch("audit", float(rest[0]), durable=True)
