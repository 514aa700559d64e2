//! FilterPolicy JSON → compiled policy, refusing what AWS refuses with messages
//! close to AWS's (the SNS bridge passes them on after `FilterPolicy: `).

use super::model::{Cmp, Field, Lit, Matcher, Node, Scope};
use serde_json::{Map, Value as Json};
use std::net::IpAddr;

/// AWS's documented limits.
const MAX_KEYS: u64 = 5;
const MAX_COMBINATIONS: u64 = 150;
const MAX_BYTES: usize = 256 * 1024;
const MAX_NUMBER: f64 = 1e9;
/// Not AWS's: nesting is bounded so that matching's recursion is, whatever the JSON.
const MAX_DEPTH: usize = 32;

pub(super) fn policy(text: &str, scope: Scope) -> Result<Node, String> {
    if text.len() > MAX_BYTES {
        return Err("Filter policy can not be larger than 256 KB".into());
    }
    let json: Json =
        serde_json::from_str(text).map_err(|e| format!("failed to parse JSON. {e}"))?;
    let Json::Object(obj) = json else {
        return Err("Filter policy must be a JSON object".into());
    };
    let root = node(&obj, scope, 0)?;
    let (keys, combinations) = size(&root);
    if keys > MAX_KEYS {
        return Err(format!(
            "Filter policy can not have more than {MAX_KEYS} keys"
        ));
    }
    if combinations > MAX_COMBINATIONS {
        return Err("Filter policy is too complex".into());
    }
    Ok(root)
}

/// Leaf keys and value combinations as AWS counts them: keys and values multiply
/// across an object; a `$or` contributes its largest branch's keys and the sum of
/// its branches' combinations (each branch is a policy of its own).
fn size(n: &Node) -> (u64, u64) {
    let (mut keys, mut combos) = (0u64, 1u64);
    for (_, f) in &n.keys {
        let (k, c) = match f {
            Field::Leaf(ms) => (1, ms.len() as u64),
            Field::Nested(inner) => size(inner),
        };
        keys = keys.saturating_add(k);
        combos = combos.saturating_mul(c);
    }
    for branches in &n.ors {
        let (mut k, mut c) = (0u64, 0u64);
        for b in branches {
            let (bk, bc) = size(b);
            k = k.max(bk);
            c = c.saturating_add(bc);
        }
        keys = keys.saturating_add(k);
        combos = combos.saturating_mul(c);
    }
    (keys, combos)
}

fn node(obj: &Map<String, Json>, scope: Scope, depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err("Filter policy is too complex".into());
    }
    let mut n = Node::default();
    for (k, v) in obj {
        if k == "$or" {
            let Json::Array(items) = v else {
                return Err("Value of $or must be an array of objects".into());
            };
            if items.len() < 2 {
                return Err("$or must have at least 2 elements".into());
            }
            let branches = items
                .iter()
                .map(|b| match b {
                    Json::Object(o) => node(o, scope, depth + 1),
                    _ => Err("Value of $or must be an array of objects".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            n.ors.push(branches);
            continue;
        }
        let field = match v {
            Json::Array(items) => Field::Leaf(leaf(k, items)?),
            Json::Object(o) if scope == Scope::Body => Field::Nested(node(o, scope, depth + 1)?),
            Json::Object(_) => {
                return Err(
                    "Filter policy scope MessageAttributes does not support nested filter policy"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "Filter policy value for key {k} must be an array or an object"
                ));
            }
        };
        n.keys.push((k.clone(), field));
    }
    Ok(n)
}

fn leaf(key: &str, items: &[Json]) -> Result<Vec<Matcher>, String> {
    if items.is_empty() {
        return Err(format!("Empty arrays are not allowed (key {key})"));
    }
    items
        .iter()
        .map(|v| match v {
            Json::Object(o) => operator(o),
            other => literal(other).map(Matcher::Exact),
        })
        .collect()
}

fn literal(v: &Json) -> Result<Lit, String> {
    Ok(match v {
        Json::String(s) => Lit::Str(s.clone()),
        Json::Number(_) => Lit::Num(number(v, "a match value")?),
        Json::Bool(b) => Lit::Bool(*b),
        Json::Null => Lit::Null,
        _ => return Err("Match value must be String, number, true, false, or null".into()),
    })
}

fn number(v: &Json, what: &str) -> Result<f64, String> {
    let n = v
        .as_f64()
        .ok_or_else(|| format!("Value of {what} must be numeric"))?;
    if !(-MAX_NUMBER..=MAX_NUMBER).contains(&n) {
        return Err(format!(
            "Value of {what} must be between -1000000000 and 1000000000, with five digits of accuracy after the decimal point"
        ));
    }
    Ok(n)
}

fn string<'a>(v: &'a Json, op: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("Value of {op} must be a string"))
}

fn operator(o: &Map<String, Json>) -> Result<Matcher, String> {
    let mut it = o.iter();
    let (Some((op, v)), None) = (it.next(), it.next()) else {
        return Err("Match expression must have exactly one key".into());
    };
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(string(v, op)?.to_string()),
        "suffix" => Matcher::Suffix(string(v, op)?.to_string()),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string(v, op)?.to_string()),
        "exists" => Matcher::Exists(
            v.as_bool()
                .ok_or("exists match pattern must be either true or false.")?,
        ),
        "anything-but" => anything_but(v)?,
        "numeric" => numeric(v)?,
        "cidr" => cidr(string(v, op)?)?,
        _ => return Err(format!("Unrecognized match type {op}")),
    })
}

fn anything_but(v: &Json) -> Result<Matcher, String> {
    match v {
        Json::String(_) | Json::Number(_) => Ok(Matcher::AnythingBut(vec![literal(v)?])),
        Json::Array(items) => {
            if items.is_empty() {
                return Err("Empty arrays are not allowed (anything-but)".into());
            }
            items
                .iter()
                .map(|x| match x {
                    Json::String(_) | Json::Number(_) => literal(x),
                    _ => Err(
                        "Inside anything but list, only strings and numbers are supported".into(),
                    ),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Matcher::AnythingBut)
        }
        Json::Object(o) => {
            let mut it = o.iter();
            match (it.next(), it.next()) {
                (Some((op, p)), None) if op == "prefix" => {
                    Ok(Matcher::AnythingButPrefix(string(p, op)?.to_string()))
                }
                (Some((op, p)), None) if op == "suffix" => {
                    Ok(Matcher::AnythingButSuffix(string(p, op)?.to_string()))
                }
                (Some((op, _)), None) => Err(format!("Unsupported anything-but pattern: {op}")),
                _ => Err("Value of anything-but must be an object with one key".into()),
            }
        }
        _ => Err("Value of anything-but must be an array or single string/number value".into()),
    }
}

fn cmp(op: &str) -> Option<Cmp> {
    Some(match op {
        "=" => Cmp::Eq,
        "<" => Cmp::Lt,
        "<=" => Cmp::Le,
        ">" => Cmp::Gt,
        ">=" => Cmp::Ge,
        _ => return None,
    })
}

/// `["=", n]`, `[op, n]`, or a range: a lower bound (`>`, `>=`) then an upper bound.
fn numeric(v: &Json) -> Result<Matcher, String> {
    let Json::Array(items) = v else {
        return Err("Value of numeric must be an array.".into());
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(
            "Value of numeric must be an array of one or two operator, number pairs.".into(),
        );
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        let op = pair[0]
            .as_str()
            .ok_or("Value of numeric must start with an operator")?;
        let c = cmp(op).ok_or_else(|| format!("Unrecognized numeric range operator: {op}"))?;
        out.push((c, number(&pair[1], op)?));
    }
    if let [(lo, a), (hi, b)] = out[..] {
        if !matches!(lo, Cmp::Gt | Cmp::Ge) || !matches!(hi, Cmp::Lt | Cmp::Le) {
            return Err("Bad numeric range operator: a range is a lower bound (> or >=) then an upper bound (< or <=)".into());
        }
        if a >= b {
            return Err("Bottom must be less than top".into());
        }
    }
    Ok(Matcher::Numeric(out))
}

fn cidr(s: &str) -> Result<Matcher, String> {
    let (ip, bits) = s
        .split_once('/')
        .ok_or_else(|| format!("Malformed CIDR, one '/' required: {s}"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("Nonstandard IP address: {ip}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= max)
        .ok_or_else(|| format!("Malformed CIDR, mask bits must be between 0 and {max}: {s}"))?;
    Ok(Matcher::Cidr(ip, bits))
}
