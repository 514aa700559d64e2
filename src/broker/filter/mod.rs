//! SNS filter policies on bindings: a compiled policy decides, after the exchange
//! type's own match, whether a message goes down a binding. The policy reaches the
//! core as the binding arguments `x-filter-policy` (the FilterPolicy JSON text) and
//! `x-filter-policy-scope` (`MessageAttributes`, the default, or `MessageBody`), so
//! the SNS bridge and any AMQP client set it the same way.
//!
//! Attribute scope reads message headers as the api crate describes them: strings,
//! integers, and the [`switchboard_api::ATTRIBUTE_TYPES_HEADER`] table for `Number`
//! values an integer would respell and for `String.Array` (a JSON array in a string).

mod model;
mod parse;
#[cfg(test)]
mod tests;

pub use model::Scope;
use model::{Cmp, Field, Lit, Matcher, Node};

use serde_json::Value as Json;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;
use switchboard_api::{Message, Table, Value};

pub const POLICY_ARG: &str = "x-filter-policy";
pub const SCOPE_ARG: &str = "x-filter-policy-scope";
use switchboard_api::ATTRIBUTE_TYPES_HEADER as TYPES_HEADER;

/// A validated policy, ready to match.
#[derive(Debug)]
pub struct FilterPolicy {
    scope: Scope,
    root: Node,
    /// A stored policy that no longer compiles: matching nothing is safer than
    /// matching everything, which would flood a subscriber with what it filtered out.
    reject_all: bool,
}

/// One value of a message key: an attribute, an element of a String.Array
/// attribute or of a body array, or a body scalar.
#[derive(Debug)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    fn num(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            // Headers set by AMQP, MQTT and STOMP clients are often numbers spelt
            // as text; SQS stores non-integral Numbers that way too.
            Scalar::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The message body as JSON, parsed the first time a body-scope policy asks for it
/// and shared by every binding checked in the same routing step.
pub struct LazyBody<'a> {
    msg: &'a Message,
    parsed: OnceCell<Option<Json>>,
}

impl<'a> LazyBody<'a> {
    pub fn new(msg: &'a Message) -> Self {
        LazyBody {
            msg,
            parsed: OnceCell::new(),
        }
    }
    fn get(&self) -> Option<&serde_json::Map<String, Json>> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.msg.body).ok())
            .as_ref()
            .and_then(Json::as_object)
    }
}

/// The binding's filter, if its arguments carry one.
pub fn from_args(args: &Table) -> Result<Option<FilterPolicy>, String> {
    let Some(v) = args.get(POLICY_ARG) else {
        return Ok(None);
    };
    let text = v
        .as_str()
        .ok_or_else(|| format!("{POLICY_ARG} must be a string holding JSON"))?;
    let scope = match args.get(SCOPE_ARG) {
        None => Scope::Attributes,
        Some(s) => match s.as_str() {
            Some("MessageAttributes") => Scope::Attributes,
            Some("MessageBody") => Scope::Body,
            _ => {
                return Err(format!(
                    "Invalid value [{}] for {SCOPE_ARG}. Please use either MessageBody or MessageAttributes",
                    s.as_str().unwrap_or("?")
                ));
            }
        },
    };
    compile(text, scope).map(Some)
}

/// Compiles a policy's JSON text for the scope.
pub fn compile(text: &str, scope: Scope) -> Result<FilterPolicy, String> {
    parse::policy(text, scope).map(|root| FilterPolicy {
        scope,
        root,
        reject_all: false,
    })
}

impl FilterPolicy {
    /// A policy that matches no message (see `reject_all`).
    pub fn reject_all() -> Self {
        FilterPolicy {
            scope: Scope::Attributes,
            root: Node::default(),
            reject_all: true,
        }
    }

    /// Routing calls [`FilterPolicy::matches_with`] to share one parsed body; SNS
    /// replays, the tests and [`check_filters`] match one message at a time.
    pub fn matches(&self, msg: &Message) -> bool {
        self.matches_with(&LazyBody::new(msg))
    }

    pub fn matches_with(&self, body: &LazyBody<'_>) -> bool {
        if self.reject_all {
            return false;
        }
        match self.scope {
            Scope::Attributes => {
                let empty = Table::new();
                let headers = body.msg.properties.headers.as_ref().unwrap_or(&empty);
                let attrs = Attrs {
                    headers,
                    types: match headers.get(TYPES_HEADER) {
                        Some(Value::Table(t)) => Some(t),
                        _ => None,
                    },
                };
                attrs_node(&self.root, &attrs)
            }
            Scope::Body => body.get().is_some_and(|o| body_node(&self.root, o)),
        }
    }
}

/// For the `sns_request` fuzz target and its corpus replay: each binding's
/// arguments compiled as binding them would, and each policy matched against every
/// message twice. Returns the refusals' reasons, for the caller to render as its
/// protocol does; `Err` if a policy answers a message differently the second time
/// (routing may check one binding more than once: a retry, a replay).
pub fn check_filters(bindings: &[Table], messages: &[Message]) -> Result<Vec<String>, String> {
    let mut refused = Vec::new();
    for args in bindings {
        let policy = match from_args(args) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(reason) => {
                refused.push(reason);
                continue;
            }
        };
        for m in messages {
            let first = policy.matches(m);
            if policy.matches(m) != first {
                return Err(format!("{policy:?} matches {m:?} only sometimes"));
            }
        }
    }
    Ok(refused)
}

struct Attrs<'a> {
    headers: &'a Table,
    types: Option<&'a Table>,
}

impl Attrs<'_> {
    /// Whether the message has any attribute a policy could see: AWS's
    /// `exists: false` needs at least one.
    fn any(&self) -> bool {
        self.headers.iter().any(|(k, v)| visible(k, v))
    }
}

/// SQS bookkeeping headers and binary values are not attributes a policy sees.
fn visible(name: &str, v: &Value) -> bool {
    !name.starts_with(switchboard_api::BRIDGE_HEADER_PREFIX)
        && !matches!(v, Value::Bytes(_) | Value::Table(_) | Value::Void)
}

fn attrs_node(n: &Node, a: &Attrs<'_>) -> bool {
    n.keys.iter().all(|(k, f)| match f {
        Field::Leaf(ms) => attr_leaf(k, ms, a),
        // Parsing refuses nested policies in attribute scope.
        Field::Nested(_) => false,
    }) && n
        .ors
        .iter()
        .all(|branches| branches.iter().any(|b| attrs_node(b, a)))
}

fn attr_leaf(key: &str, ms: &[Matcher], a: &Attrs<'_>) -> bool {
    let value = a.headers.get(key).filter(|v| visible(key, v));
    let Some(v) = value else {
        return a.any() && ms.iter().any(|m| matches!(m, Matcher::Exists(false)));
    };
    let ty = a
        .types
        .and_then(|t| t.get(key))
        .and_then(Value::as_str)
        .unwrap_or("");
    ms.iter().any(|m| match m {
        Matcher::Exists(e) => *e,
        m => any_attr_scalar(v, ty, &mut |s| m.test(s)),
    })
}

/// Calls `f` on each scalar an attribute holds until it answers true.
fn any_attr_scalar(v: &Value, ty: &str, f: &mut dyn FnMut(&Scalar<'_>) -> bool) -> bool {
    match v {
        Value::Str(_) | Value::ShortStr(_) => {
            let Some(s) = v.as_str() else { return false };
            if ty.starts_with("String.Array") {
                // AWS matches each element; a value that is not a JSON array is a
                // plain string.
                if let Ok(Json::Array(items)) = serde_json::from_str::<Json>(s) {
                    return items.iter().any(|j| json_scalar(j).is_some_and(|x| f(&x)));
                }
            }
            if ty.starts_with("Number")
                && let Some(n) = Scalar::Str(Cow::Borrowed(s)).num()
            {
                return f(&Scalar::Num(n));
            }
            f(&Scalar::Str(Cow::Borrowed(s)))
        }
        Value::Bool(b) => f(&Scalar::Bool(*b)),
        Value::F32(x) => x.is_finite() && f(&Scalar::Num(f64::from(*x))),
        Value::F64(x) => x.is_finite() && f(&Scalar::Num(*x)),
        Value::Decimal { scale, value } => f(&Scalar::Num(
            f64::from(*value) / 10f64.powi(i32::from(*scale)),
        )),
        // MQTT 5 user properties repeated under one key arrive as an array.
        Value::Array(items) => items.iter().any(|x| any_attr_scalar(x, "", f)),
        other => other.as_i64().is_some_and(|n| f(&Scalar::Num(n as f64))),
    }
}

fn json_scalar(j: &Json) -> Option<Scalar<'_>> {
    Some(match j {
        Json::String(s) => Scalar::Str(Cow::Borrowed(s)),
        Json::Number(n) => Scalar::Num(n.as_f64()?),
        Json::Bool(b) => Scalar::Bool(*b),
        Json::Null => Scalar::Null,
        _ => return None,
    })
}

fn body_node(n: &Node, obj: &serde_json::Map<String, Json>) -> bool {
    n.keys.iter().all(|(k, f)| match f {
        Field::Leaf(ms) => body_leaf(obj.get(k), ms, !obj.is_empty()),
        Field::Nested(inner) => match obj.get(k) {
            Some(Json::Object(o)) => body_node(inner, o),
            // A missing or non-object intermediate key reads as an empty object, so
            // that `exists: false` beneath it still holds.
            _ => body_node(inner, &serde_json::Map::new()),
        },
    }) && n
        .ors
        .iter()
        .all(|branches| branches.iter().any(|b| body_node(b, obj)))
}

fn body_leaf(v: Option<&Json>, ms: &[Matcher], nonempty: bool) -> bool {
    let Some(v) = v else {
        return nonempty && ms.iter().any(|m| matches!(m, Matcher::Exists(false)));
    };
    ms.iter().any(|m| match m {
        // AWS: the key must have a non-null value for `exists: true`.
        Matcher::Exists(e) => *e != v.is_null(),
        m => match v {
            Json::Array(items) => items
                .iter()
                .any(|j| json_scalar(j).is_some_and(|s| m.test(&s))),
            j => json_scalar(j).is_some_and(|s| m.test(&s)),
        },
    })
}

impl Lit {
    fn eq(&self, s: &Scalar<'_>) -> bool {
        match (self, s) {
            (Lit::Str(a), Scalar::Str(b)) => a == b,
            (Lit::Num(a), s) => s.num().is_some_and(|b| num_eq(*a, b)),
            (Lit::Bool(a), Scalar::Bool(b)) => a == b,
            (Lit::Null, Scalar::Null) => true,
            _ => false,
        }
    }
}

/// AWS compares numbers to five decimal places.
fn num_eq(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.000_005
}

impl Matcher {
    fn test(&self, s: &Scalar<'_>) -> bool {
        match self {
            Matcher::Exact(l) => l.eq(s),
            Matcher::Prefix(p) => s.str().is_some_and(|x| x.starts_with(p.as_str())),
            Matcher::Suffix(p) => s.str().is_some_and(|x| x.ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => s.str().is_some_and(|x| eq_ignore_case(x, p)),
            Matcher::AnythingBut(ls) => !ls.iter().any(|l| l.eq(s)),
            Matcher::AnythingButPrefix(p) => s.str().is_some_and(|x| !x.starts_with(p.as_str())),
            Matcher::AnythingButSuffix(p) => s.str().is_some_and(|x| !x.ends_with(p.as_str())),
            Matcher::Numeric(cs) => s.num().is_some_and(|n| {
                cs.iter().all(|(c, b)| match c {
                    Cmp::Eq => num_eq(n, *b),
                    Cmp::Lt => n < *b,
                    Cmp::Le => n <= *b || num_eq(n, *b),
                    Cmp::Gt => n > *b,
                    Cmp::Ge => n >= *b || num_eq(n, *b),
                })
            }),
            Matcher::Exists(e) => *e,
            Matcher::Cidr(net, bits) => s
                .str()
                .and_then(|x| x.parse::<IpAddr>().ok())
                .is_some_and(|ip| in_cidr(ip, *net, *bits)),
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!a.is_ascii() && a.to_lowercase() == b.to_lowercase())
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
