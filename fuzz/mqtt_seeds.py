#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/mqtt_packet: every packet type of MQTT
3.1, 3.1.1 and 5.0, encoded by hand from the specifications.

Names (protocols/mqtt/tests/fuzz_corpus.rs checks them):
  valid_*         a client's stream from its CONNECT on: decodes whole, no error
  after311_*      packets that follow a 3.1.1 CONNECT: decode whole, no error
  after5_*        packets that follow a 5.0 CONNECT: decode whole, no error
  bad_*           refused by the handshake decoder
  s2c_*           server-to-client packets sent by a client: no panic, nothing more
Run from the repository root: python3 fuzz/mqtt_seeds.py
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "mqtt_packet")


def varint(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def p_byte(i, v):
    return bytes([i, v])


def p_u16(i, v):
    return bytes([i]) + u16(v)


def p_u32(i, v):
    return bytes([i]) + u32(v)


def p_str(i, v):
    return bytes([i]) + s(v)


def p_var(i, v):
    return bytes([i]) + varint(v)


def user(k, v):
    return bytes([0x26]) + s(k) + s(v)


# --- CONNECT ------------------------------------------------------------------

def connect3(name, level, client_id, clean=True, will=None, username=None, password=None,
             keep_alive=60):
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += s(topic) + s(msg)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    return pkt(0x10, s(name) + bytes([level, flags]) + u16(keep_alive) + payload)


def connect5(client_id, clean=True, cprops=b"\x00", will=None, username=None, password=None):
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will:
        topic, msg, qos, retain, wprops = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += wprops + s(topic) + s(msg)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    return pkt(0x10, s("MQTT") + bytes([5, flags]) + u16(60) + cprops + payload)


C31 = connect3("MQIsdp", 3, "fuzz31")
C311 = connect3("MQTT", 4, "fuzz311")
C5 = connect5("fuzz5")

# --- 3.x packets ------------------------------------------------------------------


def publish3(topic, payload, qos=0, pid=1, retain=False, dup=False):
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = s(topic) + (u16(pid) if qos else b"") + payload
    return pkt(first, body)


def subscribe3(pid, *filters):
    return pkt(0x82, u16(pid) + b"".join(s(f) + bytes([q]) for f, q in filters))


def unsubscribe3(pid, *filters):
    return pkt(0xA2, u16(pid) + b"".join(s(f) for f in filters))


PINGREQ = b"\xc0\x00"
DISCONNECT3 = b"\xe0\x00"


def ack(first, pid):
    return pkt(first, u16(pid))


v3_packets = {
    "publish_qos0": publish3("a/b", b"hello"),
    "publish_qos1": publish3("a/b", b"hello", qos=1, pid=7),
    "publish_qos2_retain_dup": publish3("v1.0/temp", b"21.5", qos=2, pid=8, retain=True, dup=True),
    "publish_empty_retained": publish3("a/b", b"", qos=1, pid=9, retain=True),
    "puback": ack(0x40, 7),
    "pubrec": ack(0x50, 8),
    "pubrel": ack(0x62, 8),
    "pubcomp": ack(0x70, 8),
    "subscribe": subscribe3(10, ("a/+/c", 0), ("a/#", 1), ("$SYS/#", 2)),
    "unsubscribe": unsubscribe3(11, "a/+/c", "a/#"),
    "pingreq": PINGREQ,
    "disconnect": DISCONNECT3,
}

s2c_v3 = {
    "connack": b"\x20\x02\x01\x00",
    "suback": pkt(0x90, u16(10) + b"\x00\x01\x80"),
    "unsuback": ack(0xB0, 11),
    "pingresp": b"\xd0\x00",
}

# --- 5.0 packets ------------------------------------------------------------------

PUB_PROPS = props(
    p_byte(0x01, 1),                       # payload format indicator
    p_u32(0x02, 30),                       # message expiry
    p_u16(0x23, 3),                        # topic alias
    p_str(0x08, "replies/v1.0/me"),        # response topic
    bytes([0x09]) + s(b"\xff\x00corr"),    # correlation data
    user("k", "a"), user("k", "b"),
    p_str(0x03, "application/json"),      # content type
)


def publish5(topic, payload, qos=0, pid=1, retain=False, dup=False, pprops=b"\x00"):
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = s(topic) + (u16(pid) if qos else b"") + pprops + payload
    return pkt(first, body)


def ack5(first, pid, reason=None, aprops=None):
    body = u16(pid)
    if reason is not None:
        body += bytes([reason])
        if aprops is not None:
            body += aprops
    return pkt(first, body)


def subscribe5(pid, sprops, *filters):
    return pkt(0x82, u16(pid) + sprops + b"".join(s(f) + bytes([o]) for f, o in filters))


def unsubscribe5(pid, uprops, *filters):
    return pkt(0xA2, u16(pid) + uprops + b"".join(s(f) for f in filters))


REASON = props(p_str(0x1F, "why"), user("x", "y"))

v5_packets = {
    "publish_qos0": publish5("a/b", b"hello"),
    "publish_qos1_props": publish5("a/b", b"{}", qos=1, pid=7, pprops=PUB_PROPS),
    "publish_qos2_retain": publish5("v1.0/temp", b"21.5", qos=2, pid=8, retain=True, dup=True),
    "publish_alias_only": publish5("", b"x", qos=1, pid=9, pprops=props(p_u16(0x23, 3))),
    "puback_short": ack5(0x40, 7),
    "puback_reason": ack5(0x40, 7, 0x10),
    "puback_props": ack5(0x40, 7, 0x80, REASON),
    "pubrec": ack5(0x50, 8, 0x00, b"\x00"),
    "pubrel": ack5(0x62, 8),
    "pubrel_notfound": ack5(0x62, 8, 0x92, REASON),
    "pubcomp": ack5(0x70, 8, 0x00),
    "subscribe_options": subscribe5(
        10, props(p_var(0x0B, 300000), user("u", "v")),
        ("a/+/c", 0x00), ("a/#", 0x01 | 0x04), ("r/#", 0x02 | 0x08 | 0x20),
        ("$share/g/jobs/#", 0x11)),
    "unsubscribe": unsubscribe5(11, props(user("u", "v")), "a/+/c", "$share/g/jobs/#"),
    "pingreq": PINGREQ,
    "disconnect_short": b"\xe0\x00",
    "disconnect_with_will": pkt(0xE0, b"\x04"),
    "disconnect_props": pkt(0xE0, b"\x00" + props(p_u32(0x11, 0), p_str(0x1F, "bye"), user("a", "b"))),
    "auth": pkt(0xF0, b"\x18" + props(p_str(0x15, "SCRAM"), bytes([0x16]) + s(b"\x01\x02"))),
}

s2c_v5 = {
    "connack": pkt(0x20, b"\x01\x00" + props(p_u16(0x21, 128), p_u32(0x27, 1 << 20),
                                             p_u16(0x22, 64), p_str(0x12, "assigned"))),
    "suback": pkt(0x90, u16(10) + b"\x00" + b"\x00\x01\x02\x8f"),
    "unsuback": pkt(0xB0, u16(11) + b"\x00" + b"\x00\x11"),
    "pingresp": b"\xd0\x00",
    "disconnect_taken_over": pkt(0xE0, b"\x8e" + props(p_str(0x1F, "taken over"))),
}

CONNECTS = {
    "v31_connect": C31,
    "v31_connect_will_auth": connect3("MQIsdp", 3, "fuzz31w", clean=False,
                                      will=("will/t", "gone", 1, True),
                                      username="guest", password="guest"),
    "v311_connect": C311,
    "v311_connect_empty_id": connect3("MQTT", 4, ""),
    "v311_connect_will_auth": connect3("MQTT", 4, "fuzz311w", clean=False,
                                       will=("will/t", "gone", 2, False),
                                       username="guest", password="guest", keep_alive=0),
    "v5_connect": C5,
    "v5_connect_all_props": connect5(
        "fuzz5p", clean=False,
        cprops=props(p_u32(0x11, 300), p_u16(0x21, 10), p_u32(0x27, 65536), p_u16(0x22, 8),
                     p_byte(0x19, 1), p_byte(0x17, 0), user("app", "fuzz")),
        will=("will/t", "gone", 1, True,
              props(p_u32(0x18, 5), p_byte(0x01, 1), p_u32(0x02, 60),
                    p_str(0x03, "text/plain"), p_str(0x08, "r/t"),
                    bytes([0x09]) + s(b"cd"), user("w", "1"))),
        username="guest", password="guest"),
    "v5_connect_auth_method": connect5("fuzz5a", cprops=props(p_str(0x15, "SCRAM"))),
}

BAD = {
    "not_connect_first": PINGREQ,
    "unknown_level": connect3("MQTT", 6, "x"),
    "unknown_name": connect3("MQTX", 4, "x"),
    "length_overflow": b"\x10\xff\xff\xff\xff\x01",
    "connect_too_large": b"\x10\xff\xff\x7f",
    "connect_truncated_name": b"\x10\x03\x00\x04M",
    "qos3_publish": C311 + b"\x36\x05\x00\x01a\x00\x01",
    "reserved_flags": C311 + b"\x83\x00",
    "packet_type_0": C5 + b"\x00\x00",
}


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in CONNECTS.items():
        write("valid_" + name, data)
    for name, data in v3_packets.items():
        write("valid_v31_" + name, C31 + data)
        write("valid_v311_" + name, C311 + data)
        write("after311_" + name, data)
    write("valid_v311_session", C311 + b"".join(v3_packets.values()))
    for name, data in v5_packets.items():
        write("valid_v5_" + name, C5 + data)
        write("after5_" + name, data)
    write("valid_v5_session", C5 + b"".join(v5_packets.values()))
    for name, data in s2c_v3.items():
        write("s2c_v311_" + name, C311 + data)
    for name, data in s2c_v5.items():
        write("s2c_v5_" + name, C5 + data)
    for name, data in BAD.items():
        write("bad_" + name, data)


if __name__ == "__main__":
    main()
