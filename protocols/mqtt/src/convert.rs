//! MQTT PUBLISH ⇄ core message. The table in docs/PROTOCOL_MAPPING.md is the contract:
//! user properties ⇄ headers, content type ⇄ content-type, correlation data ⇄
//! correlation-id, response topic ⇄ reply-to (in routing-key form), message expiry
//! (s) ⇄ expiration (ms), QoS ≥ 1 ⇄ persistent. Headers starting `x-mqtt-` carry what
//! MQTT needs back and are not shown to MQTT clients as user properties.

use crate::topic;
use bytes::Bytes;
use bytestring::ByteString;
use rmqtt_codec::types::{Publish, QoS};
use rmqtt_codec::v5::PublishProperties;
use std::num::NonZeroU32;
use switchboard_api::{Message, Table, Value};

pub const EXCHANGE: &str = "amq.topic";
/// QoS the message was published with (RabbitMQ's header name).
pub const H_QOS: &str = "x-mqtt-publish-qos";
/// Client id of the MQTT publisher (for MQTT 5 no-local).
pub const H_CLIENT: &str = "x-mqtt-client-id";
/// Present when the message was published with the retain flag.
pub const H_RETAIN: &str = "x-mqtt-retain";
/// Correlation data that is not UTF-8 (AMQP correlation-id is a string).
pub const H_CORRELATION: &str = "x-correlation-data";
/// The user property keys in the order they came (headers are a sorted map, and
/// MQTT 5 §3.3.2.3.7 requires the order kept).
pub const H_ORDER: &str = "x-mqtt-user-property-order";
/// MQTT 5 payload format indicator (1 = UTF-8).
pub const H_FORMAT: &str = "x-mqtt-payload-format";

pub fn qos_u8(q: QoS) -> u8 {
    q.value()
}

pub fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Builds the core message for a PUBLISH (its topic already resolved from an alias).
pub fn to_message(p: &Publish, topic: &str, client_id: &str) -> Message {
    let mut m = Message::new(EXCHANGE, topic::to_routing_key(topic), p.payload.clone());
    let mut headers = Table::new();
    headers.insert(H_QOS.into(), Value::U8(qos_u8(p.qos)));
    headers.insert(H_CLIENT.into(), Value::string(client_id));
    if p.retain {
        headers.insert(H_RETAIN.into(), Value::Bool(true));
    }
    m.properties.delivery_mode = Some(if p.qos == QoS::AtMostOnce { 1 } else { 2 });
    if let Some(props) = &p.properties {
        if props.user_properties.len() > 1 {
            let keys = props
                .user_properties
                .iter()
                .map(|(k, _)| Value::string(&k[..]))
                .collect();
            headers.insert(H_ORDER.into(), Value::Array(keys));
        }
        for (k, v) in &props.user_properties {
            // Repeated keys (allowed in MQTT) become an array, in order.
            match headers.get_mut(&k[..]) {
                Some(Value::Array(a)) => a.push(Value::string(&v[..])),
                Some(prev) if !k.starts_with("x-mqtt-") => {
                    let first = std::mem::replace(prev, Value::Void);
                    *prev = Value::Array(vec![first, Value::string(&v[..])]);
                }
                Some(_) => {}
                None => {
                    headers.insert(k.to_string(), Value::string(&v[..]));
                }
            }
        }
        m.properties.content_type = props.content_type.as_ref().map(|s| s.to_string());
        if let Some(cd) = &props.correlation_data {
            match std::str::from_utf8(cd) {
                Ok(s) if s.len() <= 255 => m.properties.correlation_id = Some(s.to_string()),
                _ => {
                    headers.insert(H_CORRELATION.into(), Value::Bytes(cd.clone()));
                }
            }
        }
        m.properties.reply_to = props
            .response_topic
            .as_ref()
            .map(|t| topic::to_routing_key(t));
        if let Some(e) = props.message_expiry_interval {
            m.properties.expiration = Some((u64::from(e.get()) * 1000).to_string());
            // Lets a later delivery report the time left, as MQTT 5 requires.
            m.properties.timestamp = Some(switchboard_api::wall_secs());
        }
        if props.is_utf8_payload {
            headers.insert(H_FORMAT.into(), Value::U8(1));
        }
    }
    m.properties.headers = Some(headers);
    m
}

/// The QoS a message was published with: our header, else persistent ⇒ 1.
pub fn published_qos(m: &Message) -> QoS {
    match m.properties.headers.as_ref().and_then(|h| h.get(H_QOS)) {
        Some(v) => qos_of(value_u8(v).unwrap_or(1)),
        None if m.properties.persistent() => QoS::AtLeastOnce,
        None => QoS::AtMostOnce,
    }
}

pub fn publisher(m: &Message) -> Option<&[u8]> {
    match m.properties.headers.as_ref()?.get(H_CLIENT)? {
        Value::Str(b) | Value::Bytes(b) => Some(b),
        Value::ShortStr(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub fn was_retained(m: &Message) -> bool {
    matches!(
        m.properties.headers.as_ref().and_then(|h| h.get(H_RETAIN)),
        Some(Value::Bool(true))
    )
}

fn value_u8(v: &Value) -> Option<u8> {
    Some(match v {
        Value::U8(n) => *n,
        Value::I8(n) => *n as u8,
        Value::I16(n) => *n as u8,
        Value::U16(n) => *n as u8,
        Value::I32(n) => *n as u8,
        Value::U32(n) => *n as u8,
        Value::I64(n) => *n as u8,
        _ => return None,
    })
}

/// A header value as a user-property string, if it has a textual form.
fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Str(b) | Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::ShortStr(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::I8(n) => n.to_string(),
        Value::U8(n) => n.to_string(),
        Value::I16(n) => n.to_string(),
        Value::U16(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::F32(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Timestamp(n) => n.to_string(),
        _ => return None,
    })
}

/// Builds the PUBLISH for a delivery (packet id, dup and subscription ids are the
/// session's business). `v5` adds the properties.
pub fn to_publish(
    m: &Message,
    qos: QoS,
    retain: bool,
    v5: bool,
    sub_ids: Vec<NonZeroU32>,
) -> Publish {
    let properties = v5.then(|| {
        let mut props = PublishProperties {
            subscription_ids: sub_ids,
            ..Default::default()
        };
        if let Some(h) = &m.properties.headers {
            let order: Vec<String> = match h.get(H_ORDER) {
                Some(Value::Array(keys)) => keys.iter().filter_map(value_text).collect(),
                _ => Vec::new(),
            };
            let mut taken: std::collections::HashMap<&str, usize> = Default::default();
            for k in &order {
                let n = taken.entry(k.as_str()).or_insert(0);
                let v = match h.get(k) {
                    Some(Value::Array(items)) => items.get(*n),
                    Some(v) if *n == 0 => Some(v),
                    _ => None,
                };
                *n += 1;
                if let Some(s) = v.and_then(value_text) {
                    props.user_properties.push((k.as_str().into(), s.into()));
                }
            }
            for (k, v) in h {
                if k.starts_with("x-mqtt-") || k == H_CORRELATION || taken.contains_key(k.as_str())
                {
                    continue;
                }
                match v {
                    Value::Array(items) => {
                        for i in items {
                            if let Some(s) = value_text(i) {
                                props.user_properties.push((k.as_str().into(), s.into()));
                            }
                        }
                    }
                    v => {
                        if let Some(s) = value_text(v) {
                            props.user_properties.push((k.as_str().into(), s.into()));
                        }
                    }
                }
            }
            if let Some(Value::Bytes(b) | Value::Str(b)) = h.get(H_CORRELATION) {
                props.correlation_data = Some(b.clone());
            }
            props.is_utf8_payload = h.get(H_FORMAT).and_then(value_u8) == Some(1);
        }
        props.content_type = m.properties.content_type.as_deref().map(ByteString::from);
        if let Some(c) = &m.properties.correlation_id {
            props.correlation_data = Some(Bytes::from(c.clone()));
        }
        props.response_topic = m
            .properties
            .reply_to
            .as_deref()
            .map(|r| ByteString::from(topic::from_routing_key(r)));
        props.message_expiry_interval = m.properties.ttl_ms().map(|ms| {
            let waited = m
                .properties
                .timestamp
                .map_or(0, |t| switchboard_api::wall_secs().saturating_sub(t));
            let left = ms.div_ceil(1000).saturating_sub(waited).max(1);
            NonZeroU32::new(left.min(u64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
        });
        props
    });
    Publish {
        dup: false,
        retain,
        qos,
        topic: ByteString::from(topic::from_routing_key(&m.routing_key)),
        packet_id: None,
        payload: m.body.clone(),
        properties,
    }
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The encoded size of a PUBLISH, whole packet (MQTT 5 with its properties when
/// `properties` is set), to honour the client's Maximum Packet Size.
pub fn publish_size(p: &Publish) -> usize {
    let props = p.properties.as_ref().map(|pp| {
        let s = |o: &Option<ByteString>| o.as_ref().map_or(0, |v| 3 + v.len());
        let len = usize::from(pp.is_utf8_payload) * 2
            + pp.message_expiry_interval.map_or(0, |_| 5)
            + pp.topic_alias.map_or(0, |_| 3)
            + s(&pp.response_topic)
            + s(&pp.content_type)
            + pp.correlation_data.as_ref().map_or(0, |c| 3 + c.len())
            + pp.user_properties
                .iter()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum::<usize>()
            + pp.subscription_ids
                .iter()
                .map(|id| 1 + varint_len(id.get() as usize))
                .sum::<usize>();
        varint_len(len) + len
    });
    let remaining = 2
        + p.topic.len()
        + if p.qos == QoS::AtMostOnce { 0 } else { 2 }
        + props.unwrap_or(0)
        + p.payload.len();
    1 + varint_len(remaining) + remaining
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU16;

    #[test]
    fn properties_round_trip() {
        let p = Publish {
            dup: false,
            retain: true,
            qos: QoS::AtLeastOnce,
            topic: "v1.0/temp".into(),
            packet_id: None,
            payload: Bytes::from_static(b"21.5"),
            properties: Some(PublishProperties {
                content_type: Some("text/plain".into()),
                correlation_data: Some(Bytes::from_static(b"req-1")),
                response_topic: Some("replies/me".into()),
                message_expiry_interval: NonZeroU32::new(30),
                user_properties: vec![
                    ("z".into(), "1".into()),
                    ("k".into(), "a".into()),
                    ("k".into(), "b".into()),
                ],
                ..Default::default()
            }),
        };
        let m = to_message(&p, "v1.0/temp", "c1");
        assert_eq!(m.routing_key, "v1/0.temp");
        assert_eq!(m.properties.reply_to.as_deref(), Some("replies.me"));
        assert_eq!(m.properties.expiration.as_deref(), Some("30000"));
        assert_eq!(m.properties.correlation_id.as_deref(), Some("req-1"));
        assert!(m.properties.persistent());
        assert!(was_retained(&m));
        assert_eq!(publisher(&m), Some(&b"c1"[..]));
        let mut back = to_publish(&m, QoS::AtLeastOnce, false, true, vec![]);
        back.packet_id = NonZeroU16::new(7);
        let mut buf = bytes::BytesMut::new();
        let mut codec = rmqtt_codec::v5::Codec::new(0, 0);
        tokio_util::codec::Encoder::encode(
            &mut codec,
            rmqtt_codec::v5::Packet::Publish(Box::new(back.clone())),
            &mut buf,
        )
        .unwrap();
        assert_eq!(publish_size(&back), buf.len());
        assert_eq!(&back.topic[..], "v1.0/temp");
        let props = back.properties.unwrap();
        assert_eq!(props.response_topic.as_deref(), Some("replies/me"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"req-1"[..]));
        assert_eq!(props.message_expiry_interval, NonZeroU32::new(30));
        assert_eq!(
            props.user_properties,
            vec![
                ("z".into(), "1".into()),
                ("k".into(), "a".into()),
                ("k".into(), "b".into())
            ]
        );
    }
}
