//! Publish, and each entry of PublishBatch (`batch.rs`): one persistent message to
//! the topic's exchange, with the attributes as headers (as SQS stores them) and
//! SNS's own `x-sns-*` headers; and the notification envelope an SQS subscriber
//! receives unless it asked for raw delivery, rendered when SQS hands the message
//! out.

use super::fifo::{self, Sent};
use super::meta::TopicMeta;
use super::notification::{
    MESSAGE_ID_HEADER, Prepared, STRUCTURE_HEADER, SUBJECT_HEADER, TIMESTAMP_HEADER,
    TOPIC_ARN_HEADER, as_published, from_publish, notification_doc,
};
use super::params::check_string_array;
use super::signing::{SignatureVersion, Signer};
use super::xml::Out;
use super::{Params, Sns, SnsError};
use crate::sigv4::format_iso_ms;
use crate::sqs::convert;
use crate::sqs::{BoxFuture, Ctx, Notifications};
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};
use std::borrow::Cow;
use std::sync::Arc;
use switchboard_api::{Message, Properties, PublishOptions, Table, Value};

/// SNS's message size limit: the message plus its attributes' names, types and
/// values (PublishBatch: all entries together).
pub(super) const MAX_SIZE: usize = 262_144;

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

impl Sns {
    /// An SNS notification the receiver of `queue` gets in the envelope: the message
    /// as published, the subscription's ARN and the topic's signature version.
    /// `None` when it is not from SNS, or the subscription is raw.
    fn enveloped<'m>(
        &self,
        queue: &str,
        m: &'m Message,
    ) -> Option<(Cow<'m, Message>, String, SignatureVersion)> {
        let from_publish = m
            .properties
            .headers
            .as_ref()
            .and_then(|h| h.get(TOPIC_ARN_HEADER))
            .and_then(Value::as_str);
        let (topic, m) = match from_publish {
            Some(arn) => (self.arn_parts(arn)?.0, Cow::Borrowed(m)),
            None => {
                let topic = self.topic_of_message(m)?;
                let published = as_published(m, self.topic_arn(&topic));
                (topic, Cow::Owned(published))
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
        Some((m, self.sub_arn(&sub.topic, &sub.id), version))
    }
}

impl Notifications for Sns {
    fn envelope(&self, queue: &str, m: &Message, base_url: &str) -> Option<String> {
        let (m, sub_arn, version) = self.enveloped(queue, m)?;
        let signer = self.signer.get().map(Arc::as_ref);
        Some(render_envelope(&sub_arn, &m, base_url, signer, version))
    }

    /// Makes the key if need be, then signs the batch's notifications on a blocking
    /// thread (about 1.4 ms of CPU each): rendering then finds the signatures kept
    /// ([`Signer::sign`]), and the async threads stay free for other requests.
    fn ready<'a>(&'a self, queue: &'a str, messages: &'a [&'a Message]) -> BoxFuture<'a> {
        Box::pin(async move {
            let from_sns = messages.iter().any(|m| {
                m.exchange.starts_with("sns.")
                    || m.routing_key.starts_with("sns.")
                    || from_publish(m)
            });
            if !from_sns {
                return;
            }
            let signer = match self.signer().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("SNS signing key: {e}");
                    return;
                }
            };
            let texts: Vec<(SignatureVersion, String)> = messages
                .iter()
                .filter_map(|m| {
                    let (m, _, version) = self.enveloped(queue, m)?;
                    let doc = notification_doc("", &m, &String::from_utf8_lossy(&m.body), "");
                    // FIFO notifications are not signed (AWS).
                    (!doc.contains_key("SequenceNumber"))
                        .then(|| (version, super::signing::string_to_sign(&doc)))
                })
                .collect();
            if texts.is_empty() {
                return;
            }
            let _ = tokio::task::spawn_blocking(move || {
                for (version, text) in texts {
                    signer.sign(version, &text);
                }
            })
            .await;
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
