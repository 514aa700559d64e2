"""pika SelectConnection (asynchronous callbacks): publish with confirms, consume with
acks, a few hundred messages, order and confirmation of every one checked."""

from __future__ import annotations

import pika
import pika.spec

from support import uniq

N = 300
TIMEOUT = 20.0


class AsyncRoundTrip:
    def __init__(self, params: pika.URLParameters, queue: str, n: int):
        self.params, self.queue, self.n = params, queue, n
        self.published = 0
        self.acked: set[int] = set()
        self.nacked: set[int] = set()
        self.received: list[tuple[bytes, bool, str | None]] = []
        self.confirm_ok = False
        self.error: str | None = None
        self.done = False
        self.queue_deleted_count: int | None = None
        self.conn: pika.SelectConnection | None = None
        self.ch = None
        self.consumer_tag = None

    # -- lifecycle
    def run(self):
        self.conn = pika.SelectConnection(
            self.params,
            on_open_callback=self.on_open,
            on_open_error_callback=lambda _c, err: self.fail(f"open failed: {err!r}"),
            on_close_callback=self.on_conn_closed,
        )
        self.conn.ioloop.call_later(TIMEOUT, lambda: self.fail("timed out"))
        self.conn.ioloop.start()

    def fail(self, msg: str):
        if self.error is None and not self.done:
            self.error = msg
        self.stop()

    def stop(self):
        if self.conn.is_open:
            self.conn.close()
        elif self.conn.is_closed:
            self.conn.ioloop.stop()

    def on_conn_closed(self, _conn, reason):
        if not self.done and self.error is None:
            self.error = f"connection closed early: {reason!r}"
        self.conn.ioloop.stop()

    # -- setup
    def on_open(self, conn):
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch):
        self.ch = ch
        ch.add_on_close_callback(self.on_channel_closed)
        # exclusive: nothing is left behind on the broker even if the test fails
        ch.queue_declare(self.queue, exclusive=True, callback=self.on_declared)

    def on_channel_closed(self, _ch, reason):
        if not self.done:
            self.fail(f"channel closed: {reason!r}")

    def on_declared(self, frame):
        assert frame.method.queue == self.queue
        self.ch.confirm_delivery(self.on_confirm, callback=self.on_select_ok)

    def on_select_ok(self, _frame):
        self.confirm_ok = True
        self.ch.basic_qos(prefetch_count=50, callback=self.on_qos_ok)

    def on_qos_ok(self, _frame):
        self.consumer_tag = self.ch.basic_consume(self.queue, self.on_message)
        self.publish_batch()

    # -- publishing (in batches so that publishing and consuming interleave)
    def publish_batch(self):
        end = min(self.published + 25, self.n)
        while self.published < end:
            i = self.published
            self.ch.basic_publish(
                "", self.queue, f"msg-{i:04d}".encode(),
                pika.BasicProperties(message_id=str(i), delivery_mode=2))
            self.published += 1
        if self.published < self.n:
            self.conn.ioloop.call_later(0.005, self.publish_batch)

    def on_confirm(self, frame):
        m = frame.method
        tags = set(range(max(self.acked | self.nacked, default=0) + 1, m.delivery_tag + 1)) \
            if m.multiple else {m.delivery_tag}
        if isinstance(m, pika.spec.Basic.Ack):
            self.acked |= tags
        else:
            self.nacked |= tags
        self.check_done()

    # -- consuming
    def on_message(self, ch, method, props, body):
        self.received.append((body, method.redelivered, props.message_id))
        if len(self.received) % 3 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
        else:
            ch.basic_ack(method.delivery_tag)
        self.check_done()

    def check_done(self):
        if self.done or len(self.received) < self.n or len(self.acked | self.nacked) < self.n:
            return
        self.done = True
        self.ch.basic_cancel(self.consumer_tag, callback=self.on_cancel_ok)

    def on_cancel_ok(self, _frame):
        self.ch.queue_delete(self.queue, callback=self.on_deleted)

    def on_deleted(self, frame):
        self.queue_deleted_count = frame.method.message_count
        self.conn.close()


def test_select_connection_publish_consume_confirm(broker):
    queue = uniq("select")
    rt = AsyncRoundTrip(broker.params(), queue, N)
    rt.run()
    assert rt.error is None, rt.error
    assert rt.confirm_ok
    assert rt.acked == set(range(1, N + 1)), "every publish must be confirmed (ack)"
    assert not rt.nacked
    assert [b for b, _r, _m in rt.received] == [f"msg-{i:04d}".encode() for i in range(N)]
    assert all(not r for _b, r, _m in rt.received), "nothing should be redelivered"
    assert [m for _b, _r, m in rt.received] == [str(i) for i in range(N)]
    # all acked before deletion: nothing left in the queue
    assert rt.queue_deleted_count == 0


def test_select_connection_channel_error_callback(broker):
    """A channel-level error is reported to the channel's close callback; the
    connection stays open and another channel works."""
    result = {}
    params = broker.params()

    def on_open(conn):
        conn.channel(on_open_callback=lambda ch: on_ch1(conn, ch))

    def on_ch1(conn, ch):
        ch.add_on_close_callback(lambda _ch, reason: on_ch1_closed(conn, reason))
        ch.queue_declare(uniq("missing"), passive=True, callback=lambda _f: None)

    def on_ch1_closed(conn, reason):
        result["code"] = getattr(reason, "reply_code", None)
        result["text"] = getattr(reason, "reply_text", None)
        conn.channel(on_open_callback=lambda ch: on_ch2(conn, ch))

    def on_ch2(conn, ch):
        ch.queue_declare("", exclusive=True,
                         callback=lambda f: (result.__setitem__("q", f.method.queue),
                                             conn.close()))

    conn = pika.SelectConnection(params, on_open_callback=on_open,
                                 on_open_error_callback=lambda c, e: c.ioloop.stop(),
                                 on_close_callback=lambda c, r: c.ioloop.stop())
    conn.ioloop.call_later(10, conn.ioloop.stop)
    conn.ioloop.start()
    assert result.get("code") == 404, result
    assert result["text"].startswith("NOT_FOUND"), result
    assert result.get("q"), result
