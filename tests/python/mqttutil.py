"""MQTT helpers for the end-to-end suite (imported as ``mqttutil``).

* ``Endpoint``: where the MQTT (and MQTT-over-WebSocket) listeners are.
* ``Client``: a thin synchronous wrapper around paho-mqtt 2.x (one network thread per
  client, every callback recorded), for MQTT 3.1 (``version=3``), 3.1.1 (4) and 5.
* ``Raw``: a socket speaking hand-encoded MQTT packets, for bad input, exact reason
  codes and flow control that paho hides.
* ``Mosquitto``: runs a private mosquitto (reference broker) in a temporary directory;
  used by the restart and password tests when the suite targets an external broker.

Run ``python tests/python/mqttutil.py mosquitto`` to start a reference mosquitto in the
foreground; it prints the environment variables that point the suite at it.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest

from support import is_external, restartable_port, wait_until

MQTT_URL = os.environ.get("SWITCHBOARD_MQTT_URL")
MQTT_WS_URL = os.environ.get("SWITCHBOARD_MQTT_WS_URL")


def is_mqtt_external() -> bool:
    """True when the MQTT tests run against an external broker (mosquitto, RabbitMQ)."""
    return bool(MQTT_URL) or is_external()


def requires_switchboard(reason: str):
    """Skip a test when MQTT (or AMQP) points at an external reference broker.

    ``support.requires_switchboard`` only looks at SWITCHBOARD_AMQP_URL; the MQTT suite
    is validated against mosquitto through SWITCHBOARD_MQTT_URL alone."""
    return pytest.mark.skipif(is_mqtt_external(), reason=reason)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def topic_prefix() -> str:
    """A unique topic prefix, e.g. ``pytest/0123456789ab``."""
    return f"pytest/{uid()}"


def client_id() -> str:
    """A unique client id of 20 characters (MQTT 3.1 allows 23)."""
    return f"pyt-{uuid.uuid4().hex[:16]}"


def stays(pred: Callable[[], object], window: float = 0.5, interval: float = 0.05) -> bool:
    """True when ``pred`` holds for the whole window (for "nothing else arrives")."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        if not pred():
            return False
        time.sleep(interval)
    return bool(pred())


# ---------------------------------------------------------------------------------
# Endpoints


@dataclass
class Endpoint:
    host: str
    port: int
    ws_host: Optional[str] = None
    ws_port: Optional[int] = None
    ws_path: str = "/ws"
    external: bool = False
    name: str = "switchboard"
    # valid credentials (Switchboard: guest/guest); None = the broker takes anonymous
    username: Optional[str] = "guest"
    password: Optional[str] = "guest"

    @property
    def has_ws(self) -> bool:
        return self.ws_port is not None


def endpoint_from_env() -> Optional[Endpoint]:
    if not MQTT_URL:
        return None
    u = urllib.parse.urlsplit(MQTT_URL)
    ep = Endpoint(host=u.hostname or "127.0.0.1", port=u.port or 1883, external=True,
                  name="external", username=u.username, password=u.password)
    if MQTT_WS_URL:
        w = urllib.parse.urlsplit(MQTT_WS_URL)
        ep.ws_host = w.hostname or ep.host
        ep.ws_port = w.port or 15675
        ep.ws_path = w.path or "/ws"
    return ep


def endpoint_from_ports(ports: Dict[str, Tuple[str, int]]) -> Endpoint:
    if "mqtt" not in ports:
        pytest.fail(f"Switchboard's listening line has no mqtt listener: {ports}", pytrace=False)
    host, port = ports["mqtt"]
    ep = Endpoint(host=host, port=port)
    if "mqtt-ws" in ports:
        ep.ws_host, ep.ws_port = ports["mqtt-ws"]
    return ep


# ---------------------------------------------------------------------------------
# paho wrapper

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

PROTOCOLS = {3: paho.MQTTv31, 4: paho.MQTTv311, 5: paho.MQTTv5}
VERSIONS = [3, 4, 5]
VERSION_IDS = {3: "v31", 4: "v311", 5: "v5"}


def props(packet_type: int, values: Optional[Dict[str, Any]]) -> Optional[Properties]:
    """``props(PacketTypes.PUBLISH, {"UserProperty": [("k", "v")], ...})``."""
    if not values:
        return None
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def props_dict(p: Optional[Properties]) -> Dict[str, Any]:
    if p is None:
        return {}
    out = {}
    for name in p.names:
        k = name.replace(" ", "")
        if hasattr(p, k):
            out[k] = getattr(p, k)
    return out


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    props: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Connack:
    rc: int
    session_present: bool
    props: Dict[str, Any] = field(default_factory=dict)


class Client:
    """A connected-on-demand paho client whose events are recorded for assertions."""

    def __init__(self, ep: Endpoint, version: int = 4, cid: Optional[str] = None,
                 clean: bool = True, transport: str = "tcp", manual_ack: bool = False,
                 username: Optional[str] = None, password: Optional[str] = None,
                 will: Optional[Dict[str, Any]] = None):
        self.ep = ep
        self.version = version
        self.client_id = client_id() if cid is None else cid
        self.clean = clean
        self.transport = transport
        kw: Dict[str, Any] = {}
        if version != 5:
            kw["clean_session"] = clean
        self.paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                protocol=PROTOCOLS[version], transport=transport,
                                reconnect_on_failure=False, manual_ack=manual_ack, **kw)
        if transport == "websockets":
            self.paho.ws_set_options(path=ep.ws_path)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will:
            w = dict(will)
            if "properties" in w and isinstance(w["properties"], dict):
                w["properties"] = props(PacketTypes.WILLMESSAGE, w["properties"])
            self.paho.will_set(**w)
        self._cv = threading.Condition()
        self.messages: List[Msg] = []
        self.connack: Optional[Connack] = None
        self.disconnects: List[Tuple[int, Dict[str, Any]]] = []
        self.subacks: Dict[int, List[int]] = {}
        self.pubacks: Dict[int, int] = {}
        self.connected = False
        # called (on the network thread) after each message is recorded
        self.on_message: Optional[Callable[[Msg], None]] = None
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_publish = self._on_publish
        self.paho.on_unsubscribe = self._on_unsubscribe

    # callbacks (network thread)
    def _on_connect(self, c, ud, flags, rc, properties):
        with self._cv:
            self.connack = Connack(rc.value, bool(flags.session_present),
                                   props_dict(properties))
            self.connected = rc.value == 0
            self._cv.notify_all()

    def _on_disconnect(self, c, ud, flags, rc, properties):
        with self._cv:
            self.connected = False
            self.disconnects.append((rc.value, props_dict(properties)))
            self._cv.notify_all()

    def _on_message(self, c, ud, m):
        msg = Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup), m.mid,
                  props_dict(getattr(m, "properties", None)))
        with self._cv:
            self.messages.append(msg)
            self._cv.notify_all()
        if self.on_message:
            self.on_message(msg)

    def _on_subscribe(self, c, ud, mid, rcs, properties):
        with self._cv:
            self.subacks[mid] = [r.value for r in rcs]
            self._cv.notify_all()

    def _on_unsubscribe(self, c, ud, mid, rcs, properties):
        with self._cv:
            self.subacks[mid] = [r.value for r in rcs] if rcs else []
            self._cv.notify_all()

    def _on_publish(self, c, ud, mid, rc, properties):
        with self._cv:
            self.pubacks[mid] = rc.value
            self._cv.notify_all()

    def _wait(self, pred, timeout: float, what: str):
        with self._cv:
            if not self._cv.wait_for(pred, timeout=timeout):
                pytest.fail(f"{self.client_id}: timed out after {timeout}s waiting for {what}")

    # connection
    def connect(self, clean_start: bool = True, session_expiry: Optional[int] = None,
                properties: Optional[Dict[str, Any]] = None, keepalive: int = 30,
                timeout: float = 5.0, expect_ok: bool = True) -> Connack:
        with self._cv:
            self.connack = None
        host, port = self.ep.host, self.ep.port
        if self.transport == "websockets":
            host, port = self.ep.ws_host, self.ep.ws_port
        if self.version == 5:
            values = dict(properties or {})
            if session_expiry is not None:
                values["SessionExpiryInterval"] = session_expiry
            self.paho.connect(host, port, keepalive, clean_start=clean_start,
                              properties=props(PacketTypes.CONNECT, values))
        else:
            self.paho.connect(host, port, keepalive)
        self.paho.loop_start()
        self._wait(lambda: self.connack is not None or self.disconnects, timeout, "CONNACK")
        if self.connack is None:
            pytest.fail(f"{self.client_id}: connection closed before CONNACK "
                        f"({self.disconnects})")
        if expect_ok:
            assert self.connack.rc == 0, f"CONNACK refused: {self.connack}"
        return self.connack

    def reconnect(self, timeout: float = 5.0) -> Connack:
        """Reconnect the same paho object (keeps its in-flight QoS 2 state)."""
        self.paho.loop_stop()
        with self._cv:
            self.connack = None
            n = len(self.disconnects)
        self.paho.reconnect()
        self.paho.loop_start()
        self._wait(lambda: self.connack is not None or len(self.disconnects) > n, timeout,
                   "CONNACK after reconnect")
        assert self.connack is not None and self.connack.rc == 0, (self.connack,
                                                                   self.disconnects)
        return self.connack

    def disconnect(self, timeout: float = 5.0, properties: Optional[Dict[str, Any]] = None,
                   reasoncode=None):
        if self.connected:
            kw = {}
            if self.version == 5 and properties:
                kw["properties"] = props(PacketTypes.DISCONNECT, properties)
            if reasoncode is not None:
                kw["reasoncode"] = reasoncode
            n = len(self.disconnects)
            self.paho.disconnect(**kw)
            with self._cv:
                self._cv.wait_for(lambda: len(self.disconnects) > n, timeout=timeout)
        self.paho.loop_stop()

    def abort(self):
        """Drop the network connection without DISCONNECT (as a crashing client does)."""
        self.paho.loop_stop()
        sock = self.paho._sock
        if sock is not None:
            inner = getattr(sock, "_socket", sock)
            try:
                inner.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self.paho._sock = None
        self.connected = False

    def cut(self):
        """Break the connection from any thread (also from ``on_message``): the network
        thread notices, records a disconnect and stops."""
        sock = self.paho._sock
        inner = getattr(sock, "_socket", sock)
        if inner is not None:
            try:
                inner.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_disconnected(self, timeout: float = 5.0) -> Tuple[int, Dict[str, Any]]:
        self._wait(lambda: self.disconnects, timeout, "the broker to close the connection")
        return self.disconnects[-1]

    # pub/sub
    def subscribe(self, topic: Union[str, Sequence[Tuple[str, int]]], qos: int = 1,
                  no_local: bool = False, retain_as_published: bool = False,
                  retain_handling: int = 0, sub_id: Optional[int] = None,
                  timeout: float = 5.0) -> List[int]:
        """Subscribe and wait for the SUBACK; return its reason codes / granted QoS."""
        p = props(PacketTypes.SUBSCRIBE, {"SubscriptionIdentifier": sub_id} if sub_id else None)
        if self.version == 5:
            def opts(q):
                return SubscribeOptions(qos=q, noLocal=no_local,
                                        retainAsPublished=retain_as_published,
                                        retainHandling=retain_handling)
            if isinstance(topic, str):
                rc, mid = self.paho.subscribe(topic, options=opts(qos), properties=p)
            else:
                rc, mid = self.paho.subscribe([(t, opts(q)) for t, q in topic], properties=p)
        else:
            rc, mid = self.paho.subscribe(topic, qos) if isinstance(topic, str) \
                else self.paho.subscribe(list(topic))
        assert rc == paho.MQTT_ERR_SUCCESS, f"subscribe not sent: {rc}"
        self._wait(lambda: mid in self.subacks, timeout, f"SUBACK for {topic}")
        return self.subacks[mid]

    def unsubscribe(self, topic: str, timeout: float = 5.0):
        rc, mid = self.paho.unsubscribe(topic)
        assert rc == paho.MQTT_ERR_SUCCESS
        self._wait(lambda: mid in self.subacks, timeout, f"UNSUBACK for {topic}")

    def publish(self, topic: str, payload: Union[bytes, str] = b"", qos: int = 0,
                retain: bool = False, properties: Optional[Dict[str, Any]] = None,
                wait: bool = True, timeout: float = 5.0) -> paho.MQTTMessageInfo:
        """Publish; by default wait until sent (QoS 0) or acknowledged (QoS 1/2)."""
        p = props(PacketTypes.PUBLISH, properties) if self.version == 5 else None
        info = self.paho.publish(topic, payload, qos=qos, retain=retain, properties=p)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish to {topic!r} failed: {info.rc}"
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish to {topic!r} not acknowledged in {timeout}s"
        return info

    def received(self, topic: Optional[str] = None) -> List[Msg]:
        with self._cv:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_for(self, n: int = 1, topic: Optional[str] = None, timeout: float = 5.0) -> List[Msg]:
        """Wait until at least ``n`` messages (on ``topic``) have arrived; return them."""
        def enough():
            return len([m for m in self.messages if topic is None or m.topic == topic]) >= n
        with self._cv:
            if not self._cv.wait_for(enough, timeout=timeout):
                got = [(m.topic, m.payload[:40]) for m in self.messages]
                pytest.fail(f"{self.client_id}: expected {n} message(s)"
                            f"{' on ' + topic if topic else ''} within {timeout}s, got {got}")
        return self.received(topic)

    def close(self):
        try:
            self.disconnect(timeout=2)
        except Exception:
            pass
        try:
            self.paho.loop_stop()
        except Exception:
            pass


# ---------------------------------------------------------------------------------
# Raw packets

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
    8, 9, 10, 11, 12, 13, 14, 15
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
                6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
                11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 property identifiers and their value types
P_BYTE, P_U16, P_U32, P_VARINT, P_STR, P_BIN, P_PAIR = range(7)
PROPS = {
    0x01: ("PayloadFormatIndicator", P_BYTE), 0x02: ("MessageExpiryInterval", P_U32),
    0x03: ("ContentType", P_STR), 0x08: ("ResponseTopic", P_STR),
    0x09: ("CorrelationData", P_BIN), 0x0B: ("SubscriptionIdentifier", P_VARINT),
    0x11: ("SessionExpiryInterval", P_U32), 0x12: ("AssignedClientIdentifier", P_STR),
    0x13: ("ServerKeepAlive", P_U16), 0x15: ("AuthenticationMethod", P_STR),
    0x16: ("AuthenticationData", P_BIN), 0x17: ("RequestProblemInformation", P_BYTE),
    0x18: ("WillDelayInterval", P_U32), 0x19: ("RequestResponseInformation", P_BYTE),
    0x1A: ("ResponseInformation", P_STR), 0x1C: ("ServerReference", P_STR),
    0x1F: ("ReasonString", P_STR), 0x21: ("ReceiveMaximum", P_U16),
    0x22: ("TopicAliasMaximum", P_U16), 0x23: ("TopicAlias", P_U16),
    0x24: ("MaximumQoS", P_BYTE), 0x25: ("RetainAvailable", P_BYTE),
    0x26: ("UserProperty", P_PAIR), 0x27: ("MaximumPacketSize", P_U32),
    0x28: ("WildcardSubscriptionAvailable", P_BYTE),
    0x29: ("SubscriptionIdentifierAvailable", P_BYTE),
    0x2A: ("SharedSubscriptionAvailable", P_BYTE),
}
PROP_IDS = {name: (pid, t) for pid, (name, t) in PROPS.items()}
MULTI = {"UserProperty", "SubscriptionIdentifier"}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(v: Union[str, bytes]) -> bytes:
    """A length-prefixed MQTT string (bytes are sent as they are, e.g. invalid UTF-8)."""
    b = v.encode() if isinstance(v, str) else v
    return struct.pack("!H", len(b)) + b


def encode_props(values: Optional[Dict[str, Any]]) -> bytes:
    out = bytearray()
    for name, v in (values or {}).items():
        pid, t = PROP_IDS[name]
        for item in (v if name in MULTI and isinstance(v, list) else [v]):
            out += varint(pid)
            if t == P_BYTE:
                out += bytes([item])
            elif t == P_U16:
                out += struct.pack("!H", item)
            elif t == P_U32:
                out += struct.pack("!I", item)
            elif t == P_VARINT:
                out += varint(item)
            elif t in (P_STR, P_BIN):
                out += s(item)
            else:
                out += s(item[0]) + s(item[1])
    return varint(len(out)) + bytes(out)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_packet(cid: str = "", version: int = 4, clean: bool = True, keepalive: int = 30,
                   will: Optional[Dict[str, Any]] = None, username: Optional[str] = None,
                   password: Optional[str] = None, properties: Optional[Dict[str, Any]] = None,
                   proto_name: Optional[bytes] = None, level: Optional[int] = None) -> bytes:
    """``will = {"topic", "payload", "qos", "retain", "properties"}``."""
    if proto_name is None:
        proto_name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = s(proto_name) + bytes([level if level is not None else version, flags])
    body += struct.pack("!H", keepalive)
    if version == 5:
        body += encode_props(properties)
    body += s(cid)
    if will:
        if version == 5:
            body += encode_props(will.get("properties"))
        body += s(will["topic"]) + s(will.get("payload", b""))
    if username is not None:
        body += s(username)
    if password is not None:
        body += s(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic: Union[str, bytes], payload: Union[bytes, str] = b"", qos: int = 0,
                   retain: bool = False, dup: bool = False, mid: int = 1, version: int = 4,
                   properties: Optional[Dict[str, Any]] = None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = s(topic)
    if qos:
        body += struct.pack("!H", mid)
    if version == 5:
        body += encode_props(properties)
    body += payload.encode() if isinstance(payload, str) else payload
    return packet(PUBLISH, flags, body)


def subscribe_packet(filters: Sequence[Tuple[Union[str, bytes], int]], mid: int = 1,
                     version: int = 4, properties: Optional[Dict[str, Any]] = None) -> bytes:
    """``filters``: (filter, options byte) pairs; for 3.1.1 the byte is the QoS."""
    body = struct.pack("!H", mid)
    if version == 5:
        body += encode_props(properties)
    for f, o in filters:
        body += s(f) + bytes([o])
    return packet(SUBSCRIBE, 0x02, body)


def ack_packet(ptype: int, mid: int) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP (reason code omitted = success)."""
    return packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", mid))


def pingreq_packet() -> bytes:
    return packet(PINGREQ, 0, b"")


def disconnect_packet(version: int = 4, rc: int = 0,
                      properties: Optional[Dict[str, Any]] = None) -> bytes:
    if version == 5 and (rc or properties):
        return packet(DISCONNECT, 0, bytes([rc]) + encode_props(properties))
    return packet(DISCONNECT, 0, b"")


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    size: int  # whole packet, fixed header included
    # decoded fields (when they apply)
    rc: Optional[int] = None
    session_present: Optional[bool] = None
    mid: Optional[int] = None
    topic: Optional[str] = None
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    codes: List[int] = field(default_factory=list)
    props: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    def __repr__(self):
        bits = [self.name]
        for k in ("rc", "session_present", "mid", "topic", "qos", "retain", "dup"):
            v = getattr(self, k)
            if v not in (None, False, 0) or k == "rc" and v == 0:
                bits.append(f"{k}={v!r}")
        if self.payload:
            bits.append(f"payload={self.payload[:40]!r}")
        if self.codes:
            bits.append(f"codes={[hex(c) for c in self.codes]}")
        if self.props:
            bits.append(f"props={self.props}")
        return f"<{' '.join(bits)}>"


def _decode_props(b: bytes, i: int) -> Tuple[Dict[str, Any], int]:
    n, i = _read_varint(b, i)
    end = i + n
    out: Dict[str, Any] = {}
    while i < end:
        pid, i = _read_varint(b, i)
        name, t = PROPS.get(pid, (f"0x{pid:02x}", None))
        if t == P_BYTE:
            v, i = b[i], i + 1
        elif t == P_U16:
            v, i = struct.unpack_from("!H", b, i)[0], i + 2
        elif t == P_U32:
            v, i = struct.unpack_from("!I", b, i)[0], i + 4
        elif t == P_VARINT:
            v, i = _read_varint(b, i)
        elif t in (P_STR, P_BIN, P_PAIR):
            ln = struct.unpack_from("!H", b, i)[0]
            v, i = b[i + 2:i + 2 + ln], i + 2 + ln
            if t == P_STR:
                v = v.decode("utf-8", "replace")
            if t == P_PAIR:
                ln2 = struct.unpack_from("!H", b, i)[0]
                v = (v.decode("utf-8", "replace"),
                     b[i + 2:i + 2 + ln2].decode("utf-8", "replace"))
                i += 2 + ln2
        else:
            raise ValueError(f"unknown property 0x{pid:02x}")
        if name in MULTI:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out, end


def _read_varint(b: bytes, i: int) -> Tuple[int, int]:
    n, mult = 0, 1
    while True:
        c = b[i]
        i += 1
        n += (c & 0x7F) * mult
        if not c & 0x80:
            return n, i
        mult *= 128


def decode(ptype: int, flags: int, body: bytes, size: int, version: int) -> Packet:
    p = Packet(ptype, flags, body, size)
    v5 = version == 5
    if ptype == CONNACK:
        p.session_present = bool(body[0] & 1)
        p.rc = body[1]
        if v5 and len(body) > 2:
            p.props, _ = _decode_props(body, 2)
    elif ptype == PUBLISH:
        p.qos, p.retain, p.dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
        ln = struct.unpack_from("!H", body, 0)[0]
        p.topic = body[2:2 + ln].decode("utf-8", "replace")
        i = 2 + ln
        if p.qos:
            p.mid = struct.unpack_from("!H", body, i)[0]
            i += 2
        if v5:
            p.props, i = _decode_props(body, i)
        p.payload = body[i:]
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
        p.mid = struct.unpack_from("!H", body, 0)[0]
        i = 2
        if ptype in (SUBACK, UNSUBACK):
            if v5:
                p.props, i = _decode_props(body, i)
            p.codes = list(body[i:])
        else:
            p.rc = body[2] if len(body) > 2 else 0
            if v5 and len(body) > 3:
                p.props, _ = _decode_props(body, 3)
    elif ptype == DISCONNECT:
        p.rc = body[0] if body else 0
        if len(body) > 1:
            p.props, _ = _decode_props(body, 1)
    return p


class Closed(Exception):
    """The broker closed the connection; ``packets`` are what it sent before."""


class Raw:
    """One TCP connection speaking hand-made MQTT packets."""

    def __init__(self, ep: Endpoint, version: int = 4, timeout: float = 5.0):
        self.version = version
        self.sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _split(self) -> Optional[Tuple[int, int, bytes, int]]:
        b = self.buf
        if len(b) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(b):
                return None
            c = b[i]
            n += (c & 0x7F) * mult
            mult *= 128
            i += 1
            if not c & 0x80:
                break
        if len(b) < i + n:
            return None
        self.buf = b[i + n:]
        return b[0] >> 4, b[0] & 0x0F, b[i:i + n], i + n

    def read(self, timeout: float = 5.0) -> Packet:
        """The next packet; raises ``Closed`` at end of stream, socket.timeout if none."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._split()
            if got:
                return decode(*got, version=self.version)
            if self.eof or not self._fill(deadline):
                raise Closed(f"connection closed (pending bytes {self.buf!r})")

    def expect(self, ptype: int, timeout: float = 5.0) -> Packet:
        p = self.read(timeout)
        assert p.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {p!r}"
        return p

    def connect(self, cid: Optional[str] = None, **kw) -> Packet:
        kw.setdefault("version", self.version)
        self.send(connect_packet(client_id() if cid is None else cid, **kw))
        return self.expect(CONNACK)

    def subscribe(self, filters: Sequence[Tuple[str, int]], mid: int = 1, **kw) -> Packet:
        self.send(subscribe_packet(filters, mid=mid, version=self.version, **kw))
        return self.expect(SUBACK)

    def read_until_closed(self, timeout: float = 5.0) -> List[Packet]:
        """Read until the broker closes the connection; fail if it is still open."""
        deadline = time.monotonic() + timeout
        got: List[Packet] = []
        while True:
            try:
                got.append(self.read(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got
            except socket.timeout:
                pytest.fail(f"connection still open after {timeout}s (received {got})")
            except OSError:
                return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------
# Reference mosquitto


class Mosquitto:
    """A private mosquitto with persistence (and optionally a password file)."""

    def __init__(self, users: Optional[Dict[str, str]] = None, ws: bool = True,
                 extra: str = ""):
        self.binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        self.dir = tempfile.mkdtemp(prefix="mosquitto-pytest-")
        self.port = restartable_port()
        self.ws_port = restartable_port() if ws else None
        self.users = users
        self.extra = extra
        self.proc: Optional[subprocess.Popen] = None
        self.log = os.path.join(self.dir, "mosquitto.log")

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 "persistence true", f"persistence_location {self.dir}/",
                 "user root", "log_dest stderr", "log_type error", "log_type warning"]
        if self.users:
            pw = os.path.join(self.dir, "passwd")
            if not os.path.exists(pw):
                open(pw, "w").close()
                for u, p in self.users.items():
                    subprocess.run(["mosquitto_passwd", "-b", pw, u, p], check=True,
                                   capture_output=True)
            lines.append(f"password_file {pw}")
        if self.ws_port:
            lines += [f"listener {self.ws_port} 127.0.0.1", "protocol websockets"]
        return "\n".join(lines) + "\n" + self.extra

    def start(self) -> "Mosquitto":
        if not self.binary:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {open(self.log).read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=10, what="mosquitto to listen")
        return self

    def stop(self, kill: bool = False):
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=10)

    def endpoint(self) -> Endpoint:
        user = next(iter(self.users.items()), (None, None)) if self.users else (None, None)
        return Endpoint(host="127.0.0.1", port=self.port, ws_host="127.0.0.1",
                        ws_port=self.ws_port, ws_path="/ws", external=True,
                        name="mosquitto", username=user[0], password=user[1])

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _serve_reference():
    m = Mosquitto()
    m.start()
    print(f"export SWITCHBOARD_MQTT_URL=mqtt://127.0.0.1:{m.port}")
    print(f"export SWITCHBOARD_MQTT_WS_URL=ws://127.0.0.1:{m.ws_port}/ws", flush=True)
    try:
        m.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        m.cleanup()


if __name__ == "__main__":
    if sys.argv[1:] == ["mosquitto"]:
        _serve_reference()
    else:
        sys.exit("usage: python tests/python/mqttutil.py mosquitto")
