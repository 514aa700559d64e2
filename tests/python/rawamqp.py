"""A deliberately tiny hand-written AMQP 0-9-1 client for sending bad input.

Only what the malformed-input tests need: frame encode/decode, the connection
handshake (PLAIN), channel.open, and parsing of connection.close / channel.close.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
BASIC_PUBLISH = (60, 40)


def shortstr(s: bytes) -> bytes:
    assert len(s) < 256
    return bytes([len(s)]) + s


def longstr(s: bytes) -> bytes:
    return struct.pack(">I", len(s)) + s


def frame(ftype: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method_frame(channel: int, cm: tuple, args: bytes = b"", end: int = FRAME_END) -> bytes:
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *cm) + args, end)


def content_header_frame(channel: int, body_size: int, class_id: int = 60,
                         flags: int = 0, props: bytes = b"") -> bytes:
    return frame(FRAME_HEADER, channel,
                 struct.pack(">HHQH", class_id, 0, body_size, flags) + props)


def body_frame(channel: int, body: bytes) -> bytes:
    return frame(FRAME_BODY, channel, body)


def heartbeat_frame(channel: int = 0) -> bytes:
    return frame(FRAME_HEARTBEAT, channel, b"")


def basic_publish_args(exchange: bytes, routing_key: bytes, flags: int = 0) -> bytes:
    return struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) + bytes([flags])


@dataclass
class Frame:
    type: int
    channel: int
    payload: bytes

    @property
    def method(self) -> Optional[tuple]:
        if self.type != FRAME_METHOD or len(self.payload) < 4:
            return None
        return struct.unpack(">HH", self.payload[:4])


@dataclass
class Close:
    """A connection.close or channel.close as received."""
    channel: int
    reply_code: int
    reply_text: str
    class_id: int
    method_id: int


def parse_close(f: Frame) -> Close:
    p = f.payload[4:]
    (code,) = struct.unpack(">H", p[:2])
    n = p[2]
    text = p[3:3 + n].decode("utf-8", "replace")
    class_id, method_id = struct.unpack(">HH", p[3 + n:7 + n])
    return Close(f.channel, code, text, class_id, method_id)


class EOF(Exception):
    pass


class RawConnection:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frame_max = 131072
        self.dribble = False  # send one byte per write (exercises frame reassembly)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes):
        if not self.dribble:
            self.sock.sendall(data)
            return
        for b in data:
            self.sock.sendall(bytes([b]))
            time.sleep(0.0005)

    def recv_exact(self, n: int, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"wanted {n} bytes, have {len(self.buf)}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise EOF(f"EOF after {len(self.buf)} of {n} bytes: {self.buf!r}")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout: float = 10.0) -> Frame:
        head = self.recv_exact(7, timeout)
        ftype, channel, size = struct.unpack(">BHI", head)
        payload = self.recv_exact(size, timeout)
        end = self.recv_exact(1, timeout)
        assert end == bytes([FRAME_END]), f"bad frame end from server: {end!r}"
        return Frame(ftype, channel, payload)

    def read_method(self, timeout: float = 10.0, skip_heartbeats: bool = True) -> Frame:
        while True:
            f = self.read_frame(timeout)
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            return f

    def expect_method(self, cm: tuple, timeout: float = 10.0) -> Frame:
        f = self.read_method(timeout)
        assert f.method == cm, f"expected {cm}, got {f}"
        return f

    def wait_eof(self, timeout: float = 10.0) -> bytes:
        """Read until the server closes the socket; return what came before."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"server did not close the socket (got {data!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def handshake(self, user: bytes = b"guest", password: bytes = b"guest",
                  vhost: bytes = b"/", heartbeat: int = 0) -> None:
        self.send(PROTOCOL_HEADER)
        self.expect_method(CONNECTION_START)
        response = b"\x00" + user + b"\x00" + password
        self.send(method_frame(0, CONNECTION_START_OK,
                               struct.pack(">I", 0) + shortstr(b"PLAIN")
                               + longstr(response) + shortstr(b"en_US")))
        tune = self.expect_method(CONNECTION_TUNE)
        channel_max, frame_max, _hb = struct.unpack(">HIH", tune.payload[4:12])
        self.frame_max = frame_max or 131072
        self.send(method_frame(0, CONNECTION_TUNE_OK,
                               struct.pack(">HIH", channel_max, self.frame_max, heartbeat)))
        self.send(method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr(b"") + b"\x00"))
        self.expect_method(CONNECTION_OPEN_OK)

    def open_channel(self, channel: int = 1) -> None:
        self.send(method_frame(channel, CHANNEL_OPEN, shortstr(b"")))
        f = self.expect_method(CHANNEL_OPEN_OK)
        assert f.channel == channel

    def expect_connection_close(self, timeout: float = 10.0) -> Close:
        """Read frames until connection.close; answer close-ok; require EOF."""
        while True:
            f = self.read_method(timeout)
            if f.method == CONNECTION_CLOSE:
                assert f.channel == 0, f
                close = parse_close(f)
                try:
                    self.send(method_frame(0, CONNECTION_CLOSE_OK))
                except OSError:
                    pass
                self.wait_eof(timeout)
                return close
