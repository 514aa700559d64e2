//! Publish, and each entry of PublishBatch (`batch.rs`): one persistent message to
//! the topic's exchange, with the attributes as headers (as SQS stores them) and
//! SNS's own `x-sns-*` headers; and the notification envelope an SQS subscriber
//! receives unless it asked for raw delivery, rendered when SQS hands the message
//! out.

use super::archive::REPLAYED_HEADER;
use super::fifo::{self, SEQUENCE_HEADER, Sent};
use super::meta::TopicMeta;
use super::params::check_string_array;
use super::signing::{SignatureVersion, Signer};
use super::xml::Out;
use super::{Params, Sns, SnsError};
use crate::sigv4::format_iso_ms;
use crate::sqs::convert;
use crate::sqs::{BoxFuture, Ctx, Notifications};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use switchboard_api::{Message, Properties, PublishOptions, Table, Value};

/// SNS's message size limit: the message plus its attributes' names, types and
/// values (PublishBatch: all entries together).
pub(super) const MAX_SIZE: usize = 262_144;

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

/// MessageStructure=json: the texts by protocol. Keys whose value is not a string
/// are ignored, as on AWS; `default` is required.
pub(super) fn structure(message: &str) -> Result<Map<String, Json>, SnsError> {
    let parsed: Map<String, Json> = serde_json::from_str(message)
        .map_err(|_| SnsError::bad("Message Structure - JSON message body failed to parse"))?;
    let per: Map<String, Json> = parsed.into_iter().filter(|(_, v)| v.is_string()).collect();
    if !per.contains_key("default") {
        return Err(SnsError::bad(
            "Message Structure - No default entry in JSON message body",
        ));
    }
    Ok(per)
}

/// The size AWS counts against MAX_SIZE: the Message parameter as sent (the whole
/// JSON for MessageStructure=json) and every attribute's name, type and value.
pub(super) fn publish_size(p: &Params, prefix: &str) -> usize {
    let message = p.get(&format!("{prefix}Message")).map_or(0, str::len);
    let attrs = p
        .message_attributes(prefix)
        .ok()
        .and_then(|a| convert::parse(Some(&a), "user").ok())
        .map_or(0, |a| convert::size(&a));
    message + attrs
}

/// Checks one message (at `prefix` in the parameters) and builds it for `topic`
/// (whose ARN is `arn`) as `sender` publishes it. Needs no broker, so that the
/// `sns_request` fuzz target runs the same checks (`fuzz.rs`).
pub(super) fn build(
    topic: &str,
    arn: String,
    meta: &TopicMeta,
    p: &Params,
    prefix: &str,
    sender: String,
) -> Result<Prepared, SnsError> {
    let field = |n: &str| p.get(&format!("{prefix}{n}"));
    let raw = field("Message").unwrap_or("");
    if raw.is_empty() {
        return Err(SnsError::bad("Empty message"));
    }
    let subject = field("Subject");
    if let Some(s) = subject
        && (s.is_empty() || s.len() > 100 || s.chars().any(char::is_control))
    {
        return Err(SnsError::bad("Subject"));
    }
    let attrs = convert::parse(Some(&p.message_attributes(prefix)?), "user")?;
    for (k, a) in &attrs {
        // Attributes and the broker's own headers share one table: such a name
        // would vanish on delivery, or stand in for this message's Subject or
        // MessageStructure texts when Publish sets none.
        if convert::internal(k) {
            return Err(SnsError::invalid_parameter_value(format!(
                "The message attribute name '{k}' is reserved: names starting x-sns-, x-sqs-, x-death, x-first-death or x-last-death are the broker's own."
            )));
        }
        check_string_array(k, a)?;
    }
    if publish_size(p, prefix) > MAX_SIZE {
        return Err(SnsError::bad("Message too long"));
    }
    let (group, dedup) = fifo::ids(
        meta,
        field("MessageGroupId"),
        field("MessageDeduplicationId"),
        raw,
    )?;
    let mut body = raw.to_string();
    let mut per_protocol = None;
    if field("MessageStructure") == Some("json") {
        let per = structure(raw)?;
        // The stored body is what SQS subscribers get (raw delivery and body
        // filters read it); the other protocols' texts travel in a header.
        let sqs = per.get("sqs").or_else(|| per.get("default"));
        body = sqs.and_then(Json::as_str).unwrap_or_default().to_string();
        if per.values().any(|v| v.as_str() != Some(body.as_str())) {
            per_protocol = Some(Json::Object(per).to_string());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut headers = Table::new();
    convert::to_headers(&attrs, &mut headers);
    headers.insert(MESSAGE_ID_HEADER.into(), Value::string(id.clone()));
    headers.insert(TOPIC_ARN_HEADER.into(), Value::string(arn));
    let now = switchboard_api::wall_ms();
    headers.insert(
        TIMESTAMP_HEADER.into(),
        Value::string(format_iso_ms(now as i64)),
    );
    if let Some(s) = subject {
        headers.insert(SUBJECT_HEADER.into(), Value::string(s));
    }
    if let Some(t) = per_protocol {
        headers.insert(STRUCTURE_HEADER.into(), Value::string(t));
    }
    let message = Message {
        exchange: Sns::exchange(topic),
        // What MQTT and STOMP subscribers of the topic match on `amq.topic`.
        routing_key: Sns::routing_key(topic),
        properties: Properties {
            delivery_mode: Some(2),
            message_id: Some(id.clone()),
            user_id: Some(sender),
            headers: Some(headers),
            ..Default::default()
        },
        body: Bytes::from(body),
        group_id: group,
        dedup_id: dedup,
        // The archive's replay windows read it (`archive.rs`).
        timestamp_ms: now,
        ..Default::default()
    };
    Ok(Prepared { message, id })
}

impl Sns {
    /// Checks one message (at `prefix` in the parameters) and builds it for `topic`.
    pub(super) fn prepare(
        &self,
        topic: &str,
        meta: &TopicMeta,
        p: &Params,
        prefix: &str,
        ctx: &Ctx,
    ) -> Result<Prepared, SnsError> {
        let sender = ctx
            .user
            .as_ref()
            .map_or_else(|| self.cfg.account_id.clone(), |u| u.name.clone());
        build(topic, self.topic_arn(topic), meta, p, prefix, sender)
    }

    /// Routes checked messages (failures stay in place); returns each one's answer
    /// and the LSN to wait for before answering.
    pub(super) fn send(
        &self,
        topic: &str,
        meta: &TopicMeta,
        items: Vec<Result<Prepared, SnsError>>,
    ) -> (Vec<Result<Sent, SnsError>>, u64) {
        if meta.fifo() {
            return self.publish_fifo(topic, meta, items);
        }
        let mut lsn = 0;
        let out = items
            .into_iter()
            .map(|p| {
                let p = p?;
                let outcome = self
                    .broker
                    .publish(&self.cfg.vhost, p.message, PublishOptions::default())
                    .map_err(super::core_error)?;
                lsn = lsn.max(outcome.lsn);
                Ok(Sent {
                    message_id: p.id,
                    sequence: None,
                })
            })
            .collect();
        (out, lsn)
    }

    /// The topic Publish names: TopicArn or TargetArn (phone numbers and platform
    /// endpoints are not delivered to yet).
    fn target(&self, p: &Params) -> Result<String, SnsError> {
        if p.get("PhoneNumber").is_some() {
            return Err(SnsError::bad("PhoneNumber Reason: SMS is not supported"));
        }
        let arn = p
            .get("TopicArn")
            .or_else(|| p.get("TargetArn"))
            .ok_or_else(|| {
                SnsError::bad("TopicArn or TargetArn Reason: no value for required parameter")
            })?;
        self.topic_of(arn)
    }

    pub(super) async fn publish(&self, p: &Params, ctx: &Ctx) -> Result<Out, SnsError> {
        let topic = self.target(p)?;
        let meta = self.topic(&topic).ok_or_else(SnsError::no_topic)?;
        let prepared = self.prepare(&topic, &meta, p, "", ctx)?;
        self.sqs.check_alarm()?;
        let (mut sent, lsn) = self.send(&topic, &meta, vec![Ok(prepared)]);
        let sent = sent
            .pop()
            .unwrap_or_else(|| Err(SnsError::internal("nothing published")))?;
        self.sqs.durable(lsn).await?;
        let mut out = Out::default();
        out.el("MessageId", &sent.message_id);
        if let Some(seq) = &sent.sequence {
            out.el("SequenceNumber", seq);
        }
        Ok(out)
    }
}

/// The Notification document for one message (unsigned), keys sorted as in the
/// captured `sns_envelope.json`. `body` is the text for this subscriber.
pub(super) fn notification_doc(
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

/// The signed JSON SNS delivers to a non-raw SQS subscription.
fn render_envelope(
    sub_arn: &str,
    m: &Message,
    base_url: &str,
    signer: Option<&Signer>,
    version: SignatureVersion,
) -> String {
    let mut env = notification_doc(sub_arn, m, &String::from_utf8_lossy(&m.body), base_url);
    // A FIFO topic's notifications carry a SequenceNumber and no signature (AWS).
    if env.contains_key("SequenceNumber") {
        return Json::Object(env).to_string();
    }
    match signer {
        Some(s) => s.sign_doc(&mut env, version, base_url),
        // Only if the key could not be made (logged): the fields are still there,
        // so parsers accept the document, but no signature verifies.
        None => {
            env.insert("SignatureVersion".into(), json!(version.as_str()));
            env.insert("Signature".into(), json!(""));
            env.insert("SigningCertURL".into(), json!(""));
        }
    }
    Json::Object(env).to_string()
}

/// A message published to a topic over AMQP, MQTT or STOMP has none of the headers
/// Publish sets: give it a topic ARN, a MessageId (its own, or one derived from its
/// content and time, so every receive of it shows the same) and a Timestamp.
pub(super) fn as_published(m: &Message, arn: String) -> Message {
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
pub(super) fn from_publish(m: &Message) -> bool {
    m.properties
        .headers
        .as_ref()
        .is_some_and(|h| h.get(TOPIC_ARN_HEADER).is_some())
}

impl Notifications for Sns {
    fn envelope(&self, queue: &str, m: &Message, base_url: &str) -> Option<String> {
        let from_publish = m
            .properties
            .headers
            .as_ref()
            .and_then(|h| h.get(TOPIC_ARN_HEADER))
            .and_then(Value::as_str)
            .map(str::to_string);
        let (topic, published);
        let m = match from_publish {
            Some(arn) => {
                topic = self.arn_parts(&arn)?.0;
                m
            }
            None => {
                topic = self.topic_of_message(m)?;
                published = as_published(m, self.topic_arn(&topic));
                &published
            }
        };
        let sub = self
            .subs(Some(&topic))
            .into_iter()
            .find(|s| s.queue == queue)?;
        if sub.raw() {
            return None;
        }
        let version = SignatureVersion::of(
            self.topic(&topic)
                .and_then(|t| t.attributes.get("SignatureVersion").cloned())
                .as_deref(),
        );
        let sub_arn = self.sub_arn(&sub.topic, &sub.id);
        let signer = self.signer.get().map(Arc::as_ref);
        Some(render_envelope(&sub_arn, m, base_url, signer, version))
    }

    fn ready<'a>(&'a self, messages: &'a [&'a Message]) -> BoxFuture<'a> {
        Box::pin(async move {
            let from_sns = messages.iter().any(|m| {
                m.exchange.starts_with("sns.")
                    || m.routing_key.starts_with("sns.")
                    || m.properties
                        .headers
                        .as_ref()
                        .is_some_and(|h| h.get(TOPIC_ARN_HEADER).is_some())
            });
            if from_sns && let Err(e) = self.signer().await {
                tracing::error!("SNS signing key: {e}");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captured envelope's keys, and that they are sorted there as here (the file
    /// holds the envelope and then a topic's attributes; the first document counts).
    #[test]
    fn envelope_matches_the_capture() {
        let capture = include_str!("../../tests/vectors/aws/sns_envelope.json");
        let want: serde_json::Map<String, Json> = serde_json::Deserializer::from_str(capture)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let at = |k: &String| capture.find(&format!("\n  \"{k}\":")).unwrap_or(usize::MAX);
        let keys: Vec<&String> = want.keys().collect();
        assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{keys:?}");
        let mut h = Table::new();
        h.insert("k".into(), Value::string("v"));
        h.insert(MESSAGE_ID_HEADER.into(), Value::string("d10c232f"));
        h.insert(
            TOPIC_ARN_HEADER.into(),
            Value::string("arn:aws:sns:us-east-1:1:t2"),
        );
        h.insert(
            TIMESTAMP_HEADER.into(),
            Value::string("2026-11-25T17:14:08.224Z"),
        );
        let m = Message {
            body: Bytes::from_static(b"hi"),
            ..Default::default()
        };
        let m = Message {
            properties: Properties {
                headers: Some(h),
                ..Default::default()
            },
            ..m
        };
        let signer = Signer::from_pem(include_str!("testdata/kat-key.pem"), "").ok();
        let text = render_envelope(
            "arn:aws:sns:us-east-1:1:t2:s",
            &m,
            "http://h:1",
            signer.as_ref(),
            SignatureVersion::V1,
        );
        let got: serde_json::Map<String, Json> = serde_json::from_str(&text).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), keys);
        for k in ["Message", "MessageAttributes", "Timestamp", "Type"] {
            assert_eq!(got[k], want[k], "{k}");
        }
        assert!(text.starts_with("{\"Message\":\"hi\",\"MessageAttributes\""));
        assert_eq!(
            got["UnsubscribeURL"],
            "http://h:1/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:1:t2:s"
        );
    }

    /// Found by the `sns_request` fuzz target: an attribute named like a header
    /// Publish sets was dropped on delivery, and `x-sns-message-structure` gave
    /// http and email subscribers a text the publisher never sent as theirs.
    #[test]
    fn reserved_attribute_names_are_refused() {
        let arn = "arn:aws:sns:us-east-1:1:t".to_string();
        for name in [
            "x-sns-message-structure",
            "x-sns-subject",
            "x-sqs-attribute-types",
            "x-death",
        ] {
            let p = Params::new(vec![
                ("Message".into(), "hello".into()),
                ("MessageAttributes.entry.1.Name".into(), name.into()),
                (
                    "MessageAttributes.entry.1.Value.DataType".into(),
                    "String".into(),
                ),
                (
                    "MessageAttributes.entry.1.Value.StringValue".into(),
                    r#"{"default":"spoofed"}"#.into(),
                ),
            ]);
            let e = build("t", arn.clone(), &TopicMeta::default(), &p, "", "u".into()).err();
            assert_eq!(e.map(|e| e.code), Some("InvalidParameterValue"), "{name}");
        }
        let p = Params::new(vec![
            ("Message".into(), "hello".into()),
            (
                "MessageAttributes.entry.1.Name".into(),
                "X-SNS-Subject".into(),
            ),
            (
                "MessageAttributes.entry.1.Value.DataType".into(),
                "String".into(),
            ),
            (
                "MessageAttributes.entry.1.Value.StringValue".into(),
                "v".into(),
            ),
        ]);
        let m = build("t", arn, &TopicMeta::default(), &p, "", "u".into())
            .map(|b| b.message)
            .map_err(|e| e.to_string());
        let shown = m.map(|m| convert::from_headers(m.properties.headers.as_ref()).len());
        assert_eq!(shown, Ok(1));
    }

    #[test]
    fn iso_timestamps_have_milliseconds() {
        assert_eq!(format_iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso_ms(1_764_090_848_224), "2025-11-25T17:14:08.224Z");
    }
}
