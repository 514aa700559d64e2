//! Replays the fuzz corpus (`fuzz/corpus/sns_request`, target `sns_request`) through
//! the SNS bridge's part of the target's checks (`sns::fuzz::check_request`): the
//! first byte splits free text (policies, MessageStructure, a body) from a Query
//! form. The core's half, filter policies, is replayed by the core's
//! `tests/sns_fuzz_corpus.rs`, since this crate cannot reach the core.

use std::path::PathBuf;
use switchboard_bridge::sns::fuzz::check_request;

#[test]
fn corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sns_request");
    let (mut seen, mut filters, mut messages) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        let parsed = check_request(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The head alone gives two filters and one message; count what the forms add.
        filters += usize::from(parsed.filters.len() > 2);
        messages += usize::from(parsed.messages.len() > 2);
        seen += 1;
    }
    assert!(seen >= 40, "only {seen} corpus files");
    assert!(
        filters >= 10,
        "only {filters} files subscribe with a policy"
    );
    assert!(messages >= 10, "only {messages} files publish");
    // Above the SQS corpus's 300: cmin with -use_counters=0 keeps ~410 inputs, the
    // target reaching filter policies, JSON and XML parsing too.
    assert!(
        seen <= 450,
        "corpus has {seen} files; minimise it (cargo fuzz cmin)"
    );
}
