//! Replays the fuzz corpus of the replication port (`fuzz/corpus/replication_msg`,
//! target `replication_msg`) the way the fuzz target runs it: every input as a
//! message body and as Records frames. Nothing may panic; a decoded message encodes
//! back to its bytes; the seeds that are real journal frames parse as such.

use std::path::PathBuf;
use switchboard::replication::wire::Msg;
use switchboard::store::for_each_frame;

#[test]
fn corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/replication_msg");
    let mut seen = 0;
    let (mut messages, mut frames) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        seen += 1;
        if let Ok(msg) = Msg::decode(&data) {
            messages += 1;
            let mut out = Vec::new();
            msg.encode(&mut out);
            assert_eq!(&out[4..], &data[..], "{msg:?}");
        }
        let mut n = 0;
        if for_each_frame(&data, |_, _, _| {
            n += 1;
            Ok(())
        })
        .is_ok()
            && n > 0
        {
            frames += 1;
        }
    }
    assert!(seen >= 15, "only {seen} corpus files");
    assert!(messages >= 10, "only {messages} inputs decode as messages");
    assert!(frames >= 3, "only {frames} inputs parse as journal frames");
}
