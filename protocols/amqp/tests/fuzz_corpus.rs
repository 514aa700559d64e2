//! Replays the fuzz corpus (`fuzz/corpus/amqp_frame`) through the frame decoder.
//! Files named `valid_*` must decode without error; `bad_*` must be refused with
//! an error, not a panic and not a wait for more bytes.

use switchboard_amqp::codec::decode_all;

#[test]
fn corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/amqp_frame");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let data = std::fs::read(&path).expect("read corpus file");
        let (frames, err) = decode_all(&data, 131_072);
        if name.starts_with("valid_") {
            assert!(err.is_none(), "{name}: {err:?}");
            assert!(frames > 0, "{name}: no frame decoded");
        } else if name.starts_with("bad_") {
            assert!(err.is_some(), "{name}: accepted ({frames} frames)");
        }
        seen += 1;
    }
    assert!(seen >= 10, "corpus has only {seen} files");
}
