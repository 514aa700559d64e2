#![no_main]
//! Arbitrary bytes through what the SQS bridge parses before any action runs: the
//! first byte picks a split point; the head is an `Authorization` header value, the
//! tail a Query-protocol form body. Checks that
//! - nothing panics;
//! - a parsed form's JSON renders back as an XML reply (every action's shape) and
//!   as an XML error without panicking, and the XML is well-formed enough to hold
//!   no raw `<` in text (escaping is exercised on arbitrary strings).

use libfuzzer_sys::fuzz_target;
use switchboard_bridge::sigv4;
use switchboard_bridge::sqs::{SqsError, query};

fuzz_target!(|data: &[u8]| {
    let Some(&first) = data.first() else { return };
    let (head, tail) = data[1..].split_at(usize::from(first).min(data.len() - 1));
    if let Ok(h) = std::str::from_utf8(head) {
        let _ = sigv4::parse_authorization(h);
    }
    match query::parse_request(tail) {
        Ok((action, json)) => {
            let xml = query::response_xml(&action, &json, "req");
            assert!(xml.starts_with('<'));
        }
        Err(e) => {
            let xml = query::error_xml(&e, "req");
            assert!(xml.contains("<ErrorResponse"));
        }
    }
    let e = SqsError::invalid_parameter_value(String::from_utf8_lossy(tail).into_owned());
    let xml = query::error_xml(&e, "req");
    let text = &xml[xml.find("<Message>").unwrap_or(0)..];
    let end = text.find("</Message>").unwrap_or(text.len());
    assert!(!text[9.min(end)..end].contains('<'), "unescaped text in {xml}");
});
