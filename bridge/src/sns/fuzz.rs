//! The SNS side of the `sns_request` fuzz target, shared with the corpus replay
//! tests so that both hold every input to the same checks.
//!
//! An input's first byte splits it: the head (at most 255 bytes) is free text, used
//! as a filter policy, a DeliveryPolicy, a MessageStructure=json message and a
//! message body; the tail is a Query form, read as the HTTP handler reads it and
//! then through everything an action checks before it touches the broker. The
//! core's filter policies are not reachable from this crate (the core depends on
//! it), so [`check_request`] hands back the binding arguments and the messages, and
//! `switchboard::fuzz` compiles and evaluates them.
//!
//! Nothing here panics on purpose: a broken invariant comes back as `Err` for the
//! caller to panic on, so that this stays library code like the rest.

use super::error::SnsError;
use super::meta::TopicMeta;
use super::xml::{self, Out};
use super::{ACTIONS, Params, batch, notification, policy, publish, subscriptions, topics};
use crate::sqs::{convert, query};
use quick_xml::events::Event;
use std::collections::BTreeMap;
use switchboard_api::{Message, Table};

/// What a request carries for the core's filter stage.
#[derive(Default)]
pub struct Parsed {
    /// Binding arguments (`x-filter-policy`, `x-filter-policy-scope`) as Subscribe
    /// and SetSubscriptionAttributes would bind them, and the head in both scopes.
    pub filters: Vec<Table>,
    /// Messages as Publish and PublishBatch would route them, and the head as a body.
    pub messages: Vec<Message>,
    /// Invariants found broken on the way, for [`check_request`] to return.
    broken: Vec<String>,
}

const TOPIC: &str = "t";
const ARN: &str = "arn:aws:sns:us-east-1:000000000000:t";

/// Runs one fuzz input through the SNS side; `Err` names a broken invariant.
pub fn check_request(data: &[u8]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let Some(&first) = data.first() else {
        return Ok(out);
    };
    let (head, tail) = data[1..].split_at(usize::from(first).min(data.len() - 1));
    let head = String::from_utf8_lossy(head);
    check_head(&head, &mut out)?;
    let reply = match query::decode_form(tail).and_then(|pairs| {
        let action = query::action_of(&pairs)?.to_string();
        Ok((pairs, action))
    }) {
        Ok((pairs, action)) => {
            let p = Params::new(pairs);
            run(&action, &p, &mut out).map(|r| (action, r))
        }
        Err(e) => Err(e.into()),
    };
    match reply {
        Ok((action, result)) => check_response(&xml::response(&action, result, "req"))?,
        Err(e) => check_error(&e)?,
    }
    // Escaping on arbitrary text, whatever the form made of it.
    check_error(&SnsError::bad(String::from_utf8_lossy(tail)))?;
    match out.broken.first() {
        Some(b) => Err(b.clone()),
        None => Ok(out),
    }
}

/// The head as each of the JSON documents a request may carry.
fn check_head(head: &str, out: &mut Parsed) -> Result<(), String> {
    for scope in ["MessageAttributes", "MessageBody"] {
        let attrs = BTreeMap::from([
            ("FilterPolicy".to_string(), head.to_string()),
            ("FilterPolicyScope".to_string(), scope.to_string()),
        ]);
        out.filters.push(notification::filter_args(&attrs));
    }
    out.messages.push(Message {
        body: bytes::Bytes::from(head.to_string()),
        ..Default::default()
    });
    let checked = policy::check_subscription(head).is_ok() && policy::check_topic(head).is_ok();
    let e = policy::effective(Some(head), Some(head));
    serde_json::from_str::<serde_json::Value>(&e.to_json())
        .map_err(|err| format!("EffectiveDeliveryPolicy is not JSON: {err}"))?;
    // A checked policy's schedule never waits past maxDelayTarget, and never less
    // than before (the phases come in rising order).
    let r = &e.retry;
    let mut last = std::time::Duration::ZERO;
    for n in 1..=r.num_retries.min(200) {
        let d = r
            .delay(n)
            .ok_or(format!("no delay for retry {n} of {r:?}"))?;
        if checked && (d < last || d.as_secs() > u64::from(r.max_delay_target)) {
            return Err(format!("retry {n} waits {d:?} after {last:?} in {r:?}"));
        }
        last = d;
    }
    if r.delay(r.num_retries.saturating_add(1)).is_some() && r.num_retries < u32::MAX {
        return Err(format!("a retry past numRetries in {r:?}"));
    }
    if let Ok(per) = publish::structure(head) {
        out.messages.push(structured(head, &per)?);
    }
    Ok(())
}

/// A MessageStructure=json message as Publish stores it, checked to give each
/// protocol its own text or the default.
fn structured(
    raw: &str,
    per: &serde_json::Map<String, serde_json::Value>,
) -> Result<Message, String> {
    let p = Params::new(vec![
        ("Message".into(), raw.into()),
        ("MessageStructure".into(), "json".into()),
    ]);
    let m = publish::build(TOPIC, ARN.into(), &TopicMeta::default(), &p, "", "u".into())
        .map_err(|e| format!("a parsed MessageStructure was refused: {e}"))?
        .message;
    for protocol in ["sqs", "http", "https", "email", "email-json", "lambda"] {
        let want = per.get(protocol).or_else(|| per.get("default"));
        let got = notification::text_for(&m, protocol);
        if want.and_then(|w| w.as_str()) != Some(got.as_str()) {
            return Err(format!("{protocol} gets {got:?}, not {want:?}"));
        }
    }
    Ok(m)
}

/// The action's offline part: everything it checks before it reaches the broker,
/// and a Result shaped as the real one.
fn run(action: &str, p: &Params, out: &mut Parsed) -> Result<Option<Out>, SnsError> {
    if !ACTIONS.contains(&action) {
        return Err(SnsError::invalid_action(format!(
            "The action {action} is not valid for this endpoint."
        )));
    }
    // Every shape, whatever the action, so that each input reaches each parser.
    let attributes = p.map("Attributes", "key", "value");
    let tags = p.tags("Tags");
    let keys = p.list("TagKeys");
    let mut result = Out::default();
    match action {
        "CreateTopic" => {
            let name = p.req("Name")?;
            let mut attributes = attributes?;
            let fifo = attributes
                .remove("FifoTopic")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            super::fifo::check_name(name, fifo)?;
            for (k, v) in &attributes {
                topics::check_attribute(k)?;
                topics::check_value(k, v, fifo)?;
            }
            tags?;
            result.el(
                "TopicArn",
                &format!("arn:aws:sns:us-east-1:000000000000:{name}"),
            );
        }
        "SetTopicAttributes" => {
            let name = p.req("AttributeName")?;
            topics::check_attribute(name)?;
            let value = p.get("AttributeValue").unwrap_or("");
            topics::check_value(name, value, false)
                .or_else(|_| topics::check_value(name, value, true))?;
            return Ok(None);
        }
        "Subscribe" => {
            p.req("Protocol")?;
            p.req("Endpoint")?;
            let attributes = attributes?;
            for (k, v) in &attributes {
                subscriptions::check_attribute(k, v)?;
            }
            out.filters.push(notification::filter_args(&attributes));
            result.el("SubscriptionArn", &format!("{ARN}:id"));
        }
        "SetSubscriptionAttributes" => {
            let name = p.req("AttributeName")?;
            let value = p.get("AttributeValue").unwrap_or("");
            subscriptions::check_attribute(name, value)?;
            let attrs = BTreeMap::from([(name.to_string(), value.to_string())]);
            out.filters.push(notification::filter_args(&attrs));
            return Ok(None);
        }
        "Publish" => {
            // The standard topic's answer is the reply; the FIFO ones run for their
            // checks and messages.
            let [standard, fifo @ ..] = metas();
            for meta in &fifo {
                let _ = message(p, "", meta, out);
            }
            result.el("MessageId", &message(p, "", &standard, out)?);
        }
        "PublishBatch" => {
            let mut reply = None;
            for meta in metas() {
                let entries = batch::batch_entries(p, &meta)?;
                let sent = entries
                    .iter()
                    .map(|e| {
                        message(p, &format!("{e}."), &meta, out).map(|id| super::fifo::Sent {
                            message_id: id,
                            sequence: meta.fifo().then(|| "1".into()),
                        })
                    })
                    .collect();
                reply = Some(batch::batch_reply(p, &entries, sent));
            }
            return Ok(reply);
        }
        _ => {
            result
                .entries(
                    "Attributes",
                    attributes.iter().flatten().map(|(k, v)| (&**k, &**v)),
                )
                .entries("Tags", tags.iter().flatten().map(|(k, v)| (&**k, &**v)));
            for k in &keys {
                result.el("member", k);
            }
        }
    }
    Ok(Some(result))
}

/// The topics a message is tried on: standard, and FIFO with and without
/// content-based deduplication.
fn metas() -> [TopicMeta; 3] {
    let fifo = |dedup: &str| TopicMeta {
        attributes: BTreeMap::from([
            ("FifoTopic".into(), "true".into()),
            ("ContentBasedDeduplication".into(), dedup.into()),
        ]),
        ..Default::default()
    };
    [TopicMeta::default(), fifo("true"), fifo("false")]
}

/// One message at `prefix` as Publish builds it; its attributes must come back
/// from the stored headers unchanged (what subscribers are shown).
fn message(
    p: &Params,
    prefix: &str,
    meta: &TopicMeta,
    out: &mut Parsed,
) -> Result<String, SnsError> {
    let built = publish::build(TOPIC, ARN.into(), meta, p, prefix, "u".into())?;
    let mut sent = convert::parse(Some(&p.message_attributes(prefix)?), "user")?;
    // Only the value of the attribute's type is kept (a Binary's StringValue is not
    // a value of it, as on AWS); that one must come back.
    for a in sent.values_mut() {
        if a.data_type.starts_with("Binary") {
            a.string_value = None;
        } else {
            a.binary_value = None;
        }
    }
    let shown = convert::from_headers(built.message.properties.headers.as_ref());
    if shown != sent {
        out.broken
            .push(format!("attributes {sent:?} are stored as {shown:?}"));
    }
    out.messages.push(built.message);
    Ok(built.id)
}

/// An error reply: well-formed, `<ErrorResponse>`, and its Message is the error's
/// text as a parser reads it (characters XML cannot carry become U+FFFD).
pub fn check_error(e: &SnsError) -> Result<(), String> {
    let x = xml::error(e, "req");
    if !x.starts_with("<ErrorResponse") {
        return Err(format!("not an ErrorResponse: {x}"));
    }
    let texts = parse(&x)?;
    let want: String = e.message.chars().map(xml_char).collect();
    let got = texts.iter().find(|(n, _)| n == "Message").map(|(_, t)| t);
    if got != Some(&want) {
        return Err(format!("Message reads back as {got:?}, not {want:?}: {x}"));
    }
    Ok(())
}

fn check_response(x: &str) -> Result<(), String> {
    parse(x).map(|_| ())
}

fn xml_char(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => c,
        _ => '\u{FFFD}',
    }
}

/// Each element's name and text, if `x` is one well-formed element.
fn parse(x: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = quick_xml::Reader::from_str(x);
    let mut open: Vec<(String, String)> = Vec::new();
    let mut done = Vec::new();
    let mut roots = 0;
    loop {
        let event = reader.read_event().map_err(|e| format!("{e}: {x}"))?;
        let text = match event {
            Event::Start(e) => {
                if open.is_empty() {
                    roots += 1;
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                open.push((name, String::new()));
                continue;
            }
            Event::End(_) => {
                done.extend(open.pop());
                continue;
            }
            Event::Eof => break,
            Event::Text(t) => t
                .xml10_content()
                .map_err(|e| format!("{e}: {x}"))?
                .into_owned(),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| format!("{e}: {x}"))? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| format!("{e}: {x}"))?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity {other}: {x}")),
                    },
                };
                c.to_string()
            }
            other => return Err(format!("unexpected {other:?}: {x}")),
        };
        match open.last_mut() {
            Some((_, t)) => t.push_str(&text),
            None => return Err(format!("text outside the root: {x}")),
        }
    }
    if roots != 1 || !open.is_empty() {
        return Err(format!("not one element: {x}"));
    }
    Ok(done)
}
