#![no_main]
//! Arbitrary bytes as a message body on the replication port (what a peer, or
//! anything that connects to that port, controls), and as the frames of a Records
//! message. Checks that nothing panics, that a decoded message encodes back to the
//! same bytes, and that frames either parse with valid CRCs or are refused.

use libfuzzer_sys::fuzz_target;
use switchboard::replication::wire::Msg;
use switchboard::store::for_each_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Msg::decode(data) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(&out[4..], data, "{msg:?} does not encode back to its bytes");
    }
    let mut last = 0u64;
    let _ = for_each_frame(data, |_, lsn, _| {
        last = lsn;
        Ok(())
    });
});
