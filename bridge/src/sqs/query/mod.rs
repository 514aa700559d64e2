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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::{Map, Value};

use super::SqsError;
use crate::percent::percent_decode;

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

/// Decodes `application/x-www-form-urlencoded` bytes into pairs, in order.
///
/// Not `form_urlencoded::parse`: that replaces bytes that are not UTF-8 with U+FFFD,
/// which SQS accepts as message text, so a broken client would have its message body
/// silently altered instead of refused.
pub fn decode_form(form: &[u8]) -> Result<Vec<(String, String)>, SqsError> {
    let mut pairs = Vec::new();
    for pair in form.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let name = form_text(name).ok_or_else(|| {
            SqsError::invalid_parameter_value("A parameter name is not valid UTF-8.")
        })?;
        let value = form_text(value).ok_or_else(|| {
            SqsError::invalid_parameter_value(format!(
                "Value for parameter {name} is invalid. Reason: it is not valid UTF-8."
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
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

// ---- The shapes ----------------------------------------------------------------------

/// How a value travels. Every list and map in SQS is "flattened": its items sit directly
/// under the member's Query name (`AttributeName.1`, `<QueueUrl>` repeated), never
/// under a `member`/`entry` wrapper.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Text; blobs too, which are base64 text in both protocols.
    Str,
    /// 32-bit in requests (all request integers are); replies also use it for longs.
    Int,
    /// Replies only (`SenderFault`).
    Bool,
    /// Items at `{name}.N`; in XML, one `<name>` per item.
    List(&'static Shape),
    /// Entries at `{name}.N.{key}` and `{name}.N.{value}`; in XML,
    /// `<name><key/><value/></name>` per entry.
    Map {
        key: &'static str,
        value: &'static str,
        of: &'static Shape,
    },
    Struct(&'static [Member]),
}

#[derive(Debug)]
struct Member {
    /// The JSON protocol's name.
    json: &'static str,
    /// The Query protocol's name: for a list or map, that of one item.
    query: &'static str,
    shape: Shape,
}

struct Action {
    name: &'static str,
    input: &'static [Member],
    /// `None` for actions whose reply carries only the request id.
    output: Option<&'static [Member]>,
}

use Shape::{Bool, Int, List, Str, Struct};

const fn m(json: &'static str, query: &'static str, shape: Shape) -> Member {
    Member { json, query, shape }
}
const fn s(name: &'static str) -> Member {
    m(name, name, Str)
}
const fn int(name: &'static str) -> Member {
    m(name, name, Int)
}

const STRINGS: Shape = List(&Str);
/// QueueAttributeMap, MessageSystemAttributeMap.
const NAME_VALUE: Shape = Shape::Map {
    key: "Name",
    value: "Value",
    of: &Str,
};
const TAGS: Shape = Shape::Map {
    key: "Key",
    value: "Value",
    of: &Str,
};
/// MessageAttributeValue and MessageSystemAttributeValue (same members).
const ATTRIBUTE_VALUE: Shape = Struct(&[
    s("StringValue"),
    s("BinaryValue"),
    m("StringListValues", "StringListValue", STRINGS),
    m("BinaryListValues", "BinaryListValue", STRINGS),
    s("DataType"),
]);
const ATTRIBUTES: Shape = Shape::Map {
    key: "Name",
    value: "Value",
    of: &ATTRIBUTE_VALUE,
};
const QUEUE_URL: Member = s("QueueUrl");
const FAILED: Member = m(
    "Failed",
    "BatchResultErrorEntry",
    List(&Struct(&[
        s("Id"),
        m("SenderFault", "SenderFault", Bool),
        s("Code"),
        s("Message"),
    ])),
);
const IDS: Shape = Struct(&[s("Id")]);

static ACTIONS: [Action; 23] = [
    Action {
        name: "AddPermission",
        input: &[
            QUEUE_URL,
            s("Label"),
            m("AWSAccountIds", "AWSAccountId", STRINGS),
            m("Actions", "ActionName", STRINGS),
        ],
        output: None,
    },
    Action {
        name: "CancelMessageMoveTask",
        input: &[s("TaskHandle")],
        output: Some(&[int("ApproximateNumberOfMessagesMoved")]),
    },
    Action {
        name: "ChangeMessageVisibility",
        input: &[QUEUE_URL, s("ReceiptHandle"), int("VisibilityTimeout")],
        output: None,
    },
    Action {
        name: "ChangeMessageVisibilityBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "ChangeMessageVisibilityBatchRequestEntry",
                List(&Struct(&[
                    s("Id"),
                    s("ReceiptHandle"),
                    int("VisibilityTimeout"),
                ])),
            ),
        ],
        output: Some(&[
            m(
                "Successful",
                "ChangeMessageVisibilityBatchResultEntry",
                List(&IDS),
            ),
            FAILED,
        ]),
    },
    Action {
        name: "CreateQueue",
        input: &[
            s("QueueName"),
            m("Attributes", "Attribute", NAME_VALUE),
            m("tags", "Tag", TAGS),
        ],
        output: Some(&[QUEUE_URL]),
    },
    Action {
        name: "DeleteMessage",
        input: &[QUEUE_URL, s("ReceiptHandle")],
        output: None,
    },
    Action {
        name: "DeleteMessageBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "DeleteMessageBatchRequestEntry",
                List(&Struct(&[s("Id"), s("ReceiptHandle")])),
            ),
        ],
        output: Some(&[
            m("Successful", "DeleteMessageBatchResultEntry", List(&IDS)),
            FAILED,
        ]),
    },
    Action {
        name: "DeleteQueue",
        input: &[QUEUE_URL],
        output: None,
    },
    Action {
        name: "GetQueueAttributes",
        input: &[QUEUE_URL, m("AttributeNames", "AttributeName", STRINGS)],
        output: Some(&[m("Attributes", "Attribute", NAME_VALUE)]),
    },
    Action {
        name: "GetQueueUrl",
        input: &[s("QueueName"), s("QueueOwnerAWSAccountId")],
        output: Some(&[QUEUE_URL]),
    },
    Action {
        name: "ListDeadLetterSourceQueues",
        input: &[QUEUE_URL, s("NextToken"), int("MaxResults")],
        // Lower-case in JSON, as AWS named it.
        output: Some(&[m("queueUrls", "QueueUrl", STRINGS), s("NextToken")]),
    },
    Action {
        name: "ListMessageMoveTasks",
        input: &[s("SourceArn"), int("MaxResults")],
        output: Some(&[m(
            "Results",
            "ListMessageMoveTasksResultEntry",
            List(&Struct(&[
                s("TaskHandle"),
                s("Status"),
                s("SourceArn"),
                s("DestinationArn"),
                int("MaxNumberOfMessagesPerSecond"),
                int("ApproximateNumberOfMessagesMoved"),
                int("ApproximateNumberOfMessagesToMove"),
                s("FailureReason"),
                int("StartedTimestamp"),
            ])),
        )]),
    },
    Action {
        name: "ListQueueTags",
        input: &[QUEUE_URL],
        output: Some(&[m("Tags", "Tag", TAGS)]),
    },
    Action {
        name: "ListQueues",
        input: &[s("QueueNamePrefix"), s("NextToken"), int("MaxResults")],
        output: Some(&[m("QueueUrls", "QueueUrl", STRINGS), s("NextToken")]),
    },
    Action {
        name: "PurgeQueue",
        input: &[QUEUE_URL],
        output: None,
    },
    Action {
        name: "ReceiveMessage",
        input: &[
            QUEUE_URL,
            m("AttributeNames", "AttributeName", STRINGS),
            // AWS's model gives MessageSystemAttributeNames the Query name
            // `AttributeName` too, so on Query both arrive as AttributeNames. This
            // name is ours, for clients that derive it from the JSON name; AWS ignores it.
            m(
                "MessageSystemAttributeNames",
                "MessageSystemAttributeName",
                STRINGS,
            ),
            m("MessageAttributeNames", "MessageAttributeName", STRINGS),
            int("MaxNumberOfMessages"),
            int("VisibilityTimeout"),
            int("WaitTimeSeconds"),
            s("ReceiveRequestAttemptId"),
        ],
        output: Some(&[m(
            "Messages",
            "Message",
            List(&Struct(&[
                s("MessageId"),
                s("ReceiptHandle"),
                s("MD5OfBody"),
                s("Body"),
                m("Attributes", "Attribute", NAME_VALUE),
                s("MD5OfMessageAttributes"),
                m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
            ])),
        )]),
    },
    Action {
        name: "RemovePermission",
        input: &[QUEUE_URL, s("Label")],
        output: None,
    },
    Action {
        name: "SendMessage",
        input: &[
            QUEUE_URL,
            s("MessageBody"),
            int("DelaySeconds"),
            m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
            m(
                "MessageSystemAttributes",
                "MessageSystemAttribute",
                ATTRIBUTES,
            ),
            s("MessageDeduplicationId"),
            s("MessageGroupId"),
        ],
        output: Some(&[
            s("MD5OfMessageBody"),
            s("MD5OfMessageAttributes"),
            s("MD5OfMessageSystemAttributes"),
            s("MessageId"),
            s("SequenceNumber"),
        ]),
    },
    Action {
        name: "SendMessageBatch",
        input: &[
            QUEUE_URL,
            m(
                "Entries",
                "SendMessageBatchRequestEntry",
                List(&Struct(&[
                    s("Id"),
                    s("MessageBody"),
                    int("DelaySeconds"),
                    m("MessageAttributes", "MessageAttribute", ATTRIBUTES),
                    m(
                        "MessageSystemAttributes",
                        "MessageSystemAttribute",
                        ATTRIBUTES,
                    ),
                    s("MessageDeduplicationId"),
                    s("MessageGroupId"),
                ])),
            ),
        ],
        output: Some(&[
            m(
                "Successful",
                "SendMessageBatchResultEntry",
                List(&Struct(&[
                    s("Id"),
                    s("MessageId"),
                    s("MD5OfMessageBody"),
                    s("MD5OfMessageAttributes"),
                    s("MD5OfMessageSystemAttributes"),
                    s("SequenceNumber"),
                ])),
            ),
            FAILED,
        ]),
    },
    Action {
        name: "SetQueueAttributes",
        input: &[QUEUE_URL, m("Attributes", "Attribute", NAME_VALUE)],
        output: None,
    },
    Action {
        name: "StartMessageMoveTask",
        input: &[
            s("SourceArn"),
            s("DestinationArn"),
            int("MaxNumberOfMessagesPerSecond"),
        ],
        output: Some(&[s("TaskHandle")]),
    },
    Action {
        name: "TagQueue",
        input: &[QUEUE_URL, m("Tags", "Tag", TAGS)],
        output: None,
    },
    Action {
        name: "UntagQueue",
        input: &[QUEUE_URL, m("TagKeys", "TagKey", STRINGS)],
        output: None,
    },
];

fn find(action: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == action)
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

/// A form field as text: Query parameters are UTF-8, and bytes that are not are
/// refused rather than replaced.
fn form_text(raw: &[u8]) -> Option<String> {
    String::from_utf8(percent_decode(raw, true)).ok()
}

// ---- Replies -------------------------------------------------------------------------

fn write_members(x: &mut String, members: &[Member], value: &Map<String, Value>) {
    for member in members {
        if let Some(v) = value.get(member.json) {
            write(x, member.query, member.shape, v);
        }
    }
}

fn write(x: &mut String, name: &str, shape: Shape, v: &Value) {
    match shape {
        Str | Int | Bool => {
            let text = match v {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
                _ => return,
            };
            open(x, name, "");
            push_text(x, &text);
            close(x, name, "");
        }
        List(item) => {
            for v in v.as_array().into_iter().flatten() {
                write(x, name, *item, v);
            }
        }
        Shape::Map { key, value, of } => {
            for (k, v) in v.as_object().into_iter().flatten() {
                let start = x.len();
                open(x, name, "");
                open(x, key, "");
                push_text(x, k);
                close(x, key, "");
                let before = x.len();
                write(x, value, *of, v);
                // No entry at all rather than a name without a value (a null, say).
                if x.len() == before {
                    x.truncate(start);
                } else {
                    close(x, name, "");
                }
            }
        }
        Struct(members) => {
            if let Some(fields) = v.as_object() {
                open(x, name, "");
                write_members(x, members, fields);
                close(x, name, "");
            }
        }
    }
}

fn open(x: &mut String, name: &str, suffix: &str) {
    x.push('<');
    x.push_str(name);
    x.push_str(suffix);
    x.push('>');
}

fn close(x: &mut String, name: &str, suffix: &str) {
    x.push_str("</");
    x.push_str(name);
    x.push_str(suffix);
    x.push('>');
}

/// Appends `text` as XML character data that a parser gives back unchanged: CR is
/// written as `&#xD;` because XML parsers turn a literal CR (or CR LF) into LF, as AWS
/// does for message bodies. Characters XML 1.0 cannot carry at all, even as references
/// (most C0 controls, U+FFFE, U+FFFF), become U+FFFD rather than make the whole reply
/// unreadable. SQS refuses them in messages, so only data from elsewhere can hold them.
fn push_text(x: &mut String, text: &str) {
    let mut done = 0;
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            // Only needed after `]]`; escaping every one is simpler and as valid.
            '>' => "&gt;",
            '\r' => "&#xD;",
            '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => {
                continue;
            }
            _ => "\u{FFFD}",
        };
        x.push_str(&text[done..at]);
        x.push_str(escaped);
        done = at + c.len_utf8();
    }
    x.push_str(&text[done..]);
}

#[cfg(test)]
mod tests;
