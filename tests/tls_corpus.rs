//! Replays the fuzz corpus of the TLS handshake path (`fuzz/corpus/tls_handshake`,
//! target `tls_handshake`) the way the fuzz target runs it: nothing may panic.

use std::path::PathBuf;

#[test]
fn corpus_replays() {
    assert!(
        switchboard::tls::fuzz::ready(),
        "src/tls/testdata does not load"
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tls_handshake");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        switchboard::tls::fuzz::one_input(&data);
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} corpus files");
}
