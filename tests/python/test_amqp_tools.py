"""Debian's amqp-tools (rabbitmq-c, a third client implementation) against the broker."""

from __future__ import annotations

import shutil
import subprocess
import time

import pika.exceptions
import pytest

from support import uniq

TOOLS = ["amqp-publish", "amqp-consume", "amqp-declare-queue", "amqp-delete-queue",
         "amqp-get"]
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"amqp-tools binaries missing ({', '.join(missing)}); "
           "install with `apt-get install amqp-tools`")


def run(*args, input=None, timeout=15):
    p = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout)
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def test_publish_and_consume(broker, res):
    url = broker.amqp_url_no_vhost
    q = uniq("tools")
    res.track_queue(q)
    out = run("amqp-declare-queue", "--url", url, "-q", q)
    assert out.decode().strip() == q
    run("amqp-publish", "--url", url, "-r", q, "-b", "hello from amqp-tools",
        "-C", "text/plain", "-p")
    run("amqp-publish", "--url", url, "-r", q, "-b", "second")
    out = run("amqp-consume", "--url", url, "-q", q, "-c", "1", "cat")
    assert out == b"hello from amqp-tools"
    # the consume above acked exactly one message; amqp-get fetches the next
    out = run("amqp-get", "--url", url, "-q", q)
    assert out == b"second"
    # and the queue is now empty: amqp-get exits non-zero on an empty queue
    p = subprocess.run(["amqp-get", "--url", url, "-q", q], capture_output=True,
                       timeout=15)
    assert p.returncode != 0 and p.stdout == b""
    run("amqp-delete-queue", "--url", url, "-q", q)
    c = broker.connect()
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            c.channel().queue_declare(q, passive=True)
        assert ei.value.reply_code == 404
    finally:
        c.close()


def test_line_buffered_publish_consumed_by_pika(broker, ch, res):
    url = broker.amqp_url_no_vhost
    q = res.queue(ch)
    run("amqp-publish", "--url", url, "-r", q, "-l", "-H", "origin: amqp-tools",
        input=b"one\ntwo\nthree\n")
    bodies, origins = [], []
    deadline = time.monotonic() + 5
    while len(bodies) < 3 and time.monotonic() < deadline:
        m, props, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            time.sleep(0.05)
            continue
        bodies.append(body)
        origins.append((props.headers or {}).get("origin"))
    assert bodies == [b"one\n", b"two\n", b"three\n"]  # -l keeps the newline
    assert all(o in ("amqp-tools", b"amqp-tools") for o in origins), origins


def test_consume_from_exchange_binding(broker, conn, res):
    """amqp-consume declares an exclusive queue, binds it to amq.topic, and prints
    what amqp-publish sends to a matching key."""
    url = broker.amqp_url_no_vhost
    q = uniq("tools-x")
    key = uniq("k").replace(".", "_")
    proc = subprocess.Popen(
        ["amqp-consume", "--url", url, "-q", q, "-x", "-e", "amq.topic",
         "-r", f"{key}.*", "-c", "2", "cat"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the queue exists once another connection is refused access to it (405)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn.channel().queue_declare(q, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code == 405:
                    break
                assert e.reply_code == 404, e
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"amqp-consume never declared its queue: {proc.stderr.read()}")
            time.sleep(0.05)
        time.sleep(0.1)  # declare, then bind, then consume: allow the binding to land
        run("amqp-publish", "--url", url, "-e", "amq.topic", "-r", f"{key}.a", "-b", "A;")
        run("amqp-publish", "--url", url, "-e", "amq.topic", "-r", f"{key}.a.b", "-b", "X;")
        run("amqp-publish", "--url", url, "-e", "amq.topic", "-r", f"{key}.b", "-b", "B;")
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == b"A;B;"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
