//! SQS message attributes ⇄ core message headers (which AMQP sees as headers, MQTT 5
//! as user properties, STOMP as headers).
//!
//! String → string header, Binary → byte-array header, Number → integer header when
//! it is a plain integer, else a string header. Custom types (`Number.float`) and
//! numbers whose spelling an integer would lose (`1.50`) are listed in the
//! `x-sqs-attribute-types` header so SQS → SQS is exact. In the other direction any
//! header of a scalar type becomes an attribute.

use super::SqsError;
use super::digest::AttributeValue;
use bytes::Bytes;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use switchboard_api::{Table, Value};

pub const TYPES_HEADER: &str = switchboard_api::ATTRIBUTE_TYPES_HEADER;
pub const SEQUENCE_HEADER: &str = "x-sqs-sequence-number";
pub const TRACE_HEADER: &str = "x-sqs-aws-trace-header";
pub const MAX_ATTRIBUTES: usize = 10;

pub type Attributes = BTreeMap<String, AttributeValue>;

fn bad(msg: String) -> SqsError {
    SqsError::invalid_parameter_value(msg)
}

/// AWS's attribute name rule.
pub fn valid_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Reads and checks `MessageAttributes` (or `MessageSystemAttributes`).
pub fn parse(attrs: Option<&Map<String, Json>>, what: &str) -> Result<Attributes, SqsError> {
    let mut out = Attributes::new();
    let Some(attrs) = attrs else { return Ok(out) };
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(bad(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attrs.len()
        )));
    }
    for (name, v) in attrs {
        if !valid_name(name) {
            return Err(bad(format!(
                "Message ({what}) attribute name '{name}' is invalid."
            )));
        }
        let a: AttributeValue = serde_json::from_value(v.clone()).map_err(|_| {
            bad(format!(
                "The message ({what}) attribute '{name}' is not a valid message attribute value."
            ))
        })?;
        if a.data_type.is_empty() {
            return Err(bad(format!(
                "The message ({what}) attribute '{name}' must contain non-empty message attribute type."
            )));
        }
        let base = a.data_type.split('.').next().unwrap_or("");
        match base {
            "String" | "Number" => {
                let s = a.string_value.as_deref().unwrap_or("");
                if s.is_empty() {
                    return Err(bad(format!(
                        "The message ({what}) attribute '{name}' must contain a non-empty message attribute value for message attribute type '{base}'."
                    )));
                }
                if base == "Number" && !is_number(s) {
                    return Err(bad(format!(
                        "Can't cast the value of message ({what}) attribute '{name}' to a number."
                    )));
                }
                if !valid_chars(s) {
                    return Err(SqsError::invalid_message_contents(format!(
                        "Invalid characters found in the value of message ({what}) attribute '{name}'."
                    )));
                }
            }
            "Binary" => {
                if a.binary_value.as_ref().is_none_or(|b| b.is_empty()) {
                    return Err(bad(format!(
                        "The message ({what}) attribute '{name}' must contain a non-empty message attribute value for message attribute type 'Binary'."
                    )));
                }
            }
            _ => {
                return Err(bad(format!(
                    "The type of message ({what}) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
                )));
            }
        }
        out.insert(name.clone(), a);
    }
    Ok(out)
}

/// The characters SQS accepts in a message body or attribute value: XML's, minus
/// nothing else. It lives here, below send, because attribute parsing needs it too.
pub fn valid_chars(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    })
}

/// SQS numbers: up to 38 significant digits, within ±10^126.
fn is_number(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    digits > 0 && digits <= 38 && s.trim().parse::<f64>().is_ok_and(|f| f.is_finite())
}

/// Bytes counted against MaximumMessageSize: names, types and values.
pub fn size(attrs: &Attributes) -> usize {
    attrs
        .iter()
        .map(|(k, a)| {
            k.len()
                + a.data_type.len()
                + a.string_value.as_ref().map_or(0, String::len)
                + a.binary_value.as_ref().map_or(0, Bytes::len)
        })
        .sum()
}

/// The headers that carry the attributes.
pub fn to_headers(attrs: &Attributes, headers: &mut Table) {
    let mut types = Table::new();
    for (name, a) in attrs {
        let plain = a.data_type == "String" || a.data_type == "Number" || a.data_type == "Binary";
        let value = match (
            a.data_type.split('.').next(),
            &a.string_value,
            &a.binary_value,
        ) {
            (Some("Binary"), _, Some(b)) => Value::Bytes(b.clone()),
            (Some("Number"), Some(s), _) => match s.parse::<i64>() {
                Ok(n) if n.to_string() == *s && plain => Value::I64(n),
                _ => {
                    types.insert(name.clone(), Value::string(a.data_type.clone()));
                    Value::string(s.clone())
                }
            },
            (_, Some(s), _) => Value::string(s.clone()),
            _ => continue,
        };
        if !plain {
            types.insert(name.clone(), Value::string(a.data_type.clone()));
        }
        headers.insert(name.clone(), value);
    }
    if !types.is_empty() {
        headers.insert(TYPES_HEADER.into(), Value::Table(types));
    }
}

/// Whether a header is SQS's or SNS's own bookkeeping or a dead-lettering record.
pub fn internal(name: &str) -> bool {
    name.starts_with(switchboard_api::BRIDGE_HEADER_PREFIX)
        || name.starts_with("x-sns-")
        || name.starts_with("x-death")
        || name.starts_with("x-first-death")
        || name.starts_with("x-last-death")
}

/// The message attributes a message's headers amount to.
pub fn from_headers(headers: Option<&Table>) -> Attributes {
    let mut out = Attributes::new();
    let Some(headers) = headers else { return out };
    let types = match headers.get(TYPES_HEADER) {
        Some(Value::Table(t)) => Some(t),
        _ => None,
    };
    for (name, v) in headers {
        if internal(name) || !valid_name(name) {
            continue;
        }
        let (data_type, string, binary) = match v {
            Value::Str(b) => match std::str::from_utf8(b) {
                Ok(s) => ("String", Some(s.to_string()), None),
                Err(_) => ("Binary", None, Some(b.clone())),
            },
            Value::ShortStr(s) => ("String", Some(s.clone()), None),
            Value::Bytes(b) => ("Binary", None, Some(b.clone())),
            Value::Bool(b) => ("String", Some(b.to_string()), None),
            Value::F32(f) if f.is_finite() => ("Number", Some(f.to_string()), None),
            Value::F64(f) if f.is_finite() => ("Number", Some(f.to_string()), None),
            Value::Decimal { scale, value } => ("Number", Some(decimal(*scale, *value)), None),
            Value::Timestamp(t) => ("Number", Some(t.to_string()), None),
            other => match other.as_i64() {
                Some(n) => ("Number", Some(n.to_string()), None),
                None => continue,
            },
        };
        let data_type = types
            .and_then(|t| t.get(name))
            .and_then(Value::as_str)
            .unwrap_or(data_type)
            .to_string();
        out.insert(
            name.clone(),
            AttributeValue {
                data_type,
                string_value: string,
                binary_value: binary,
            },
        );
    }
    out
}

fn decimal(scale: u8, value: u32) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let s = format!("{value:0>width$}", width = scale as usize + 1);
    let (int, frac) = s.split_at(s.len() - scale as usize);
    format!("{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(t: &str, s: Option<&str>, b: Option<&[u8]>) -> AttributeValue {
        AttributeValue {
            data_type: t.into(),
            string_value: s.map(str::to_string),
            binary_value: b.map(Bytes::copy_from_slice),
        }
    }

    #[test]
    fn sqs_character_rule() {
        assert!(valid_chars("hello\tworld\r\n€𝄞"));
        assert!(!valid_chars("nul\0"));
        assert!(!valid_chars("\u{FFFF}"));
        assert!(!valid_chars("\u{1}"));
    }

    #[test]
    fn attributes_round_trip_through_headers_with_their_types() {
        let mut a = Attributes::new();
        a.insert("s".into(), attr("String", Some("red"), None));
        a.insert("n".into(), attr("Number", Some("42"), None));
        a.insert("f".into(), attr("Number.float", Some("1.50"), None));
        a.insert("z".into(), attr("Number", Some("007"), None));
        a.insert("b".into(), attr("Binary", None, Some(b"\0\x01")));
        a.insert("c".into(), attr("String.json", Some("{}"), None));
        let mut h = Table::new();
        to_headers(&a, &mut h);
        assert_eq!(h["n"], Value::I64(42));
        assert_eq!(h["s"], Value::string("red"));
        assert_eq!(from_headers(Some(&h)), a);
    }

    #[test]
    fn amqp_headers_become_attributes() {
        let mut h = Table::new();
        h.insert("i".into(), Value::I32(-5));
        h.insert(
            "d".into(),
            Value::Decimal {
                scale: 2,
                value: 150,
            },
        );
        h.insert("t".into(), Value::Bool(true));
        h.insert("x-death".into(), Value::Array(vec![]));
        h.insert("bad name".into(), Value::string("x"));
        let a = from_headers(Some(&h));
        assert_eq!(a["i"], attr("Number", Some("-5"), None));
        assert_eq!(a["d"], attr("Number", Some("1.50"), None));
        assert_eq!(a["t"], attr("String", Some("true"), None));
        assert_eq!(a.len(), 3);
    }
}
