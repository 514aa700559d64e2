#![no_main]
//! Arbitrary bytes through what the SNS bridge parses before any action runs: the
//! first byte picks a split point; the head is free text (a filter policy, a
//! DeliveryPolicy, a MessageStructure=json message, a message body), the tail a
//! Query-protocol form (CreateTopic, Subscribe, Publish, PublishBatch, …). Checks
//! (the same as `bridge/tests/sns_fuzz_corpus.rs` and `tests/sns_fuzz_corpus.rs`
//! replay the corpus with) that
//! - nothing panics;
//! - replies and errors are one well-formed XML element, an error's `<Message>`
//!   reading back as its text;
//! - published attributes come back from the stored headers unchanged, and each
//!   protocol gets its MessageStructure text;
//! - a checked DeliveryPolicy's retry schedule rises and stays within its bounds;
//! - every filter policy the input carries compiles as the core binds it, or is
//!   refused with a well-formed SNS error, and answers each message the same way
//!   every time.

use libfuzzer_sys::fuzz_target;
use switchboard::broker::check_filters;
use switchboard_bridge::sns::{SnsError, fuzz};

fuzz_target!(|data: &[u8]| {
    let parsed = fuzz::check_request(data).unwrap_or_else(|e| panic!("{e}"));
    let refused = check_filters(&parsed.filters, &parsed.messages).unwrap_or_else(|e| panic!("{e}"));
    for reason in refused {
        // Subscribe's answer to a policy the core refuses.
        let e = SnsError::bad(format!("FilterPolicy: {reason}"));
        fuzz::check_error(&e).unwrap_or_else(|e| panic!("{e}"));
    }
});
