#![no_main]
//! Arbitrary bytes through the MQTT codec, three ways: as the first bytes of a
//! connection (the handshake decoder: CONNECT first, size bound, protocol level),
//! and after a valid 3.1.1 CONNECT and a valid 5.0 CONNECT (so the decoders of every
//! other packet see the input). Whatever decodes is encoded back through the same
//! codec, as the server would for the client's version. It must never panic, and
//! every packet it returns must have consumed input.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_mqtt::codec::Codec;

/// `MQTT` level 4, clean session, keep-alive 60, client id `fuzz`.
const CONNECT_311: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04fuzz";
/// `MQTT` level 5, clean start, keep-alive 60, no properties, client id `fuzz`.
const CONNECT_5: &[u8] = b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x04fuzz";

/// Decodes until the codec wants more bytes or refuses; encodes each packet.
fn run(codec: &mut Codec, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(p)) => {
                assert!(buf.len() < before, "a packet out of no input");
                let mut out = BytesMut::new();
                let _ = codec.encode(p, &mut out);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

fn after(connect: &[u8]) -> Codec {
    let mut c = Codec::new(65_536);
    let mut b = BytesMut::from(connect);
    assert!(
        matches!(c.decode(&mut b), Ok(Some(_))),
        "seed CONNECT decodes"
    );
    c.set_max_inbound(1 << 20);
    c
}

fuzz_target!(|data: &[u8]| {
    run(&mut Codec::new(65_536), data);
    run(&mut after(CONNECT_311), data);
    run(&mut after(CONNECT_5), data);
});
