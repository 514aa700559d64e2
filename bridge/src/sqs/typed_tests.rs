use super::*;
use crate::sqs::Input;
use crate::sqs::input;
use proptest::prelude::*;
use serde_json::json;

/// Every accessor of `r` against the `input` helper that reads the tree `v`.
fn assert_reads_as_tree(r: &Request<'_>, v: &Value) {
    let s = |n| input::opt_str(v, n);
    assert_eq!(r.queue_url.opt_str("QueueUrl"), s("QueueUrl"), "{v}");
    assert_eq!(
        r.receipt_handle.req_str("ReceiptHandle"),
        input::req_str(v, "ReceiptHandle")
    );
    assert_eq!(
        r.delay_seconds.opt_int("DelaySeconds"),
        input::opt_int(v, "DelaySeconds")
    );
    assert_eq!(
        r.delay_seconds.int_in("DelaySeconds", 0, 900),
        input::int_in(v, "DelaySeconds", 0, 900),
        "{v}"
    );
    assert_eq!(
        r.message_body.is_absent(),
        v.get("MessageBody").is_none_or(Value::is_null)
    );
    assert_eq!(
        r.message_body.as_str(),
        v.get("MessageBody").and_then(Value::as_str)
    );
    let names = r.attribute_names.get("AttributeNames");
    let tree = input::strs(v, "AttributeNames");
    assert_eq!(
        names.map(|n| n.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        tree,
        "{v}"
    );
    assert_eq!(
        r.message_attributes.get("MessageAttributes"),
        input::opt_object(v, "MessageAttributes"),
        "{v}"
    );
    match (r.entries.get("Entries"), input::list(v, "Entries")) {
        (Ok(typed), Ok(tree)) => {
            assert_eq!(typed.len(), tree.len(), "{v}");
            for (t, e) in typed.iter().zip(tree) {
                assert_eq!(t.id.as_str(), e.get("Id").and_then(Value::as_str), "{v}");
                assert_eq!(
                    t.receipt_handle.req_str("ReceiptHandle"),
                    input::req_str(e, "ReceiptHandle"),
                    "{v}"
                );
            }
        }
        (typed, tree) => assert_eq!(typed.err(), tree.err(), "{v}"),
    }
}

/// Reads `v` both ways the server does (body, tree) and checks both.
fn check(v: &Value) {
    // The tree the server would have built of the body (a float need not read back
    // as the very one written).
    let body = serde_json::to_vec(v).unwrap();
    let v: &Value = &serde_json::from_slice(&body).unwrap();
    let from_tree = Request::from_value(v).unwrap();
    assert_reads_as_tree(&from_tree, v);
    let from_body = Request::from_json(&body).expect("an object without repeated members");
    assert_reads_as_tree(&from_body, v);
}

fn samples() -> Vec<Value> {
    vec![
        json!(null),
        json!(""),
        json!("text"),
        json!(" 12 "),
        json!("x\"y\u{e9}"),
        json!(5),
        json!(-3),
        json!(901),
        json!(1.5),
        json!(10.0),
        json!(u64::MAX),
        json!(true),
        json!([]),
        json!(["All", "SenderId"]),
        json!(["a", 1]),
        json!([null]),
        json!([{"Id": "a", "ReceiptHandle": "h"}, 3, null, {"Id": 4}, ["x"]]),
        json!({}),
        json!({"k": {"DataType": "String", "StringValue": "v"}}),
    ]
}

#[test]
fn members_read_as_the_tree_reads_them() {
    for s in samples() {
        for name in [
            "QueueUrl",
            "ReceiptHandle",
            "DelaySeconds",
            "MessageBody",
            "AttributeNames",
            "MessageAttributes",
            "Entries",
        ] {
            check(&json!({ name: s }));
        }
        check(&json!({
            "QueueUrl": s, "ReceiptHandle": s, "DelaySeconds": s, "MessageBody": s,
            "AttributeNames": s, "MessageAttributes": s, "Entries": s, "Unknown": s,
        }));
    }
    check(&json!({}));
}

#[test]
fn strings_are_borrowed_unless_escaped() {
    let body = br#"{"QueueUrl": "http://h/q", "MessageBody": "a\nb"}"#;
    let r = Request::from_json(body).unwrap();
    assert!(matches!(
        r.queue_url,
        Field::Str(Cow::Borrowed("http://h/q"))
    ));
    assert!(matches!(&r.message_body, Field::Str(Cow::Owned(s)) if s == "a\nb"));
}

#[test]
fn bodies_the_struct_does_not_take_go_the_tree_way() {
    // A repeated member: the tree keeps the last, as before.
    let body = br#"{"QueueUrl": "a", "QueueUrl": "b"}"#;
    assert!(Request::from_json(body).is_none());
    let Ok(Input::Tree(v)) = Input::from_json("SendMessage", body) else {
        panic!("not a tree")
    };
    assert_eq!(
        Request::from_value(&v)
            .unwrap()
            .queue_url
            .opt_str("QueueUrl"),
        Ok(Some("b"))
    );
    // serde takes a struct from an array; the protocol does not.
    for bad in [&b"[\"q\", \"body\"]"[..], b"null", b"\"x\"", b"{", b"{} x"] {
        assert!(Request::from_json(bad).is_none());
        let e = Input::from_json("SendMessage", bad).err().unwrap();
        assert_eq!(e.code, "SerializationException");
    }
    assert!(matches!(
        Input::from_json("SendMessage", b" {\"QueueUrl\": \"q\"}"),
        Ok(Input::Typed(_))
    ));
    // Not hot: a tree, as every action's was.
    assert!(matches!(
        Input::from_json("CreateQueue", b"{\"QueueName\": \"q\"}"),
        Ok(Input::Tree(_))
    ));
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|n| json!(n)),
        "[ 0-9a-zA-Z\"\\\\]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("Id".to_string()),
                    Just("ReceiptHandle".to_string()),
                    "[a-z]{1,3}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_member_reads_as_the_tree_reads_it(
        url in any_json(), delay in any_json(), names in any_json(),
        entries in any_json(), attrs in any_json(), body in any_json(),
    ) {
        check(&json!({
            "QueueUrl": url, "DelaySeconds": delay, "AttributeNames": names,
            "Entries": entries, "MessageAttributes": attrs, "MessageBody": body,
        }));
    }
}
