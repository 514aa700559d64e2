//! Replays the SNS bridge's fuzz corpus (`fuzz/corpus/sns_request`, target
//! `sns_request`) as the fuzz target runs it, filter policies included: the bridge's
//! checks, then every policy compiled as the core binds it and matched against
//! every message, a refused one rendered as Subscribe's error.

use std::path::PathBuf;
use switchboard::broker::check_filters;
use switchboard_bridge::sns::{SnsError, fuzz};

/// The target's checks on one input; how many policies the core refused.
fn check(data: &[u8]) -> Result<usize, String> {
    let parsed = fuzz::check_request(data)?;
    let refused = check_filters(&parsed.filters, &parsed.messages)?;
    for reason in &refused {
        fuzz::check_error(&SnsError::bad(format!("FilterPolicy: {reason}")))?;
    }
    Ok(refused.len())
}

#[test]
fn corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sns_request");
    let (mut seen, mut refused) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        let n = check(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The head is tried in both scopes, so a refused head counts twice.
        refused += usize::from(n > 2);
        seen += 1;
    }
    assert!(seen >= 40, "only {seen} corpus files");
    assert!(
        refused >= 3,
        "only {refused} files carry a policy the core refuses"
    );
}
