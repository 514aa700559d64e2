"""ActiveMQ message groups on a plain queue: every message with the same
``JMSXGroupID`` goes to the same consumer while it stays subscribed, so two
consumers never work on one group at once (even with auto-ack); the groups spread
over the consumers; when a consumer leaves, its groups move to those that remain."""

from __future__ import annotations

from collections import defaultdict

import stomputil
from stomputil import qname

pytestmark = stomputil.requires_switchboard(
    "RabbitMQ has no message groups: JMSXGroupID is an ActiveMQ feature")

# An odd number of groups over two consumers: plain round-robin would hand each
# group to both of them in turn.
GROUPS = ["acct-1", "acct-2", "acct-3"]


def _send_round(producer, q, rounds, start=0):
    for i in range(start, start + rounds):
        for g in GROUPS:
            producer.send(f"/queue/{q}", f"{g}:{i}", headers={"JMSXGroupID": g})


def _two_consumers(stomp_clients, ack):
    """A fresh queue, two consumers on it and a producer; the first's subscription id."""
    q = stomp_clients.track_queue(qname())
    a = stomp_clients.connected()
    b = stomp_clients.connected()
    sub_a = a.subscribe(f"/queue/{q}", ack=ack)
    b.subscribe(f"/queue/{q}", ack=ack)
    return q, a, b, sub_a, stomp_clients.connected()


def _by_group(msgs):
    seen = defaultdict(list)
    for m in msgs:
        g, i = m.body.split(":")
        assert m.headers.get("JMSXGroupID") == g
        seen[g].append(int(i))
    return seen


def test_each_group_sticks_to_one_consumer_in_order(stomp_clients):
    q, a, b, _, p = _two_consumers(stomp_clients, "auto")
    _send_round(p, q, 10)
    total = 10 * len(GROUPS)
    stomputil.stays(lambda: len(a.rec.messages) + len(b.rec.messages) < total, 5.0)
    got_a, got_b = _by_group(a.messages(1)), _by_group(b.messages(1))
    assert sum(map(len, got_a.values())) + sum(map(len, got_b.values())) == total
    assert not set(got_a) & set(got_b), (
        f"a group went to both consumers: a={dict(got_a)} b={dict(got_b)}")
    assert set(got_a) | set(got_b) == set(GROUPS)
    # The groups are shared out, not all given to whoever subscribed first.
    assert got_a and got_b
    for g, seq in list(got_a.items()) + list(got_b.items()):
        assert seq == list(range(10)), f"{g} out of order: {seq}"
    for c in (a, b, p):
        c.disconnect()


def test_a_leaving_consumers_groups_move_to_the_others(stomp_clients):
    q, a, b, sub_a, p = _two_consumers(stomp_clients, "client-individual")
    _send_round(p, q, 2)
    stomputil.stays(lambda: len(a.rec.messages) + len(b.rec.messages) < 6, 5.0)
    first_a = a.take(len(a.rec.messages))
    first_b = b.take(len(b.rec.messages))
    assert first_a and first_b
    owned_by_a = set(_by_group(first_a))
    for m in first_a:
        a.ack(m)
    for m in first_b:
        b.ack(m)
    a.unsubscribe(sub_a)
    _send_round(p, q, 2, start=2)
    later = _by_group(b.take(6))
    assert set(later) == set(GROUPS), "b took over a's groups"
    assert all(seq == [2, 3] for seq in later.values()), dict(later)
    assert a.quiet(0.3), "nothing reaches a consumer that left"
    assert owned_by_a
    for c in (a, b, p):
        c.disconnect()


def test_ungrouped_messages_still_go_round_robin(stomp_clients):
    q, a, b, _, p = _two_consumers(stomp_clients, "auto")
    p.send(f"/queue/{q}", "g", headers={"JMSXGroupID": "one"})
    for i in range(10):
        p.send(f"/queue/{q}", f"m{i}")
    stomputil.stays(lambda: len(a.rec.messages) + len(b.rec.messages) < 11, 5.0)
    bodies_a = [m.body for m in a.messages(1)]
    bodies_b = [m.body for m in b.messages(1)]
    assert len(bodies_a) + len(bodies_b) == 11
    assert abs(len(bodies_a) - len(bodies_b)) <= 1, (bodies_a, bodies_b)
    for c in (a, b, p):
        c.disconnect()
