//! Replays the fuzz corpus (`fuzz/corpus/sqs_request`, target `sqs_request`) the way
//! the fuzz target runs it: the first byte splits an `Authorization` header value
//! from a Query-protocol form body; parsing either must not panic, and whatever
//! parses must render as an XML reply or error.

use std::path::PathBuf;
use switchboard_bridge::sigv4;
use switchboard_bridge::sqs::query;

#[test]
fn corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sqs_request");
    let mut seen = 0;
    let mut parsed = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        let Some(&first) = data.first() else { continue };
        let (head, tail) = data[1..].split_at(usize::from(first).min(data.len() - 1));
        if let Ok(h) = std::str::from_utf8(head) {
            let _ = sigv4::parse_authorization(h);
        }
        match query::parse_request(tail) {
            Ok((action, json)) => {
                parsed += 1;
                assert!(query::response_xml(&action, &json, "req").starts_with('<'));
            }
            Err(e) => assert!(query::error_xml(&e, "req").contains("<ErrorResponse")),
        }
        seen += 1;
    }
    assert!(seen >= 40, "only {seen} corpus files");
    assert!(parsed >= 10, "only {parsed} files parse as a request");
    assert!(
        seen <= 300,
        "corpus has {seen} files; minimise it (cargo fuzz cmin)"
    );
}
