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
        ids.sort_unstable();
        ids.dedup();
        let mut p = convert::to_publish(m, qos, retain, self.v5(), ids);
        if self.v5() && convert::publish_size(&p) > self.client_max_packet as usize {
            // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is dropped
            // as if delivered.
            d.queue.settle(&[d.seq], Settle::Ack);
            return;
        }
        let mut lsn = 0;
        if qos == QoS::AtMostOnce {
            d.queue.settle(&[d.seq], Settle::Ack);
        } else {
            let own_queue = tag == 0;
            // A message resent after a reconnect keeps its packet id (MQTT-4.4.0-1):
            // a QoS 2 receiver may have recorded it.
            let pid = match self.parked.remove(&d.seq) {
                Some(pid) if own_queue && d.redelivered && !self.pid_in_use(pid) => pid,
                _ => self.alloc_pid(),
            };
            p.packet_id = Some(packet_id(pid));
            p.dup = d.redelivered;
            if own_queue && qos == QoS::ExactlyOnce && self.persistent() {
                // Persisted before sending, so a restart resends it with this id.
                self.q2_out.insert(d.seq, pid);
                lsn = self.save_state();
            }
            self.out.insert(pid, Out { delivery: Some(d) });
        }
        self.send(lsn, Packet::Publish(Box::new(p)));
    }
}
