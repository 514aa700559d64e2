"""mosquitto_pub / mosquitto_sub (the Debian package mosquitto-clients) against the
broker: every protocol version and QoS, retained messages, persistent sessions, -C/-W."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import List

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)")

V = {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}
FMT = "MSG>%t|%q|%r|%x|%P"  # '@' would start a date format in -F


def base_args(ep, version=4):
    return ["-h", ep.host, "-p", str(ep.port), "-V", V[version]]


class Sub:
    """A running mosquitto_sub; ``lines`` are its parsed messages."""

    def __init__(self, ep, topics, version=4, qos=0, extra=(), wait_subscribed=True):
        # line-buffered, so that "Subscribed" is seen while it runs
        stdbuf = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        args = stdbuf + ["mosquitto_sub", "-d"] + base_args(ep, version) + ["-q", str(qos), "-F", FMT]
        for t in topics:
            args += ["-t", t]
        self.proc = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.out: List[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        if wait_subscribed:
            mu.wait_until(lambda: any(l.startswith("Subscribed") for l in self.out)
                          or self.proc.poll() is not None, what="mosquitto_sub's SUBACK")
            assert self.proc.poll() is None, "\n".join(self.out)

    def _read(self):
        for raw in self.proc.stdout:
            self.out.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def messages(self):
        msgs = []
        for l in self.out:
            if l.startswith("MSG>"):
                topic, qos, retain, hexpayload, props = l[4:].split("|", 4)
                msgs.append((topic, int(qos), retain == "1", bytes.fromhex(hexpayload), props))
        return msgs

    def wait(self, timeout=10):
        rc = self.proc.wait(timeout=timeout)
        self._t.join(timeout=2)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def subs():
    started = []

    def make(*a, **kw):
        s = Sub(*a, **kw)
        started.append(s)
        return s
    yield make
    for s in started:
        s.kill()


def pub(ep, topic, *args, version=4, check=True, input=None):
    p = subprocess.run(["mosquitto_pub"] + base_args(ep, version) + ["-t", topic] + list(args),
                       capture_output=True, timeout=15, input=input)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_paho_publish_reaches_mosquitto_sub(mqtt, mqtt_clients, subs, version, qos):
    topic = mu.topic_prefix() + "/to-cli"
    s = subs(mqtt, [topic], version=version, qos=qos, extra=["-C", "1", "-W", "10"])
    mqtt_clients.connected(version).publish(topic, b"\x00from paho\xff", qos=qos)
    assert s.wait() == 0, s.out
    assert s.messages == [(topic, qos, False, b"\x00from paho\xff", "")]


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_mosquitto_pub_reaches_paho(mqtt, mqtt_clients, version, qos):
    topic = mu.topic_prefix() + "/from-cli"
    c = mqtt_clients.connected(version)
    c.subscribe(topic, qos=2)
    pub(mqtt, topic, "-m", "from mosquitto_pub", "-q", str(qos), version=version)
    m = c.wait_for(1)[0]
    assert (m.payload, m.qos) == (b"from mosquitto_pub", qos)


def test_mosquitto_pub_to_mosquitto_sub_v5_user_property(mqtt, subs):
    topic = mu.topic_prefix() + "/cli-cli"
    s = subs(mqtt, [topic], version=5, qos=1, extra=["-C", "1", "-W", "10"])
    pub(mqtt, topic, "-m", "hi", "-q", "1", "-D", "publish", "user-property", "k", "v",
        version=5)
    assert s.wait() == 0
    assert s.messages == [(topic, 1, False, b"hi", "k:v")]


def test_retained_with_mosquitto_pub_r(mqtt, subs):
    topic = mu.topic_prefix() + "/cli-retained"
    pub(mqtt, topic, "-m", "kept", "-r", "-q", "1")
    try:
        s = subs(mqtt, [topic], qos=1, extra=["-C", "1", "-W", "5"], wait_subscribed=False)
        assert s.wait() == 0, s.out
        assert s.messages == [(topic, 1, True, b"kept", "")]
    finally:
        pub(mqtt, topic, "-n", "-r", "-q", "1")  # clear
    s = subs(mqtt, [topic], qos=1, extra=["-C", "1", "-W", "1"], wait_subscribed=False)
    assert s.wait() != 0, "retained message still there after clearing"
    assert s.messages == []


def test_sub_count_exits_after_n_messages(mqtt, mqtt_clients, subs):
    topic = mu.topic_prefix() + "/count"
    s = subs(mqtt, [topic], qos=1, extra=["-C", "3", "-W", "10"])
    p = mqtt_clients.connected(4)
    for i in range(5):
        p.publish(topic, str(i), qos=1)
    assert s.wait() == 0
    assert [m[3] for m in s.messages] == [b"0", b"1", b"2"]


def test_sub_timeout_without_messages(mqtt, subs):
    s = subs(mqtt, [mu.topic_prefix() + "/quiet"], extra=["-C", "1", "-W", "1"],
             wait_subscribed=False)
    t0 = time.monotonic()
    assert s.wait() == 27  # mosquitto_sub's exit status for -W expiry
    assert time.monotonic() - t0 < 5
    assert s.messages == []


def test_sub_several_topics_and_wildcards(mqtt, mqtt_clients, subs):
    p = mu.topic_prefix()
    s = subs(mqtt, [f"{p}/a/+", f"{p}/b/#"], qos=1, extra=["-C", "3", "-W", "10"])
    c = mqtt_clients.connected(4)
    for t in ("a/1", "x/1", "b/2/3", "a/2"):
        c.publish(f"{p}/{t}", t, qos=1)
    assert s.wait() == 0
    assert [m[0] for m in s.messages] == [f"{p}/a/1", f"{p}/b/2/3", f"{p}/a/2"]


def test_pub_lines_from_stdin(mqtt, mqtt_clients):
    topic = mu.topic_prefix() + "/lines"
    c = mqtt_clients.connected(4)
    c.subscribe(topic, qos=1)
    pub(mqtt, topic, "-l", "-q", "1", input=b"one\ntwo\nthree\n")
    assert [m.payload for m in c.wait_for(3)] == [b"one", b"two", b"three"]


def test_pub_file_binary(mqtt, mqtt_clients, tmp_path):
    topic = mu.topic_prefix() + "/file"
    body = bytes(range(256)) * 64
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    c = mqtt_clients.connected(4)
    c.subscribe(topic, qos=1)
    pub(mqtt, topic, "-f", str(f), "-q", "1")
    assert c.wait_for(1)[0].payload == body


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_persistent_session_with_sub_c(mqtt, subs, version):
    topic = mu.topic_prefix() + "/cli-session"
    cid = mu.client_id()
    expiry = ["-x", "300"] if version == 5 else []
    s = subs(mqtt, [topic], version=version, qos=1,
             extra=["-c", "-i", cid, "-E"] + expiry, wait_subscribed=False)
    assert s.wait() == 0, s.out
    try:
        for i in range(2):
            pub(mqtt, topic, "-m", f"while-away-{i}", "-q", "1", version=version)
        s = subs(mqtt, [topic], version=version, qos=1, wait_subscribed=False,
                 extra=["-c", "-i", cid, "-C", "2", "-W", "5"] + expiry)
        assert s.wait() == 0, s.out
        assert [m[3] for m in s.messages] == [b"while-away-0", b"while-away-1"]
    finally:
        subs(mqtt, [topic], version=version, extra=["-i", cid, "-E"],
             wait_subscribed=False).wait()


def test_credentials_on_the_command_line(mqtt_auth, subs):
    topic = mu.topic_prefix() + "/cli-auth"
    ok = pub(mqtt_auth, topic, "-m", "x", "-u", mqtt_auth.username, "-P", mqtt_auth.password,
             check=False)
    assert ok.returncode == 0, ok.stderr
    bad = pub(mqtt_auth, topic, "-m", "x", "-u", mqtt_auth.username, "-P", "wrong",
              check=False)
    assert bad.returncode != 0
    assert b"refused" in bad.stderr.lower() or b"not auth" in bad.stderr.lower(), bad.stderr
