//! The AWS Query protocol for SQS: form bodies (`Action=SendMessage&Version=2012-11-05
//! &MessageAttribute.1.Name=...`) in, XML replies out. It is only a translation: the
//! actions are written once against the JSON protocol's shapes, and this module turns a
//! Query request into the JSON input an SDK on the JSON protocol would have sent, and
//! the JSON output into the XML an SDK on the Query protocol expects.
//!
//! The names come from a botocore model of the days when SQS spoke Query (1.34.22, kept
//! in `tests/query/sqs-2012-11-05.query-model.json`): today's botocore model is
//! JSON-only and has lost the Query names. `tests/query/botocore_roundtrip.py` derives
//! the known answers under `tests/query/` from that model with botocore's own
//! serializers, and checks rendered XML with botocore's own parser.

mod actions;
mod xml;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::{Map, Value};

use crate::awsquery::push_text;
use crate::sqs::error::SqsError;
use actions::Shape::{self, Bool, Int, List, Str, Struct};
use actions::{Member, find};
use xml::{close, open, write_members};

/// The namespace of every Query reply, errors included.
pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Parses a form body (or, for GET, the URL query string) into the action name and the
/// JSON protocol's input for that action. `Version` is not checked: the tables describe
/// 2012-11-05, which is what every SDK sends.
pub fn parse_request(form: &[u8]) -> Result<(String, Value), SqsError> {
    let params = decode_form(form)?;
    let action = action_of(&params)?;
    let input = params_to_json(action, &params)?;
    Ok((action.to_owned(), input))
}

/// The action named by already-decoded pairs, for callers that merge the URL's query
/// string with the body before calling [`params_to_json`].
pub fn action_of(params: &[(String, String)]) -> Result<&str, SqsError> {
    match params.iter().find(|(k, _)| k == "Action") {
        Some((_, action)) if !action.is_empty() => Ok(action),
        // AWS's own code for this, not MissingParameter.
        _ => Err(SqsError::missing_action(
            "The request is missing an action or a required parameter.",
        )),
    }
}

/// Turns decoded pairs into the JSON protocol's input for `action`. Parameters the
/// action does not take are ignored, as AWS does (signatures, `Version`, `Expires`...).
/// When a name repeats, the first one counts. List items and map entries are ordered
/// by their index N (1, 2, ..., 10), which may have gaps.
pub fn params_to_json(action: &str, params: &[(String, String)]) -> Result<Value, SqsError> {
    let spec = find(action).ok_or_else(|| {
        SqsError::invalid_action(format!(
            "The action {action} is not valid for this endpoint."
        ))
    })?;
    let mut by_name = Params::new();
    for (k, v) in params {
        by_name.entry(k.as_str()).or_insert(v.as_str());
    }
    let mut input = Map::new();
    read_members(&by_name, "", spec.input, &mut input)?;
    Ok(Value::Object(input))
}

/// Decodes a form body; see [`crate::awsquery::decode_form`].
pub fn decode_form(form: &[u8]) -> Result<Vec<(String, String)>, SqsError> {
    crate::awsquery::decode_form(form).map_err(|e| SqsError::invalid_parameter_value(e.0))
}

/// The XML reply for a successful action, from its JSON protocol output. Members the
/// Query shape does not have are left out, and so are nulls and empty lists and maps,
/// which the Query protocol cannot tell from absent ones anyway.
pub fn response_xml(action: &str, output: &Value, request_id: &str) -> String {
    let spec = find(action);
    // An unknown name cannot come from parse_request; keep the XML well-formed anyway.
    let name: Cow<str> = match spec {
        Some(spec) => spec.name.into(),
        None => action.chars().filter(char::is_ascii_alphabetic).collect(),
    };
    let mut x = String::with_capacity(256);
    x.push('<');
    x.push_str(&name);
    x.push_str("Response xmlns=\"");
    x.push_str(XMLNS);
    x.push_str("\">");
    // Actions without output have no Result element at all on AWS (DeleteMessage...).
    if let Some(members) = spec.and_then(|s| s.output) {
        let start = x.len();
        open(&mut x, &name, "Result");
        let empty = x.len();
        if let Some(output) = output.as_object() {
            write_members(&mut x, members, output);
        }
        if x.len() == empty {
            x.truncate(start);
            x.push('<');
            x.push_str(&name);
            x.push_str("Result/>");
        } else {
            close(&mut x, &name, "Result");
        }
    }
    x.push_str("<ResponseMetadata><RequestId>");
    push_text(&mut x, request_id);
    x.push_str("</RequestId></ResponseMetadata>");
    close(&mut x, &name, "Response");
    x
}

/// The XML error reply, as AWS sends it.
pub fn error_xml(err: &SqsError, request_id: &str) -> String {
    let mut x = String::with_capacity(256);
    x.push_str("<ErrorResponse xmlns=\"");
    x.push_str(XMLNS);
    x.push_str("\"><Error><Type>");
    x.push_str(if err.sender { "Sender" } else { "Receiver" });
    x.push_str("</Type><Code>");
    push_text(&mut x, err.query_code);
    x.push_str("</Code><Message>");
    push_text(&mut x, query_message(err));
    x.push_str("</Message><Detail/></Error><RequestId>");
    push_text(&mut x, request_id);
    x.push_str("</RequestId></ErrorResponse>");
    x
}

/// AWS words some errors differently on the two protocols; the JSON wording is the one
/// the actions use.
fn query_message(err: &SqsError) -> &str {
    const QUERY_WORDING: &[(&str, &str, &str)] = &[(
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
        "The specified queue does not exist for this wsdl version.",
    )];
    QUERY_WORDING
        .iter()
        .find(|(code, json, _)| *code == err.query_code && *json == err.message)
        .map_or(&err.message, |(_, _, query)| query)
}

// ---- Requests ------------------------------------------------------------------------

/// Sorted, so that the indices under a prefix are one range scan away.
type Params<'a> = BTreeMap<&'a str, &'a str>;

fn read_members(
    p: &Params,
    prefix: &str,
    members: &[Member],
    out: &mut Map<String, Value>,
) -> Result<(), SqsError> {
    for member in members {
        if let Some(v) = read(p, &format!("{prefix}{}", member.query), member.shape)? {
            out.insert(member.json.to_owned(), v);
        }
    }
    Ok(())
}

fn read(p: &Params, name: &str, shape: Shape) -> Result<Option<Value>, SqsError> {
    Ok(match shape {
        Str => p.get(name).map(|v| Value::from(*v)),
        Int => match p.get(name) {
            Some(v) => Some(Value::from(v.parse::<i32>().map_err(|_| {
                SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter {name} is invalid. Reason: Must be an integer."
                ))
            })?)),
            None => None,
        },
        Bool => p.get(name).map(|v| Value::Bool(*v == "true")),
        List(item) => {
            let mut items = Vec::new();
            for n in indices(p, name) {
                if let Some(v) = read(p, &format!("{name}.{n}"), *item)? {
                    items.push(v);
                }
            }
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Shape::Map { key, value, of } => {
            let mut map = Map::new();
            for n in indices(p, name) {
                let entry = format!("{name}.{n}");
                let v = read(p, &format!("{entry}.{value}"), *of)?;
                let Some(k) = p.get(format!("{entry}.{key}").as_str()) else {
                    if v.is_some() {
                        return Err(missing(format!("{entry}.{key}")));
                    }
                    continue;
                };
                let v = match v {
                    Some(v) => v,
                    // Message attributes: the action explains what the value lacks,
                    // as it does for `{"color": {}}` on the JSON protocol.
                    None if matches!(of, Struct(_)) => Value::Object(Map::new()),
                    None => return Err(missing(format!("{entry}.{value}"))),
                };
                // The last duplicate wins, as in a JSON object.
                map.insert((*k).to_owned(), v);
            }
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Struct(members) => {
            let mut fields = Map::new();
            read_members(p, &format!("{name}."), members, &mut fields)?;
            (!fields.is_empty()).then_some(Value::Object(fields))
        }
    })
}

fn missing(name: String) -> SqsError {
    SqsError::missing_parameter(format!("The request must contain the parameter {name}."))
}

/// The indices N present as `{name}.N` or `{name}.N.*`, in numeric order.
fn indices(p: &Params, name: &str) -> BTreeSet<u32> {
    let prefix = format!("{name}.");
    p.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .map_while(|(k, _)| k.strip_prefix(prefix.as_str()))
        .filter_map(|rest| index(rest.split('.').next().unwrap_or(rest)))
        .collect()
}

/// Only the canonical spelling (`1`, not `01` or `+1`), so two names cannot claim the
/// same item; N starts at 1.
fn index(segment: &str) -> Option<u32> {
    let digits = segment.bytes().all(|b| b.is_ascii_digit());
    if !digits || segment.starts_with('0') {
        return None;
    }
    segment.parse().ok()
}

#[cfg(test)]
mod tests;
