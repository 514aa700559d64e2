"""Shared fixtures for the Python end-to-end suite.

The suite runs against one of two brokers:

* an external broker when ``SWITCHBOARD_AMQP_URL`` is set, e.g. a local RabbitMQ
  (``SWITCHBOARD_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F``) -- this is how the
  tests themselves are validated against the reference behaviour;
* otherwise the real Switchboard binary (``SWITCHBOARD_BIN`` or
  ``<repo>/target/debug/switchboard``), started on ephemeral ports in a temporary
  data directory.

Every test creates its own uniquely named queues and exchanges, so all tests can
share one broker; whatever a test declares through the ``res`` fixture is deleted
again at teardown (nothing else is ever deleted).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pika
import pika.exceptions
import pytest

from support import EXTERNAL_URL, is_external, uniq

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0




@dataclass
class Broker:
    host: str
    amqp_port: int
    amqp_url: str
    external: bool
    ports: Dict[str, Tuple[str, int]] = field(default_factory=dict)
    proc: Optional[subprocess.Popen] = None
    data_dir: Optional[str] = None

    @property
    def amqp_url_no_vhost(self) -> str:
        """``amqp://user:pass@host:port`` (vhost left to the client's default "/")."""
        u = urllib.parse.urlsplit(self.amqp_url)
        return f"{u.scheme}://{u.netloc}"

    def params(self, **overrides) -> pika.URLParameters:
        p = pika.URLParameters(self.amqp_url)
        p.connection_attempts = 1
        p.socket_timeout = 10
        p.blocked_connection_timeout = 30
        for k, v in overrides.items():
            setattr(p, k, v)
        return p

    def connect(self, **overrides) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.params(**overrides))


def _url_to_broker(url: str) -> Broker:
    u = urllib.parse.urlsplit(url)
    host = u.hostname or "127.0.0.1"
    port = u.port or 5672
    return Broker(host=host, amqp_port=port, amqp_url=url, external=True,
                  ports={"amqp": (host, port)})


def _switchboard_bin() -> Path:
    env = os.environ.get("SWITCHBOARD_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "switchboard"


def parse_listening_line(line: str) -> Dict[str, Tuple[str, int]]:
    """Parse ``listening amqp=127.0.0.1:40123 mqtt=127.0.0.1:40124 ...``."""
    words = line.split()
    if not words or words[0] != "listening":
        raise ValueError(f"not a 'listening' line: {line!r}")
    out: Dict[str, Tuple[str, int]] = {}
    for w in words[1:]:
        key, _, addr = w.partition("=")
        host, _, port = addr.rpartition(":")
        out[key] = (host.strip("[]"), int(port))
    return out


def start_switchboard(env: Optional[Dict[str, str]] = None,
                      data_dir: Optional[str] = None) -> Broker:
    """Start the real binary; ``env`` adds SWITCHBOARD_* settings for this instance.

    ``data_dir`` reuses an existing data directory (a restart); by default a new
    temporary one is made."""
    binary = _switchboard_bin()
    if not binary.exists():
        pytest.fail(
            f"Switchboard binary not found at {binary} (build it with `cargo build`, "
            "set SWITCHBOARD_BIN, or set SWITCHBOARD_AMQP_URL to test an external broker)",
            pytrace=False,
        )
    data_dir = data_dir or tempfile.mkdtemp(prefix="switchboard-pytest-")
    stderr_file = tempfile.TemporaryFile(mode="w+b")
    cmd = [str(binary), "--data-dir", data_dir, "--bind", "127.0.0.1",
           "--amqp-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0",
           "--stomp-port", "0", "--stomp-ws-port", "0",
           "--http-port", "0", "--admin-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})

    def stderr_text() -> str:
        stderr_file.seek(0)
        return stderr_file.read().decode("utf-8", "replace")[-8000:]

    def fail(msg: str):
        _stop_process(proc)
        shutil.rmtree(data_dir, ignore_errors=True)
        pytest.fail(f"{msg}\ncommand: {' '.join(cmd)}\n--- stderr ---\n{stderr_text()}",
                    pytrace=False)

    deadline = time.monotonic() + STARTUP_TIMEOUT
    buf = b""
    line = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while line is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"switchboard printed no 'listening' line within {STARTUP_TIMEOUT:.0f}s "
                     f"(stdout so far: {buf!r})")
            if not sel.select(timeout=min(remaining, 0.5)):
                if proc.poll() is not None:
                    fail(f"switchboard exited with code {proc.returncode} before listening "
                         f"(stdout: {buf!r})")
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(timeout=5)
                fail(f"switchboard closed stdout (exit code {proc.returncode}) before "
                     f"listening (stdout: {buf!r})")
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").strip()
                if text.startswith("listening"):
                    line = text
                    break
    finally:
        sel.close()
    # Keep draining stdout so that a chatty server never blocks on a full pipe.
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    try:
        ports = parse_listening_line(line)
    except ValueError as e:
        fail(str(e))
    if "amqp" not in ports:
        fail(f"no amqp listener in {line!r}")
    host, port = ports["amqp"]
    url = f"amqp://guest:guest@{host}:{port}/%2F"
    b = Broker(host=host, amqp_port=port, amqp_url=url, external=False, ports=ports,
               proc=proc, data_dir=data_dir)
    b._stderr = stderr_text  # type: ignore[attr-defined]
    return b


def _drain(stream) -> None:
    try:
        while stream.read(65536):
            pass
    except (OSError, ValueError):
        pass


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def stop_switchboard(b: Broker) -> None:
    if b.proc is not None:
        _stop_process(b.proc)
    if b.data_dir:
        shutil.rmtree(b.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def external() -> bool:
    return is_external()


@pytest.fixture(scope="session")
def broker():
    if EXTERNAL_URL:
        yield _url_to_broker(EXTERNAL_URL)
        return
    b = start_switchboard()
    try:
        yield b
    finally:
        stop_switchboard(b)


@pytest.fixture
def fresh_broker(broker):
    """A broker of the test's own (Switchboard); the shared one when external."""
    if broker.external:
        yield broker
        return
    b = start_switchboard()
    try:
        yield b
    finally:
        stop_switchboard(b)


@pytest.fixture
def name() -> Callable[[str], str]:
    """``name("q")`` -> a unique name like ``pytest.q.0123456789ab``."""
    return uniq


@pytest.fixture
def conn(broker):
    c = broker.connect()
    yield c
    if c.is_open:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def ch(conn):
    return conn.channel()


class Resources:
    """Declares queues/exchanges and remembers them, to delete them at teardown."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.queues: List[str] = []
        self.exchanges: List[str] = []

    def queue(self, ch, name: Optional[str] = None, **kw) -> str:
        name = name or uniq("q")
        ok = ch.queue_declare(name, **kw)
        if not kw.get("exclusive"):
            self.queues.append(ok.method.queue)
        return ok.method.queue

    def exchange(self, ch, name: Optional[str] = None, exchange_type: str = "direct",
                 **kw) -> str:
        name = name or uniq("x")
        ch.exchange_declare(name, exchange_type, **kw)
        self.exchanges.append(name)
        return name

    def track_queue(self, name: str) -> str:
        self.queues.append(name)
        return name

    def track_exchange(self, name: str) -> str:
        self.exchanges.append(name)
        return name

    def cleanup(self) -> None:
        if not (self.queues or self.exchanges):
            return
        try:
            c = self.broker.connect()
        except Exception:
            return
        try:
            chan = c.channel()
            for kind, names in (("q", self.queues), ("x", self.exchanges)):
                for n in names:
                    try:
                        if kind == "q":
                            chan.queue_delete(n)
                        else:
                            chan.exchange_delete(n)
                    except pika.exceptions.ChannelClosedByBroker:
                        chan = c.channel()
        finally:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def res(broker):
    r = Resources(broker)
    yield r
    r.cleanup()


# ---------------------------------------------------------------------------------
# MQTT fixtures (see mqttutil.py). SWITCHBOARD_MQTT_URL / SWITCHBOARD_MQTT_WS_URL point
# them at an external broker (e.g. mosquitto); otherwise they use the session's
# Switchboard, whose listening line names the mqtt and mqtt-ws ports.

import mqttutil  # noqa: E402


@pytest.fixture(scope="session")
def mqtt(request) -> "mqttutil.Endpoint":
    """Where the MQTT listeners of the broker under test are."""
    ep = mqttutil.endpoint_from_env()
    if ep is not None:
        return ep
    b = request.getfixturevalue("broker")
    if b.external:
        # an external AMQP broker with its MQTT plugins (RabbitMQ's default ports)
        return mqttutil.Endpoint(host=b.host, port=1883, ws_host=b.host, ws_port=15675,
                                 external=True, name="external")
    return mqttutil.endpoint_from_ports(b.ports)


class MqttClients:
    """Makes paho clients and raw connections; closes them (and forgets the persistent
    sessions they left behind) at teardown."""

    def __init__(self, ep: "mqttutil.Endpoint"):
        self.ep = ep
        self.clients: List[mqttutil.Client] = []
        self.raws: List[mqttutil.Raw] = []
        self.sessions: Dict[str, Tuple[int, object]] = {}  # client id -> (version, endpoint)

    def __call__(self, version: int = 4, **kw) -> "mqttutil.Client":
        c = mqttutil.Client(kw.pop("ep", self.ep), version=version, **kw)
        self.clients.append(c)
        return c

    def connected(self, version: int = 4, clean: bool = True,
                  session_expiry: Optional[int] = None, **kw) -> "mqttutil.Client":
        """A client, connected (clean session unless ``clean=False``)."""
        ep = kw.get("ep", self.ep)
        c = self(version=version, clean=clean, **kw)
        if not clean:
            self.persistent(c.client_id, version, ep)
        c.connect(clean_start=clean, session_expiry=session_expiry)
        return c

    def persistent(self, cid: str, version: int, ep=None):
        """Remember a client id whose session must be discarded at teardown."""
        self.sessions[cid] = (version, ep or self.ep)

    def raw(self, version: int = 4, ep=None) -> "mqttutil.Raw":
        r = mqttutil.Raw(ep or self.ep, version=version)
        self.raws.append(r)
        return r

    def close(self):
        for c in self.clients:
            c.close()
        for r in self.raws:
            r.close()
        for cid, (version, ep) in self.sessions.items():
            try:
                c = mqttutil.Client(ep, version=max(version, 4), cid=cid, clean=True)
                c.connect(clean_start=True, session_expiry=0, timeout=3)
                c.close()
            except BaseException:
                pass


@pytest.fixture
def mqtt_clients(mqtt):
    m = MqttClients(mqtt)
    yield m
    m.close()


class RestartableMqtt:
    """A broker of the test's own that can be restarted keeping its data: a Switchboard
    (same data directory) or, when the suite targets an external broker, a private
    mosquitto with persistence (which saves its state on a clean shutdown)."""

    def __init__(self, env: Optional[Dict[str, str]] = None):
        self.mosquitto: Optional[mqttutil.Mosquitto] = None
        self.sb: Optional[Broker] = None
        self.env = env
        if mqttutil.is_mqtt_external():
            self.mosquitto = mqttutil.Mosquitto().start()
        else:
            self.sb = start_switchboard(env=env)

    @property
    def is_switchboard(self) -> bool:
        return self.sb is not None

    @property
    def endpoint(self) -> "mqttutil.Endpoint":
        if self.mosquitto:
            return self.mosquitto.endpoint()
        return mqttutil.endpoint_from_ports(self.sb.ports)

    @property
    def amqp(self) -> Optional[Broker]:
        return self.sb

    def restart(self, kill: bool = False) -> "mqttutil.Endpoint":
        """Stop (SIGTERM, or SIGKILL with ``kill``) and start again on the same data;
        return the new endpoint (Switchboard's ports change)."""
        if self.mosquitto:
            self.mosquitto.stop(kill=kill)
            self.mosquitto.start()
        else:
            if kill:
                self.sb.proc.kill()
                self.sb.proc.wait(timeout=10)
            else:
                _stop_process(self.sb.proc)
            self.sb = start_switchboard(env=self.env, data_dir=self.sb.data_dir)
        return self.endpoint

    def cleanup(self):
        if self.mosquitto:
            self.mosquitto.cleanup()
        if self.sb:
            stop_switchboard(self.sb)


@pytest.fixture
def restartable_mqtt():
    r = RestartableMqtt()
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture(scope="module")
def mqtt_auth(request):
    """An endpoint that checks passwords, with valid credentials in .username/.password:
    the session's Switchboard (guest/guest), or a private mosquitto with a password
    file when the suite targets an external broker."""
    if not mqttutil.is_mqtt_external():
        yield request.getfixturevalue("mqtt")
        return
    m = mqttutil.Mosquitto(users={"guest": "guest"}, ws=False)
    m.start()
    try:
        yield m.endpoint()
    finally:
        m.cleanup()


# ---------------------------------------------------------------------------------
# STOMP fixtures (see stomputil.py). SWITCHBOARD_STOMP_URL / SWITCHBOARD_STOMP_WS_URL
# point them at an external broker (e.g. RabbitMQ with rabbitmq_stomp and
# rabbitmq_web_stomp); otherwise they use the session's Switchboard, whose listening
# line names the stomp and stomp-ws ports.

import stomputil  # noqa: E402


@pytest.fixture(scope="session")
def stomp_ep(request) -> "stomputil.Endpoint":
    """Where the STOMP listeners of the broker under test are."""
    ep = stomputil.endpoint_from_env()
    if ep is not None:
        return ep
    b = request.getfixturevalue("broker")
    if b.external:
        # an external AMQP broker with its STOMP plugins (RabbitMQ's default ports)
        return stomputil.Endpoint(host=b.host, port=61613, ws_host=b.host, ws_port=15674,
                                  external=True, name="external")
    return stomputil.endpoint_from_ports(b.ports)


@pytest.fixture(scope="session")
def stomp_amqp(request) -> Broker:
    """The STOMP broker under test seen over AMQP (for cross-protocol tests); skips
    when SWITCHBOARD_STOMP_URL names a broker that SWITCHBOARD_AMQP_URL does not."""
    if stomputil.STOMP_URL and not EXTERNAL_URL:
        pytest.skip("SWITCHBOARD_STOMP_URL is set without SWITCHBOARD_AMQP_URL: "
                    "no AMQP view of the STOMP broker")
    return request.getfixturevalue("broker")


class StompClients:
    """Makes stomp.py clients and raw connections; closes them and deletes the queues
    the test named through ``track_queue`` (over AMQP, when the broker has an AMQP
    view) at teardown."""

    def __init__(self, ep: "stomputil.Endpoint", request):
        self.ep = ep
        self.request = request
        self.clients: List[stomputil.Client] = []
        self.raws: List[stomputil.Raw] = []
        self.queues: List[str] = []
        self.finalizers: List[Callable[[], None]] = []
        self.amqp: Optional[Broker] = None

    def __call__(self, version: str = "1.2", **kw) -> "stomputil.Client":
        c = stomputil.Client(kw.pop("ep", self.ep), version=version, **kw)
        self.clients.append(c)
        return c

    def connected(self, version: str = "1.2", login=None, passcode=None,
                  connect_headers: Optional[dict] = None, **kw) -> "stomputil.Client":
        return self(version, **kw).connect(login, passcode, headers=connect_headers)

    def raw(self, **kw) -> "stomputil.Raw":
        r = stomputil.Raw(kw.pop("ep", self.ep), **kw)
        self.raws.append(r)
        return r

    def ws_raw(self, subprotocols=None, **kw) -> "stomputil.WsRaw":
        r = stomputil.WsRaw(kw.pop("ep", self.ep), subprotocols=subprotocols, **kw)
        self.raws.append(r)
        return r

    def track_queue(self, name: str) -> str:
        """Delete this queue at teardown (``/queue/name`` queues outlive connections)."""
        if self.amqp is None and not (stomputil.STOMP_URL and not EXTERNAL_URL):
            self.amqp = self.request.getfixturevalue("broker")
        self.queues.append(name)
        return name

    def at_teardown(self, fn: Callable[[], None]) -> None:
        self.finalizers.append(fn)

    def close(self):
        for fn in reversed(self.finalizers):
            try:
                fn()
            except BaseException:
                pass
        for c in self.clients:
            c.close()
        for r in self.raws:
            r.close()
        if not self.queues or self.amqp is None:
            return
        try:
            c = self.amqp.connect()
        except BaseException:
            return
        try:
            chan = c.channel()
            for q in self.queues:
                try:
                    chan.queue_delete(q)
                except pika.exceptions.ChannelClosedByBroker:
                    chan = c.channel()
        except BaseException:
            pass
        finally:
            try:
                c.close()
            except BaseException:
                pass


@pytest.fixture
def stomp_clients(stomp_ep, request):
    s = StompClients(stomp_ep, request)
    yield s
    s.close()


# ---------------------------------------------------------------------------------
# SQS fixtures (see sqsutil.py). SWITCHBOARD_SQS_URL points them at an external server
# (e.g. a reference `moto_server -p 5000`); otherwise they use the session's
# Switchboard, whose listening line names the http (SQS) port. sqsutil (boto3) is
# imported inside the fixtures so that the rest of the suite runs without boto3.


@pytest.fixture(scope="session")
def sqs_ep(request):
    """Where the SQS (HTTP) listener of the broker under test is (sqsutil.Endpoint)."""
    import sqsutil

    ep = sqsutil.endpoint_from_env()
    if ep is not None:
        return ep
    b = request.getfixturevalue("broker")
    if b.external:
        pytest.skip("SWITCHBOARD_AMQP_URL names an external broker without SQS "
                    "(set SWITCHBOARD_SQS_URL to test an SQS server)")
    return sqsutil.endpoint_from_ports(b.ports)


@pytest.fixture(scope="session")
def sqs_client(sqs_ep):
    """One boto3 SQS client for the session (botocore clients are thread-safe)."""
    import sqsutil

    return sqsutil.client(sqs_ep)


@pytest.fixture
def sqs(sqs_ep, sqs_client):
    """Endpoint, client and a queue factory (sqsutil.Sqs); deletes the queues the test
    created."""
    import sqsutil

    s = sqsutil.Sqs(sqs_ep, sqs_client)
    yield s
    s.cleanup()


# SNS fixtures (see snsutil.py): SNS answers on the SQS listener.


@pytest.fixture(scope="session")
def sns_client(sqs_ep):
    """One boto3 SNS client for the session."""
    import snsutil

    return snsutil.client(sqs_ep)


@pytest.fixture
def sns(sqs_ep, sns_client):
    """Endpoint, client and a topic factory (snsutil.Sns); deletes the topics the test
    created."""
    import snsutil

    s = snsutil.Sns(sqs_ep, sns_client)
    yield s
    s.cleanup()
