"""STOMP helpers for the end-to-end suite (imported as ``stomputil``).

* ``Endpoint``: where the STOMP (and STOMP-over-WebSocket) listeners are.
* ``Client``: a thin synchronous wrapper around stomp.py 8.x (``stomp.Connection10``,
  ``11`` and ``12``) that records every frame the broker sends and waits for them.
* ``Raw``: a plain socket speaking hand-encoded STOMP frames, for bad input, byte-wise
  writes, exact frame checks and heart-beats that stomp.py hides. ``WsRaw`` is the same
  over a WebSocket (websocket-client) with a chosen subprotocol.

The suite finds the broker through ``SWITCHBOARD_STOMP_URL`` (e.g.
``stomp://127.0.0.1:61613``, optional ``user:pass@``) and ``SWITCHBOARD_STOMP_WS_URL``
(e.g. ``ws://127.0.0.1:15674/ws``); with only ``SWITCHBOARD_AMQP_URL`` set it looks on
the same host at RabbitMQ's default ports (61613, 15674 ``/ws``); otherwise it uses the
session's Switchboard (``stomp=`` and ``stomp-ws=`` in its listening line).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest

from support import is_external

STOMP_URL = os.environ.get("SWITCHBOARD_STOMP_URL")
STOMP_WS_URL = os.environ.get("SWITCHBOARD_STOMP_WS_URL")

TIMEOUT = 5.0
# How long a broker may take to close a connection after a fatal ERROR frame.
# RabbitMQ 3.10 closes a refused CONNECT (bad login, unknown vhost, no common version,
# a frame before CONNECT) 10 s after its ERROR frame; Switchboard is held to 5 s.


def is_stomp_external() -> bool:
    """True when the STOMP tests run against an external broker (e.g. RabbitMQ)."""
    return bool(STOMP_URL) or is_external()


def requires_switchboard(reason: str):
    """Skip a test when STOMP (or AMQP) points at an external reference broker.

    Like ``support.requires_switchboard``, but also honours SWITCHBOARD_STOMP_URL alone."""
    return pytest.mark.skipif(is_stomp_external(), reason=reason)


def close_timeout() -> float:
    return 15.0 if is_stomp_external() else 5.0


def uid() -> str:
    return uuid.uuid4().hex[:12]


def qname(kind: str = "q") -> str:
    """A unique queue/key name usable in STOMP destinations: ``pytest.stomp-q.<hex>``."""
    return f"pytest.stomp-{kind}.{uid()}"


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
    login: str = "guest"
    passcode: str = "guest"
    vhost: str = "/"

    @property
    def has_ws(self) -> bool:
        return self.ws_port is not None

    @property
    def ws_url(self) -> str:
        return f"ws://{self.ws_host or self.host}:{self.ws_port}{self.ws_path}"


def endpoint_from_env() -> Optional[Endpoint]:
    if not STOMP_URL:
        return None
    u = urllib.parse.urlsplit(STOMP_URL)
    ep = Endpoint(host=u.hostname or "127.0.0.1", port=u.port or 61613, external=True,
                  name="external", login=u.username or "guest",
                  passcode=u.password or "guest")
    if STOMP_WS_URL:
        w = urllib.parse.urlsplit(STOMP_WS_URL)
        ep.ws_host = w.hostname or ep.host
        ep.ws_port = w.port or 15674
        ep.ws_path = w.path or "/ws"
    return ep


def endpoint_from_ports(ports: Dict[str, Tuple[str, int]]) -> Endpoint:
    if "stomp" not in ports:
        pytest.fail(f"Switchboard's listening line has no stomp listener: {ports}",
                    pytrace=False)
    host, port = ports["stomp"]
    ep = Endpoint(host=host, port=port)
    if "stomp-ws" in ports:
        ep.ws_host, ep.ws_port = ports["stomp-ws"]
    return ep


# ---------------------------------------------------------------------------------
# Frames: encoding and decoding by hand


_ESC_11 = {"\\": "\\\\", "\n": "\\n", ":": "\\c"}
_ESC_12 = {**_ESC_11, "\r": "\\r"}
_UNESC = {"\\\\": "\\", "\\n": "\n", "\\c": ":", "\\r": "\r"}


def escape(value: str, version: str) -> str:
    if version == "1.0":
        return value
    table = _ESC_12 if version == "1.2" else _ESC_11
    return "".join(table.get(ch, ch) for ch in value)


def unescape(value: str, version: str) -> str:
    if version == "1.0" or "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        pair = value[i:i + 2]
        if value[i] == "\\" and pair in _UNESC:
            out.append(_UNESC[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


Headers = Union[Dict[str, object], Sequence[Tuple[str, object]]]


def encode_frame(command: str, headers: Headers = (), body: Union[bytes, str] = b"",
                 version: str = "1.2", content_length: Union[bool, int] = False,
                 eol: bytes = b"\n") -> bytes:
    """One frame, headers in the given order (a list keeps repeats). Header values are
    escaped for 1.1/1.2 except in CONNECT/STOMP frames; ``content_length=True`` adds
    the body's length, an int adds that (possibly wrong) number."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if isinstance(body, str):
        body = body.encode()
    if content_length is True:
        pairs.append(("content-length", len(body)))
    elif content_length is not False:
        pairs.append(("content-length", content_length))
    esc = command not in ("CONNECT", "STOMP")
    lines = [command.encode()]
    for k, v in pairs:
        k, v = str(k), str(v)
        if esc:
            k, v = escape(k, version), escape(v, version)
        lines.append(f"{k}:{v}".encode())
    return eol.join(lines) + eol + eol + body + b"\x00"


@dataclass
class Frame:
    command: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first occurrence of a header (STOMP: the first one wins)."""
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(f"{self.command} frame has no {name!r} header: {self.headers}")
        return v

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def all(self, name: str) -> List[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def hdict(self) -> Dict[str, str]:
        d: Dict[str, str] = {}
        for k, v in self.headers:
            d.setdefault(k, v)
        return d

    def __repr__(self) -> str:
        return f"Frame({self.command}, {self.headers}, {self.body[:200]!r})"


class FrameParser:
    """Splits a byte stream into frames; EOLs between frames are heart-beats."""

    def __init__(self):
        self.buf = b""
        self.version = "1.0"

    def feed(self, data: bytes) -> List[Union[Frame, str]]:
        """Add bytes; return the complete frames (and "heartbeat" for each EOL between
        frames) found so far. EOLs that directly follow a frame in the same chunk are
        the frame's optional trailing EOLs, not heart-beats."""
        self.buf += data
        out: List[Union[Frame, str]] = []
        trailing = False
        while self.buf:
            eol = 2 if self.buf.startswith(b"\r\n") else 1 if self.buf.startswith(b"\n") else 0
            if eol:
                self.buf = self.buf[eol:]
                if not trailing:
                    out.append("heartbeat")
                continue
            if self.buf == b"\r":
                break
            f = self._one()
            if f is None:
                break
            out.append(f)
            trailing = True
        return out

    def _one(self) -> Optional[Frame]:
        end = self.buf.find(b"\n\n")
        end_crlf = self.buf.find(b"\r\n\r\n")
        if end < 0 and end_crlf < 0:
            return None
        if end < 0 or (0 <= end_crlf < end):
            head, body_at = self.buf[:end_crlf], end_crlf + 4
        else:
            head, body_at = self.buf[:end], end + 2
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        command, raw_headers = lines[0].rstrip("\r"), lines[1:]
        esc = command != "CONNECTED"
        headers = []
        for line in raw_headers:
            k, _, v = line.partition(":")
            if esc:
                k, v = unescape(k, self.version), unescape(v, self.version)
            headers.append((k, v))
        frame = Frame(command, headers)
        clen = frame.get("content-length")
        if clen is not None:
            n = int(clen)
            if len(self.buf) < body_at + n + 1:
                return None
            frame.body = self.buf[body_at:body_at + n]
            assert self.buf[body_at + n:body_at + n + 1] == b"\x00", \
                f"{command} frame: no NUL after content-length {n}"
            self.buf = self.buf[body_at + n + 1:]
        else:
            nul = self.buf.find(b"\x00", body_at)
            if nul < 0:
                return None
            frame.body = self.buf[body_at:nul]
            self.buf = self.buf[nul + 1:]
        if command == "CONNECTED":
            self.version = frame.get("version", "1.0")
        return frame


# ---------------------------------------------------------------------------------
# Raw connections


class Closed(Exception):
    pass


class Raw:
    """A hand-driven STOMP connection over a plain socket."""

    def __init__(self, ep: Endpoint, timeout: float = TIMEOUT):
        self.ep = ep
        self.timeout = timeout
        self.parser = FrameParser()
        self.frames: List[Frame] = []          # received, not yet taken by recv()
        self.heartbeats: List[float] = []      # monotonic time of each EOL received
        self.eof = False
        self.version = "1.0"
        self._open()

    # transport -------------------------------------------------------------------
    def _open(self):
        self.sock = socket.create_connection((self.ep.host, self.ep.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _write(self, data: bytes):
        self.sock.sendall(data)

    def _read(self, timeout: float) -> Optional[bytes]:
        """Up to a chunk of bytes; b"" at EOF; None on timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # sending ---------------------------------------------------------------------
    def send_bytes(self, data: bytes, bytewise: bool = False, delay: float = 0.0):
        """Write bytes as they are (one ``send`` per byte with ``bytewise``)."""
        if not bytewise:
            self._write(data)
            return
        for i in range(len(data)):
            self._write(data[i:i + 1])
            if delay:
                time.sleep(delay)

    def send(self, command: str, headers: Headers = (), body: Union[bytes, str] = b"",
             content_length: Union[bool, int] = False, **kw):
        self.send_bytes(encode_frame(command, headers, body, version=self.version,
                                     content_length=content_length), **kw)

    def connect(self, version: Optional[str] = "1.2", command: str = "CONNECT",
                login: Optional[str] = None, passcode: Optional[str] = None,
                host: Optional[str] = None, heart_beat: Optional[str] = None,
                headers: Headers = (), expect: Optional[str] = "CONNECTED") -> Frame:
        """Send CONNECT (or STOMP) and return the broker's answer (CONNECTED, or the
        ERROR when ``expect`` says so / is None). ``version`` is the accept-version
        header (None leaves it out: a 1.0 client); login and host default to the
        endpoint's."""
        h: List[Tuple[str, object]] = []
        if version is not None:
            h.append(("accept-version", version))
        h.append(("host", self.ep.vhost if host is None else host))
        h.append(("login", self.ep.login if login is None else login))
        h.append(("passcode", self.ep.passcode if passcode is None else passcode))
        if heart_beat is not None:
            h.append(("heart-beat", heart_beat))
        h.extend(list(headers.items()) if isinstance(headers, dict) else list(headers))
        self.send(command, h)
        f = self.recv()
        if f.command == "CONNECTED":
            self.version = f.get("version", "1.0")
        if expect is not None:
            assert f.command == expect, f"expected {expect}, got {f}"
        return f

    # receiving -------------------------------------------------------------------
    def _pump(self, timeout: float) -> bool:
        """Read once; False on timeout or EOF."""
        if self.eof:
            return False
        data = self._read(timeout)
        if data is None:
            return False
        if data == b"":
            self.eof = True
            return False
        for item in self.parser.feed(data):
            if item == "heartbeat":
                self.heartbeats.append(time.monotonic())
            else:
                self.frames.append(item)
        return True

    def poll(self, timeout: float = 0.0) -> Optional[Frame]:
        """The next frame, or None when none arrives in time / the connection closed."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            remaining = deadline - time.monotonic()
            if self.eof or remaining <= 0:
                if not self.eof and timeout == 0:
                    self._pump(0.001)
                    if self.frames:
                        break
                return None
            self._pump(remaining)
        return self.frames.pop(0)

    def recv(self, timeout: Optional[float] = None) -> Frame:
        f = self.poll(self.timeout if timeout is None else timeout)
        if f is None:
            raise Closed("connection closed" if self.eof else "no frame within timeout")
        return f

    def expect(self, command: str, timeout: Optional[float] = None) -> Frame:
        f = self.recv(timeout)
        assert f.command == command, f"expected {command}, got {f}"
        return f

    def wait_closed(self, timeout: Optional[float] = None) -> List[Frame]:
        """Read until the broker closes the connection; return the frames received
        meanwhile. Fails when the connection stays open."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"connection still open after {timeout or self.timeout}s "
                            f"(frames: {self.frames})")
            self._pump(remaining)
        out, self.frames = self.frames, []
        return out

    def error_then_close(self, timeout: Optional[float] = None) -> Frame:
        """Expect an ERROR frame (with a ``message`` header) and then the close."""
        frames = self.wait_closed(timeout)
        errors = [f for f in frames if f.command == "ERROR"]
        assert errors, f"no ERROR frame before the close (got {frames})"
        assert errors[0].get("message"), f"ERROR without a message header: {errors[0]}"
        return errors[0]

    def is_closed(self, timeout: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        return self.eof

    def roundtrip(self, receipt: Optional[str] = None) -> Frame:
        """A round trip that changes nothing: BEGIN and ABORT of an empty transaction,
        with a receipt on the ABORT. Frames that arrive first are kept for recv()."""
        tx = f"sync-{uid()}"
        receipt = receipt or f"r-{uid()}"
        self.send("BEGIN", [("transaction", tx)])
        self.send("ABORT", [("transaction", tx), ("receipt", receipt)])
        f = self.recv()
        while f.command == "MESSAGE":
            self.frames.append(f)
            f = self.recv()
        assert f.command == "RECEIPT" and f.get("receipt-id") == receipt, f
        return f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class WsRaw(Raw):
    """``Raw`` over a WebSocket with a given subprotocol list (each STOMP frame is sent
    as one WebSocket message, text by default)."""

    def __init__(self, ep: Endpoint, subprotocols: Optional[List[str]] = None,
                 binary: bool = False, timeout: float = TIMEOUT):
        self.subprotocols = subprotocols
        self.binary = binary
        super().__init__(ep, timeout)

    def _open(self):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(
            self.ep.ws_url, timeout=self.timeout, subprotocols=self.subprotocols,
            enable_multithread=True, skip_utf8_validation=True)
        self.subprotocol = self.ws.getsubprotocol()

    def _write(self, data: bytes):
        import websocket

        if self.binary:
            self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)
        else:
            self.ws.send(data.decode("utf-8"), opcode=websocket.ABNF.OPCODE_TEXT)

    def _read(self, timeout: float) -> Optional[bytes]:
        import websocket

        self.ws.settimeout(max(timeout, 0.001))
        try:
            opcode, data = self.ws.recv_data(control_frame=False)
        except (websocket.WebSocketTimeoutException, socket.timeout):
            return None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return b""
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return b""
        if isinstance(data, str):
            data = data.encode()
        return data

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


# ---------------------------------------------------------------------------------
# stomp.py wrapper


def _stomp():
    import stomp  # stomp.py 8.x

    return stomp


class Recorder:
    """A stomp.py listener that keeps every frame and lets tests wait for them."""

    def __init__(self):
        self.cond = threading.Condition()
        self.connected: List = []
        self.messages: List = []
        self.receipts: List[str] = []
        self.errors: List = []
        self.heartbeats: List[float] = []
        self.disconnected = False
        self.heartbeat_timeout = False

    def _add(self, lst, item):
        with self.cond:
            lst.append(item)
            self.cond.notify_all()

    # stomp.py callbacks
    def on_connected(self, frame):
        self._add(self.connected, frame)

    def on_message(self, frame):
        self._add(self.messages, frame)

    def on_receipt(self, frame):
        self._add(self.receipts, frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self._add(self.errors, frame)

    def on_heartbeat(self):
        self._add(self.heartbeats, time.monotonic())

    def on_heartbeat_timeout(self):
        with self.cond:
            self.heartbeat_timeout = True
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def wait(self, pred: Callable[[], object], timeout: float, what: str):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                pytest.fail(f"timed out after {timeout}s waiting for {what} "
                            f"(messages={len(self.messages)}, errors="
                            f"{[(e.headers, e.body) for e in self.errors]})")
            return pred()


class Client:
    """A stomp.py connection of the given protocol version (1.0, 1.1 or 1.2) whose
    listener records what the broker sends."""

    def __init__(self, ep: Endpoint, version: str = "1.2",
                 heartbeats: Tuple[int, int] = (0, 0), auto_decode: bool = True,
                 vhost: Optional[str] = None, ws: bool = False):
        stomp = _stomp()
        self.ep = ep
        self.version = version
        self.vhost = ep.vhost if vhost is None else vhost
        common = dict(reconnect_attempts_max=1, timeout=TIMEOUT, auto_decode=auto_decode,
                      heart_beat_receive_scale=2.0)
        if ws:
            from stomp.adapter.ws import WSStompConnection

            assert version == "1.2", "stomp.py's WebSocket transport speaks 1.2 only"
            self.conn = WSStompConnection([(ep.ws_host or ep.host, ep.ws_port)],
                                          ws_path=ep.ws_path, heartbeats=heartbeats,
                                          vhost=self.vhost, **common)
        elif version == "1.0":
            common.pop("heart_beat_receive_scale")
            self.conn = stomp.Connection10([(ep.host, ep.port)], **common)
        elif version == "1.1":
            self.conn = stomp.Connection11([(ep.host, ep.port)], heartbeats=heartbeats,
                                           vhost=self.vhost, **common)
        elif version == "1.2":
            self.conn = stomp.Connection12([(ep.host, ep.port)], heartbeats=heartbeats,
                                           vhost=self.vhost, **common)
        else:
            raise ValueError(version)
        self.rec = Recorder()
        self.conn.set_listener("recorder", self.rec)

    # connection ------------------------------------------------------------------
    def connect(self, login: Optional[str] = None, passcode: Optional[str] = None,
                headers: Optional[dict] = None, wait: bool = True, **kw) -> "Client":
        """Connect (raises stomp.exception.ConnectFailedException on an ERROR)."""
        headers = dict(headers or {})
        if self.version == "1.0" and self.vhost:
            headers.setdefault("host", self.vhost)
        self.conn.connect(self.ep.login if login is None else login,
                          self.ep.passcode if passcode is None else passcode,
                          wait=wait, headers=headers, **kw)
        if wait:  # the transport wakes up before our listener has seen the frame
            self.rec.wait(lambda: self.rec.connected or self.rec.errors, TIMEOUT,
                          "CONNECTED")
        return self

    @property
    def connected_frame(self):
        return self.rec.connected[0] if self.rec.connected else None

    def is_connected(self) -> bool:
        return self.conn.is_connected()

    def disconnect(self, timeout: float = TIMEOUT):
        if self.conn.is_connected():
            r = f"bye-{uid()}"
            self.conn.disconnect(receipt=r)
            self.rec.wait(lambda: r in self.rec.receipts or self.rec.disconnected,
                          timeout, "the DISCONNECT receipt")

    def close(self):
        """Disconnect if still connected; never raises."""
        try:
            if self.conn.is_connected():
                self.conn.disconnect(receipt=f"bye-{uid()}")
                with self.rec.cond:
                    self.rec.cond.wait_for(lambda: self.rec.disconnected, 2)
        except Exception:
            pass
        try:
            self.conn.transport.stop()
            self.conn.transport.disconnect_socket()
        except Exception:
            pass

    def wait_disconnected(self, timeout: float = TIMEOUT):
        self.rec.wait(lambda: self.rec.disconnected, timeout, "the broker to close")

    # frames ----------------------------------------------------------------------
    def receipt(self, rid: str, timeout: float = TIMEOUT):
        self.rec.wait(lambda: rid in self.rec.receipts, timeout, f"RECEIPT {rid}")

    def sync(self, timeout: float = TIMEOUT):
        """Round trip to the broker (a BEGIN/ABORT with a receipt): everything sent
        before has been processed when this returns."""
        tx = f"sync-{uid()}"
        r = f"r-{uid()}"
        self.conn.begin(tx)
        self.conn.abort(tx, headers={"receipt": r})
        self.receipt(r, timeout)

    def send(self, destination: str, body: Union[str, bytes] = "", receipt: bool = True,
             headers: Optional[dict] = None, transaction: Optional[str] = None,
             content_type: Optional[str] = None, **kw):
        """SEND; with ``receipt`` (default) wait until the broker confirms it."""
        headers = dict(headers or {})
        headers.update(kw)
        r = None
        if receipt:
            r = headers.setdefault("receipt", f"s-{uid()}")
        if transaction:
            headers["transaction"] = transaction
        self.conn.send(destination, body, content_type=content_type, headers=headers)
        if r:
            self.receipt(r)

    def subscribe(self, destination: str, ack: str = "auto", id: Optional[str] = None,
                  receipt: bool = True, headers: Optional[dict] = None, **kw) -> str:
        """SUBSCRIBE; returns the subscription id. Waits for the receipt by default, so
        the subscription is in place when this returns."""
        sid = id or f"sub-{uid()}"
        headers = dict(headers or {})
        headers.update(kw)
        r = headers.setdefault("receipt", f"sub-{uid()}") if receipt else None
        if self.version == "1.0":
            if id is not None or "id" not in headers:
                headers["id"] = sid
            self.conn.subscribe(destination, ack=ack, headers=headers)
        else:
            self.conn.subscribe(destination, sid, ack=ack, headers=headers)
        if r:
            self.receipt(r)
        return sid

    def unsubscribe(self, sid: str, receipt: bool = True, headers: Optional[dict] = None):
        headers = dict(headers or {})
        r = headers.setdefault("receipt", f"u-{uid()}") if receipt else None
        if self.version == "1.0":
            self.conn.unsubscribe(id=sid, headers=headers)
        else:
            self.conn.unsubscribe(sid, headers=headers)
        if r:
            self.receipt(r)

    def _ack_args(self, msg) -> dict:
        h = msg.headers
        if self.version == "1.2":
            return {"id": h["ack"]}
        if self.version == "1.1":
            return {"id": h["message-id"], "subscription": h["subscription"]}
        return {"id": h["message-id"]}

    def ack(self, msg, transaction: Optional[str] = None, receipt: bool = False):
        r = f"a-{uid()}" if receipt else None
        self.conn.ack(transaction=transaction, receipt=r, **self._ack_args(msg))
        if r:
            self.receipt(r)

    def nack(self, msg, transaction: Optional[str] = None, receipt: bool = False,
             **headers):
        r = f"n-{uid()}" if receipt else None
        self.conn.nack(transaction=transaction, receipt=r, **self._ack_args(msg), **headers)
        if r:
            self.receipt(r)

    def messages(self, n: int, timeout: float = TIMEOUT) -> list:
        """Wait for at least ``n`` messages in total; return all received so far."""
        self.rec.wait(lambda: len(self.rec.messages) >= n, timeout, f"{n} message(s)")
        with self.rec.cond:
            return list(self.rec.messages)

    def take(self, n: int, timeout: float = TIMEOUT) -> list:
        """Wait for ``n`` messages and remove them from the record."""
        self.messages(n, timeout)
        with self.rec.cond:
            got, self.rec.messages = self.rec.messages[:n], self.rec.messages[n:]
        return got

    def bodies(self, n: int, timeout: float = TIMEOUT) -> list:
        return [m.body for m in self.take(n, timeout)]

    def quiet(self, window: float = 0.5, count: int = 0) -> bool:
        """True when no more than ``count`` messages are recorded during the window."""
        return stays(lambda: len(self.rec.messages) <= count, window)

    def error(self, timeout: float = TIMEOUT):
        return self.rec.wait(lambda: self.rec.errors and self.rec.errors[0], timeout,
                             "an ERROR frame")


def ensure_queue(c: Client, name: str):
    """Declare the queue behind ``/queue/name`` (SUBSCRIBE declares it, RabbitMQ style)
    without consuming from it."""
    sid = c.subscribe(f"/queue/{name}")
    c.unsubscribe(sid)
