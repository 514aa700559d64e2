//! What an SNS message carries and how a subscriber sees it, as pure functions
//! shared by every delivery path (SQS envelopes, HTTP and mail notifications,
//! replays): the `x-sns-*` header names, the text for each protocol, the
//! Notification document, the ids a publish over another protocol is given, and
//! a subscription's binding arguments.

use crate::sigv4::format_iso_ms;
use crate::sqs::convert;
use base64::Engine;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use switchboard_api::{Message, Table, Value};

pub const MESSAGE_ID_HEADER: &str = "x-sns-message-id";
pub const TOPIC_ARN_HEADER: &str = "x-sns-topic-arn";
pub const SUBJECT_HEADER: &str = "x-sns-subject";
pub const TIMESTAMP_HEADER: &str = "x-sns-timestamp";
/// MessageStructure=json: the JSON object of texts by protocol (string values only,
/// `default` included), when some protocol's text differs from the stored body.
pub const STRUCTURE_HEADER: &str = "x-sns-message-structure";
/// Before STRUCTURE_HEADER: the `http` text alone. Still read, for messages
/// journaled by an older version.
const HTTP_MESSAGE_HEADER: &str = "x-sns-message-http";

/// A checked message, ready to route, and its MessageId.
pub struct Prepared {
    pub message: Message,
    pub id: String,
}

/// The text a subscriber of `protocol` gets: its own key of a MessageStructure=json
/// message, else `default`, else the stored body (an SQS subscriber's text).
pub fn text_for(m: &Message, protocol: &str) -> String {
    let h = m.properties.headers.as_ref();
    let header = |k: &str| h.and_then(|h| h.get(k)).and_then(Value::as_str);
    if let Some(per) =
        header(STRUCTURE_HEADER).and_then(|s| serde_json::from_str::<Map<String, Json>>(s).ok())
        && let Some(t) = per
            .get(protocol)
            .or_else(|| per.get("default"))
            .and_then(Json::as_str)
    {
        return t.to_string();
    }
    if matches!(protocol, "http" | "https")
        && let Some(t) = header(HTTP_MESSAGE_HEADER)
    {
        return t.to_string();
    }
    String::from_utf8_lossy(&m.body).into_owned()
}

/// The topic's SequenceNumber, kept with the message for the envelope and replay.
pub const SEQUENCE_HEADER: &str = "x-sns-sequence-number";
/// A replayed copy; its envelope says `"Replayed": true`.
pub const REPLAYED_HEADER: &str = "x-sns-replayed";

/// The Notification document for one message (unsigned), keys sorted as in the
/// captured `sns_envelope.json`. `body` is the text for this subscriber.
pub fn notification_doc(
    sub_arn: &str,
    m: &Message,
    body: &str,
    base_url: &str,
) -> Map<String, Json> {
    let h = m.properties.headers.as_ref();
    let text = |k: &str| {
        h.and_then(|h| h.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut env = Map::new();
    env.insert("Type".into(), json!("Notification"));
    env.insert("MessageId".into(), json!(text(MESSAGE_ID_HEADER)));
    env.insert("TopicArn".into(), json!(text(TOPIC_ARN_HEADER)));
    if let Some(s) = h
        .and_then(|h| h.get(SUBJECT_HEADER))
        .and_then(Value::as_str)
    {
        env.insert("Subject".into(), json!(s));
    }
    env.insert("Message".into(), json!(body));
    env.insert("Timestamp".into(), json!(text(TIMESTAMP_HEADER)));
    if let Some(seq) = h
        .and_then(|h| h.get(SEQUENCE_HEADER))
        .and_then(Value::as_str)
    {
        env.insert("SequenceNumber".into(), json!(seq));
    }
    if h.is_some_and(|h| h.get(REPLAYED_HEADER).is_some()) {
        env.insert("Replayed".into(), json!(true));
    }
    env.insert(
        "UnsubscribeURL".into(),
        json!(format!(
            "{base_url}/?Action=Unsubscribe&SubscriptionArn={sub_arn}"
        )),
    );
    let attrs = convert::from_headers(h);
    if !attrs.is_empty() {
        let map: Map<String, Json> = attrs
            .iter()
            .map(|(k, a)| {
                let value = match (&a.string_value, &a.binary_value) {
                    (Some(s), _) => s.clone(),
                    (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b),
                    (None, None) => String::new(),
                };
                (k.clone(), json!({"Type": a.data_type, "Value": value}))
            })
            .collect();
        env.insert("MessageAttributes".into(), Json::Object(map));
    }
    env
}

/// A message published to a topic over AMQP, MQTT or STOMP has none of the headers
/// Publish sets: give it a topic ARN, a MessageId (its own, or one derived from its
/// content and time, so every receive of it shows the same) and a Timestamp.
pub fn as_published(m: &Message, arn: String) -> Message {
    use sha2::Digest;
    let mut m = m.clone();
    let id = m.properties.message_id.clone().unwrap_or_else(|| {
        let mut h = sha2::Sha256::new();
        h.update(m.timestamp_ms.to_le_bytes());
        h.update(m.routing_key.as_bytes());
        h.update(&m.body);
        let d = h.finalize();
        let x: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &x[..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..]
        )
    });
    let headers = m.properties.headers.get_or_insert_with(Table::new);
    headers.insert(TOPIC_ARN_HEADER.into(), Value::string(arn));
    headers.insert(MESSAGE_ID_HEADER.into(), Value::string(id));
    headers.insert(
        TIMESTAMP_HEADER.into(),
        Value::string(format_iso_ms(m.timestamp_ms as i64)),
    );
    m
}

/// Whether Publish made the message (it carries the topic's ARN), rather than a
/// publish over AMQP, MQTT or STOMP to the topic's exchange.
pub fn from_publish(m: &Message) -> bool {
    m.properties
        .headers
        .as_ref()
        .is_some_and(|h| h.get(TOPIC_ARN_HEADER).is_some())
}

/// The binding arguments for the core's filter: the policy text and its scope.
pub fn filter_args(attributes: &BTreeMap<String, String>) -> Table {
    let mut args = Table::new();
    if let Some(f) = attributes.get("FilterPolicy").filter(|f| !f.is_empty()) {
        args.insert("x-filter-policy".into(), Value::string(f.clone()));
        let scope = attributes
            .get("FilterPolicyScope")
            .map_or("MessageAttributes", String::as_str);
        args.insert("x-filter-policy-scope".into(), Value::string(scope));
    }
    args
}
