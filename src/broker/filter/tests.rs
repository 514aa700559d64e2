//! AWS's documented examples (SNS developer guide, "Amazon SNS message filtering"),
//! in both scopes, and the validation AWS performs.

use super::*;
use bytes::Bytes;
use switchboard_api::Properties;

fn attrs(pairs: &[(&str, Value)]) -> Message {
    let headers: Table = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Message {
        properties: Properties {
            headers: Some(headers),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// SQS's way of storing a String.Array attribute: the JSON text, typed in the table.
fn string_array(name: &str, json: &str) -> Message {
    let mut types = Table::new();
    types.insert(name.into(), Value::string("String.Array"));
    attrs(&[
        (name, Value::string(json)),
        (TYPES_HEADER, Value::Table(types)),
    ])
}

fn body(json: &str) -> Message {
    Message {
        body: Bytes::from(json.to_string()),
        ..Default::default()
    }
}

fn attr_policy(json: &str) -> FilterPolicy {
    compile(json, Scope::Attributes).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn body_policy(json: &str) -> FilterPolicy {
    compile(json, Scope::Body).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn s(v: &str) -> Value {
    Value::string(v)
}

fn err(json: &str) -> String {
    match compile(json, Scope::Attributes) {
        Ok(_) => panic!("{json} compiled"),
        Err(e) => e,
    }
}

#[test]
fn exact_string_and_string_array() {
    let p = attr_policy(r#"{"customer_interests": ["rugby", "tennis"]}"#);
    assert!(p.matches(&attrs(&[("customer_interests", s("rugby"))])));
    assert!(p.matches(&attrs(&[("customer_interests", s("tennis"))])));
    assert!(p.matches(&string_array(
        "customer_interests",
        r#"["rugby", "tennis"]"#
    )));
    assert!(!p.matches(&attrs(&[("customer_interests", s("baseball"))])));
    assert!(!p.matches(&string_array("customer_interests", r#"["baseball"]"#)));
    assert!(!p.matches(&attrs(&[("store", s("example_corp"))])));
    let b = body_policy(r#"{"customer_interests": ["rugby", "tennis"]}"#);
    assert!(b.matches(&body(r#"{"customer_interests": "rugby"}"#)));
    assert!(b.matches(&body(r#"{"customer_interests": ["soccer", "tennis"]}"#)));
    assert!(!b.matches(&body(r#"{"customer_interests": "baseball"}"#)));
    assert!(!b.matches(&body("not json")));
    assert!(!b.matches(&body(r#"["rugby"]"#)));
}

#[test]
fn and_across_keys_or_within() {
    let p =
        attr_policy(r#"{"store": ["example_corp"], "event": ["order_placed", "order_cancelled"]}"#);
    assert!(p.matches(&attrs(&[
        ("store", s("example_corp")),
        ("event", s("order_cancelled"))
    ])));
    assert!(!p.matches(&attrs(&[
        ("store", s("example_corp")),
        ("event", s("order_failed"))
    ])));
    assert!(!p.matches(&attrs(&[("store", s("example_corp"))])));
}

#[test]
fn prefix_suffix_and_equals_ignore_case() {
    let p = attr_policy(r#"{"customer_interests": [{"prefix": "bas"}]}"#);
    assert!(p.matches(&attrs(&[("customer_interests", s("baseball"))])));
    assert!(p.matches(&attrs(&[("customer_interests", s("basketball"))])));
    assert!(!p.matches(&attrs(&[("customer_interests", s("rugby"))])));
    let p = attr_policy(r#"{"customer_interests": [{"suffix": "ball"}]}"#);
    assert!(p.matches(&attrs(&[("customer_interests", s("baseball"))])));
    assert!(!p.matches(&attrs(&[("customer_interests", s("rugby"))])));
    let p = attr_policy(r#"{"customer_interests": [{"equals-ignore-case": "tennis"}]}"#);
    assert!(p.matches(&attrs(&[("customer_interests", s("TENNIS"))])));
    assert!(p.matches(&attrs(&[("customer_interests", s("Tennis"))])));
    assert!(!p.matches(&attrs(&[("customer_interests", s("rugby"))])));
}

#[test]
fn anything_but() {
    let p = attr_policy(r#"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#);
    assert!(p.matches(&attrs(&[("customer_interests", s("baseball"))])));
    assert!(p.matches(&string_array(
        "customer_interests",
        r#"["rugby", "baseball"]"#
    )));
    assert!(!p.matches(&attrs(&[("customer_interests", s("rugby"))])));
    assert!(!p.matches(&string_array(
        "customer_interests",
        r#"["rugby", "tennis"]"#
    )));
    // The key must be there, unless `exists: false` says otherwise.
    assert!(!p.matches(&attrs(&[("store", s("x"))])));
    let p =
        attr_policy(r#"{"customer_interests": [{"anything-but": "rugby"}, {"exists": false}]}"#);
    assert!(p.matches(&attrs(&[("store", s("x"))])));
    let p = attr_policy(r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#);
    assert!(p.matches(&attrs(&[("event", s("data-entry"))])));
    assert!(!p.matches(&attrs(&[("event", s("order-cancelled"))])));
    let p = attr_policy(r#"{"event": [{"anything-but": {"suffix": "ed"}}]}"#);
    assert!(p.matches(&attrs(&[("event", s("order-place"))])));
    assert!(!p.matches(&attrs(&[("event", s("order-placed"))])));
    let p = attr_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#);
    assert!(p.matches(&attrs(&[("price", Value::I64(101))])));
    assert!(!p.matches(&attrs(&[("price", Value::I64(100))])));
}

#[test]
fn numeric_exact_and_ranges() {
    let p = attr_policy(r#"{"price_usd": [{"numeric": ["=", 301.5]}]}"#);
    let mut types = Table::new();
    types.insert("price_usd".into(), s("Number"));
    let sqs = |v: &str| {
        attrs(&[
            ("price_usd", s(v)),
            (TYPES_HEADER, Value::Table(types.clone())),
        ])
    };
    assert!(p.matches(&sqs("301.5")));
    assert!(p.matches(&sqs("3.015e2")));
    assert!(!p.matches(&sqs("300")));
    let p = attr_policy(r#"{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}"#);
    assert!(p.matches(&attrs(&[("price_usd", Value::I64(150))])));
    assert!(p.matches(&attrs(&[("price_usd", Value::F64(0.5))])));
    assert!(p.matches(&attrs(&[("price_usd", s("99"))])));
    assert!(!p.matches(&attrs(&[("price_usd", Value::I64(0))])));
    assert!(!p.matches(&attrs(&[("price_usd", Value::I32(151))])));
    assert!(!p.matches(&attrs(&[("price_usd", s("cheap"))])));
    let p = attr_policy(r#"{"price_usd": [100, 200]}"#);
    assert!(p.matches(&attrs(&[("price_usd", Value::I64(200))])));
    assert!(!p.matches(&attrs(&[("price_usd", Value::I64(150))])));
    let b = body_policy(r#"{"price_usd": [{"numeric": [">=", 200]}]}"#);
    assert!(b.matches(&body(r#"{"price_usd": 210.75}"#)));
    assert!(!b.matches(&body(r#"{"price_usd": 10}"#)));
}

#[test]
fn exists() {
    let p = attr_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(p.matches(&attrs(&[("store", s("fans"))])));
    assert!(!p.matches(&attrs(&[("other", s("x"))])));
    let p = attr_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(!p.matches(&attrs(&[("store", s("fans"))])));
    assert!(p.matches(&attrs(&[("other", s("x"))])));
    // AWS: an empty set of attributes does not match `exists: false`.
    assert!(!p.matches(&attrs(&[])));
    let b = body_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(b.matches(&body(r#"{"store": "fans"}"#)));
    assert!(!b.matches(&body(r#"{"store": null}"#)));
    assert!(!b.matches(&body(r#"{"customer_interests": ["baseball"]}"#)));
}

#[test]
fn cidr() {
    let p = attr_policy(r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#);
    assert!(p.matches(&attrs(&[("source_ip", s("10.0.0.255"))])));
    assert!(!p.matches(&attrs(&[("source_ip", s("10.1.1.0"))])));
    assert!(!p.matches(&attrs(&[("source_ip", s("not an ip"))])));
    let p = attr_policy(r#"{"source_ip": [{"cidr": "2001:db8::/32"}]}"#);
    assert!(p.matches(&attrs(&[("source_ip", s("2001:db8::1"))])));
    assert!(!p.matches(&attrs(&[("source_ip", s("2001:db9::1"))])));
    assert!(!p.matches(&attrs(&[("source_ip", s("10.0.0.1"))])));
}

#[test]
fn or_operator_at_any_level() {
    let p = attr_policy(
        r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
    );
    assert!(p.matches(&attrs(&[
        ("source", s("aws.cloudwatch")),
        ("metricName", s("CPUUtilization"))
    ])));
    assert!(p.matches(&attrs(&[
        ("source", s("aws.cloudwatch")),
        ("namespace", s("AWS/EC2"))
    ])));
    assert!(!p.matches(&attrs(&[
        ("source", s("aws.cloudwatch")),
        ("namespace", s("AWS/S3"))
    ])));
    assert!(!p.matches(&attrs(&[("metricName", s("CPUUtilization"))])));
    let b = body_policy(
        r#"{"detail": {"$or": [{"state": ["running"]}, {"code": [{"numeric": [">", 100]}]}]}}"#,
    );
    assert!(b.matches(&body(r#"{"detail": {"state": "running"}}"#)));
    assert!(b.matches(&body(r#"{"detail": {"code": 101}}"#)));
    assert!(!b.matches(&body(r#"{"detail": {"code": 100}}"#)));
    assert!(!b.matches(&body(r#"{"state": "running"}"#)));
}

#[test]
fn nested_body_keys() {
    let b = body_policy(r#"{"store": {"name": ["example_corp"], "open": [true]}}"#);
    assert!(b.matches(&body(
        r#"{"store": {"name": "example_corp", "open": true}}"#
    )));
    assert!(!b.matches(&body(
        r#"{"store": {"name": "example_corp", "open": false}}"#
    )));
    assert!(!b.matches(&body(r#"{"store": "example_corp"}"#)));
    let b = body_policy(r#"{"a": {"b": [null]}}"#);
    assert!(b.matches(&body(r#"{"a": {"b": null}}"#)));
}

#[test]
fn empty_policy_matches_everything() {
    assert!(attr_policy("{}").matches(&attrs(&[])));
    assert!(!FilterPolicy::reject_all().matches(&attrs(&[("a", s("b"))])));
}

#[test]
fn validation() {
    assert_eq!(
        err(r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}"#),
        "Filter policy can not have more than 5 keys"
    );
    let many: Vec<String> = (0..151).map(|i| format!("\"v{i}\"")).collect();
    assert_eq!(
        err(&format!(r#"{{"a": [{}]}}"#, many.join(","))),
        "Filter policy is too complex"
    );
    let twelve: Vec<String> = (0..13).map(|i| format!("\"v{i}\"")).collect();
    let t = twelve.join(",");
    assert_eq!(
        err(&format!(r#"{{"a": [{t}], "b": [{t}]}}"#)),
        "Filter policy is too complex"
    );
    assert!(err(r#"{"a": []}"#).starts_with("Empty arrays are not allowed"));
    assert_eq!(
        err(r#"{"a": [{"regex": "x"}]}"#),
        "Unrecognized match type regex"
    );
    assert_eq!(
        err(r#"{"a": [{"prefix": 1}]}"#),
        "Value of prefix must be a string"
    );
    assert!(err(r#"{"a": [{"numeric": [">", 1e10]}]}"#).contains("1000000000"));
    assert!(err(r#"{"a": [{"numeric": ["<", 5, ">", 1]}]}"#).starts_with("Bad numeric range"));
    assert!(
        err(r#"{"a": [{"numeric": ["~", 5]}]}"#).starts_with("Unrecognized numeric range operator")
    );
    assert!(err(r#"{"a": [{"exists": "yes"}]}"#).starts_with("exists match pattern"));
    assert!(err(r#"{"a": [{"cidr": "10.0.0.0"}]}"#).starts_with("Malformed CIDR"));
    assert!(err(r#"{"a": [{"cidr": "10.0.0.0/33"}]}"#).starts_with("Malformed CIDR"));
    assert!(err(r#"{"a": {"b": ["c"]}}"#).contains("does not support nested"));
    assert!(err(r#"{"a": [[1]]}"#).starts_with("Match value must be"));
    assert!(err(r#"["a"]"#).contains("JSON object"));
    assert!(err("{").starts_with("failed to parse JSON"));
    assert!(err(r#"{"$or": [{"a": ["b"]}]}"#).contains("at least 2"));
    let deep = format!("{}{}{}", r#"{"a":"#.repeat(40), r#"["x"]"#, "}".repeat(40));
    assert!(compile(&deep, Scope::Body).is_err());
    // Keys under $or count by the largest branch.
    assert!(compile(r#"{"a": ["1"], "b": ["1"], "c": ["1"], "$or": [{"d": ["1"], "e": ["1"]}, {"f": ["1"]}]}"#, Scope::Attributes).is_ok());
}

#[test]
fn binding_arguments() {
    let mut args = Table::new();
    assert!(from_args(&args).unwrap_or_else(|e| panic!("{e}")).is_none());
    args.insert(POLICY_ARG.into(), s(r#"{"a": [{"prefix": "x"}]}"#));
    let p = from_args(&args).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.is_some_and(|p| p.scope == Scope::Attributes));
    args.insert(SCOPE_ARG.into(), s("MessageBody"));
    let p = from_args(&args).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.is_some_and(|p| p.scope == Scope::Body));
    args.insert(SCOPE_ARG.into(), s("Headers"));
    assert!(from_args(&args).is_err());
    args.insert(POLICY_ARG.into(), Value::I32(1));
    assert!(from_args(&args).is_err());
}
