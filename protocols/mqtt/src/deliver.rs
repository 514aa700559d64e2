//! Queue deliveries → PUBLISH packets for the client. The session queue may hold
//! messages no current subscription wants (a binding over-matched, a `$` topic
//! under a wildcard, no-local, a subscription removed meanwhile): those are settled
//! here and never sent.

use crate::codec::{Packet, packet_id};
use crate::convert;
use crate::session::{Out, Session};
use crate::topic;
use rmqtt_codec::types::QoS;
use switchboard_api::{Delivery, Settle};

impl Session {
    pub fn deliver(&mut self, tag: u64, d: Delivery) {
        let m = &d.message;
        let t = topic::from_routing_key(&m.routing_key);
        let own = convert::publisher(m) == Some(self.client_id.as_bytes());
        let mut qos: Option<QoS> = None;
        let mut retain = false;
        let mut ids = Vec::new();
        for (filter, s) in &self.subs {
            let wanted = match &s.shared {
                Some((inner, t2)) => *t2 == tag && topic::matches(inner, &t),
                None => tag == 0 && topic::matches(filter, &t),
            };
            if !wanted || (s.opts.no_local && own) {
                continue;
            }
            qos = Some(qos.map_or(s.opts.qos, |q| q.max(s.opts.qos)));
            retain |= s.opts.retain_as_published && convert::was_retained(m);
            ids.extend(s.id);
        }
        let Some(sub_qos) = qos else {
            d.queue.settle(&[d.seq], Settle::Ack);
            return;
        };
        let qos = convert::published_qos(m).min(sub_qos);
        if self.v5() && estimated_size(&d) > self.client_max_packet as usize {
            // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is dropped
            // as if delivered.
            d.queue.settle(&[d.seq], Settle::Ack);
            return;
        }
        ids.sort_unstable();
        ids.dedup();
        let mut p = convert::to_publish(m, qos, retain, self.v5(), ids);
        if qos == QoS::AtMostOnce {
            d.queue.settle(&[d.seq], Settle::Ack);
        } else {
            let pid = self.alloc_pid();
            p.packet_id = Some(packet_id(pid));
            p.dup = d.redelivered;
            self.out.insert(pid, Out { delivery: Some(d) });
        }
        self.send(0, Packet::Publish(Box::new(p)));
    }
}

/// An upper bound of the encoded PUBLISH (fixed header, topic, packet id, the
/// properties we may add, payload).
fn estimated_size(d: &Delivery) -> usize {
    let m = &d.message;
    let p = &m.properties;
    let headers: usize = p
        .headers
        .as_ref()
        .map_or(0, |h| h.keys().map(|k| k.len() + 64).sum());
    let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 3);
    5 + 2
        + m.routing_key.len()
        + 2
        + 4
        + headers
        + opt(&p.content_type)
        + opt(&p.correlation_id)
        + opt(&p.reply_to)
        + 16
        + m.body.len()
}
