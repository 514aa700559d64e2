//! What the client sends after CONNECT: PUBLISH and the acknowledgement packets of
//! both directions. A protocol violation comes back as `Err(reason)`: the
//! connection then sends DISCONNECT with it (5.0) or just closes (3.x).

use crate::codec::{Packet, packet_id};
use crate::convert;
use crate::flow::Flow;
use crate::session::{Session, Violation, reason};
use crate::topic;
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::v5::{self, DisconnectReasonCode as D, PublishAck2Reason, PublishAckReason};
use switchboard_api::{PublishOptions, Settle};

impl Session {
    /// Sends a PUBACK or PUBREC, or holds it while a backlog is too deep (`flow.rs`).
    fn ack(&mut self, lsn: u64, p: Packet) {
        if let Some(p) = self.flow.hold(lsn, p) {
            self.send(lsn, p);
        }
    }

    pub fn publish(&mut self, p: Box<Publish>) -> Result<(), Violation> {
        if p.properties
            .as_ref()
            .is_some_and(|pp| !pp.subscription_ids.is_empty())
        {
            return Err((
                D::ProtocolError,
                "subscription identifier in a client PUBLISH",
            ));
        }
        let topic = self.resolve_topic(&p)?;
        if topic.contains('\0') {
            // MQTT 5 §1.5.4: U+0000 in a UTF-8 string makes the packet malformed.
            return Err((D::MalformedPacket, "NUL character in the topic name"));
        }
        if !topic::valid_name(&topic) {
            return Err((
                D::TopicNameInvalid,
                "topic name contains a wildcard or is empty",
            ));
        }
        let pid = match (p.qos, p.packet_id) {
            (QoS::AtMostOnce, _) => 0,
            (_, Some(id)) => id.get(),
            (_, None) => return Err((D::ProtocolError, "QoS > 0 without a packet id")),
        };
        if p.qos == QoS::ExactlyOnce && self.in_qos2.contains(&pid) {
            // A resend of a QoS 2 message we already routed: answer again, route once.
            self.ack(0, pubrec(pid, PublishAckReason::Success));
            return Ok(());
        }
        // Our Receive Maximum bounds the QoS 2 flows a 5.0 client leaves open (those
        // we keep state for until PUBREL). QoS 1 needs no count here: its PUBACK
        // goes out as soon as the message is durable, whatever the client does.
        if p.qos == QoS::ExactlyOnce
            && self.version.is_v5()
            && self.in_qos2.len() >= usize::from(self.cfg.max_inflight)
        {
            return Err((
                D::ReceiveMaximumExceeded,
                "more unfinished QoS 2 publishes than the Receive Maximum",
            ));
        }
        let msg = convert::to_message(&p, &topic, &self.client_id);
        let mut lsn = 0;
        let retained = p.retain.then(|| {
            let value = (!p.payload.is_empty()).then(|| {
                let mut m = msg.clone();
                // Retained messages are kept across restarts whatever their QoS.
                m.properties.delivery_mode = Some(2);
                m
            });
            (msg.routing_key.clone(), value)
        });
        let opts = PublishOptions {
            backlog_limit: Flow::limit(self.cfg.backlog_limit, p.qos != QoS::AtMostOnce),
            ..Default::default()
        };
        let ack = match self.broker.publish(&self.vhost, msg, opts) {
            Ok(o) => {
                lsn = lsn.max(o.lsn);
                if !o.pressure.is_empty() {
                    self.flow.pressed(&self.queue, o.pressure);
                }
                if o.rejected {
                    PublishAckReason::QuotaExceeded
                } else if o.queues == 0 {
                    PublishAckReason::NoMatchingSubscribers
                } else {
                    PublishAckReason::Success
                }
            }
            // A refused publish is not retained either. 3.1.1 has no negative
            // PUBACK: the connection closes, as RabbitMQ's MQTT plugin does.
            Err(e) if e.kind() == switchboard_api::ErrorKind::AccessRefused => {
                tracing::info!(topic, client = %self.client_id, "publish refused: {e}");
                if !self.version.is_v5() {
                    return Err((D::NotAuthorized, "publish not authorized"));
                }
                PublishAckReason::NotAuthorized
            }
            Err(e) => {
                tracing::warn!(topic, "publish failed: {e}");
                PublishAckReason::UnspecifiedError
            }
        };
        if let Some((key, value)) = retained
            && matches!(
                ack,
                PublishAckReason::Success | PublishAckReason::NoMatchingSubscribers
            )
        {
            let r = self
                .broker
                .keyed_put(&self.vhost, crate::RETAINED, &key, value)
                .unwrap_or(0);
            lsn = lsn.max(r);
        }
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.ack(
                lsn,
                Packet::PublishAck(v5::PublishAck {
                    packet_id: packet_id(pid),
                    reason_code: ack,
                    ..Default::default()
                }),
            ),
            QoS::ExactlyOnce => {
                if ack == PublishAckReason::Success
                    || ack == PublishAckReason::NoMatchingSubscribers
                {
                    self.in_qos2.insert(pid);
                    lsn = lsn.max(self.save_state());
                }
                self.ack(lsn, pubrec(pid, ack));
            }
        }
        Ok(())
    }

    fn resolve_topic(&mut self, p: &Publish) -> Result<String, Violation> {
        let alias = p
            .properties
            .as_ref()
            .and_then(|pp| pp.topic_alias)
            .map(|a| a.get());
        match alias {
            None if p.topic.is_empty() => Err((D::ProtocolError, "empty topic without an alias")),
            None => Ok(p.topic.to_string()),
            Some(a) if a > self.cfg.topic_alias_max => {
                Err((D::TopicAliasInvalid, "topic alias above the maximum"))
            }
            Some(a) if p.topic.is_empty() => match self.aliases.get(&a) {
                Some(t) => Ok(t.clone()),
                None => Err((D::ProtocolError, "unknown topic alias")),
            },
            Some(a) => {
                self.aliases.insert(a, p.topic.to_string());
                Ok(p.topic.to_string())
            }
        }
    }

    pub fn pubrel(&mut self, pid: u16) {
        let code = if self.in_qos2.remove(&pid) {
            PublishAck2Reason::Success
        } else {
            PublishAck2Reason::PacketIdNotFound
        };
        // The id may be reused once PUBCOMP is out: forgetting it must be durable
        // first, or a restart would take the next message with this id for a resend.
        let lsn = self.save_state();
        self.send(
            lsn,
            Packet::PublishComplete(v5::PublishAck2 {
                packet_id: packet_id(pid),
                reason_code: code,
                ..Default::default()
            }),
        );
    }

    /// PUBACK for a QoS 1 message we sent.
    pub fn puback(&mut self, pid: u16) {
        if let Some(o) = self.out.remove(&pid) {
            match o.delivery {
                Some(d) => d.queue.settle(&[d.seq], Settle::Ack),
                None => self.return_credit(),
            }
        }
    }

    /// PUBREC for a QoS 2 message we sent: the client has it. Record that (so a
    /// restart resends PUBREL, not the message), then drop it from the queue. The
    /// message counts against Receive Maximum until PUBCOMP, so its credit, which
    /// the queue returns on settling, is taken again.
    pub fn pubrec(&mut self, pid: u16) {
        let Some(o) = self.out.get_mut(&pid) else {
            self.send(
                0,
                Packet::PublishRelease(v5::PublishAck2 {
                    packet_id: packet_id(pid),
                    reason_code: PublishAck2Reason::PacketIdNotFound,
                    ..Default::default()
                }),
            );
            return;
        };
        let delivery = o.delivery.take();
        if let Some(d) = &delivery {
            self.q2_out.remove(&d.seq);
        }
        self.rel.insert(pid);
        let lsn = self.save_state();
        if let Some(d) = delivery {
            d.queue.settle(&[d.seq], Settle::Ack);
            self.credit.take();
        }
        self.send(
            lsn,
            Packet::PublishRelease(v5::PublishAck2 {
                packet_id: packet_id(pid),
                ..Default::default()
            }),
        );
    }

    pub fn pubcomp(&mut self, pid: u16) {
        if self.out.remove(&pid).is_some() {
            self.return_credit();
        }
        if self.rel.remove(&pid) {
            self.save_state();
        }
    }

    /// A server DISCONNECT for 5.0 clients (3.x clients are just closed).
    pub fn disconnect_packet(&self, code: D, why: &str) -> Option<Packet> {
        self.v5().then(|| {
            Packet::Disconnect(v5::Disconnect {
                reason_code: code,
                reason_string: reason(why),
                ..Default::default()
            })
        })
    }
}

fn pubrec(pid: u16, code: PublishAckReason) -> Packet {
    Packet::PublishReceived(v5::PublishAck {
        packet_id: packet_id(pid),
        reason_code: code,
        ..Default::default()
    })
}
